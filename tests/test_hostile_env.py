"""A hostile environment: the original TensorFlow PtychoPINN's files handed to the wrong
command. Each is one ``error:`` line that says what is there and what to do, or the job done;
never exit 70.
"""

from __future__ import annotations

import json
import re
import shlex
import zipfile
from pathlib import Path

import pytest

from tests.conftest import parity_cli, run_main

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / "ptychopinn-tf"


# --- A: the original's files -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref() -> Path:
    if not (REFERENCE / "n64-gs1" / "wts.h5.zip").is_file():
        pytest.skip(f"the original TensorFlow PtychoPINN's fixtures are not at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="module")
def params_dill(ref: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``params.dill`` as a user would take it out of ``wts.h5.zip``."""
    out = tmp_path_factory.mktemp("unzipped") / "params.dill"
    with zipfile.ZipFile(ref / "n64-gs1" / "wts.h5.zip") as z:
        out.write_bytes(z.read("diffraction_to_obj/params.dill"))
    return out


def _import_tf(*args: object) -> tuple[int, str, str]:
    from ptycho_torch.import_tf.cli import main

    result = run_main(main, *(str(a) for a in args))  # type: ignore[arg-type]
    return result.returncode, result.stdout, result.stderr


def _error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _suggested(line: str) -> list[str]:
    """The arguments of the ``python -m ptycho_torch.import_tf ...`` command an error names."""
    match = re.search(r"`python -m ptycho_torch\.import_tf ([^`]+)`", line)
    assert match, line
    return shlex.split(match.group(1))


@pytest.mark.parametrize(
    ("flag", "relative", "want"),
    [
        ("--config", "n64-gs1/config.json", "--archive"),
        ("--config", "n64-gs2/config.json", "--weights"),
        ("--config", "n64-gs2", "--weights"),
        ("--weights", "n64-gs1/wts.h5.zip", "--archive"),
    ],
)
def test_import_keras_names_the_importer_of_the_originals_files(
    ref: Path, tmp_path: Path, flag: str, relative: str, want: str
) -> None:
    given = {"--config": tmp_path / "config.json", "--weights": tmp_path / "twin.weights.h5"}
    given[flag] = ref / relative
    result = parity_cli(
        "import-keras", "--weights", str(given["--weights"]), "--config", str(given["--config"]),
        "--out", str(tmp_path / "model.pt"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = _error_line(result.stderr)
    assert "the original TensorFlow PtychoPINN's" in line and "internal error" not in line
    assert want in _suggested(line) and not (tmp_path / "model.pt").exists()


def test_import_keras_names_the_importer_of_a_params_dill(
    params_dill: Path, tmp_path: Path
) -> None:
    result = parity_cli(
        "import-keras", "--weights", str(tmp_path / "w.h5"), "--config", str(params_dill),
        "--out", str(tmp_path / "model.pt"),
    )  # fmt: skip
    assert result.returncode == 2
    line = _error_line(result.stderr)
    assert "original TensorFlow PtychoPINN's params.dill" in line
    assert _suggested(line)[:4] == ["--weights", "model.weights.h5", "--config", str(params_dill)]


def test_import_keras_config_with_unknown_fields_is_exit_2_naming_them(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"N": 64, "case": "mine", "filters": 2}))
    result = parity_cli(
        "import-keras", "--weights", str(tmp_path / "w.h5"), "--config", str(config),
        "--out", str(tmp_path / "model.pt"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = _error_line(result.stderr)
    assert "unknown ModelConfig fields ['case', 'filters']" in line
    assert "original" not in line


@pytest.mark.parametrize(
    ("flag", "relative"),
    [
        ("--archive", "n64-gs1/config.json"),
        ("--archive", "n64-gs2/model.weights.h5"),
        ("--weights", "n64-gs1/wts.h5.zip"),
    ],
)
def test_import_tf_names_the_flag_a_file_belongs_to_and_that_command_works(
    ref: Path, tmp_path: Path, flag: str, relative: str
) -> None:
    out = tmp_path / "model.pt"
    code, _, err = _import_tf(flag, ref / relative, "--out", out)
    assert code == 2 and not out.exists()
    line = _error_line(err)
    assert "is the original TensorFlow PtychoPINN's" in line
    code, stdout, err = _import_tf(*_suggested(line))
    assert code == 0, err
    assert out.is_file() and "imported 22 convs" in stdout


def test_import_tf_takes_a_run_folder_and_a_params_dill(ref: Path, params_dill: Path) -> None:
    from ptycho_torch.checkpoint import model_state_sha256
    from ptycho_torch.import_tf import import_archive, import_weights
    from ptycho_torch.import_tf.cli import _import
    from ptycho_torch.import_tf.cli import _parser as import_tf_parser

    case = ref / "n64-gs1"
    archive = model_state_sha256(import_archive(case / "wts.h5.zip").model)
    # the folder imports its archive; the weights with params.dill are the same model
    args = import_tf_parser().parse_args(["--archive", str(case)])
    assert model_state_sha256(_import(args).model) == archive
    dill = import_weights(case / "model.weights.h5", config=params_dill).model
    assert model_state_sha256(dill) == archive
    # a folder without the archive: its weights, config.json and probe.npz
    gs2 = ref / "n64-gs2"
    explicit = import_weights(
        gs2 / "model.weights.h5", config=gs2 / "config.json", probe=gs2 / "probe.npz"
    ).model
    args = import_tf_parser().parse_args(["--weights", str(gs2)])
    assert model_state_sha256(_import(args).model) == model_state_sha256(explicit)


def test_import_tf_config_that_is_a_weights_file_names_the_command(ref: Path) -> None:
    case = ref / "n64-gs1"
    code, _, err = _import_tf(
        "--archive", case / "wts.h5.zip", "--config", case / "wts.h5.zip", "--out", "unused.pt"
    )
    assert code == 2
    assert "--config" in _error_line(err) and "not its parameters" in err
