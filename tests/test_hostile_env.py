"""A hostile environment: the original TensorFlow PtychoPINN's files handed to the wrong command,
a CUDA request ONNX Runtime cannot serve, and ``bench --save-tuning`` on a busy machine. Each is
one ``error:`` line that says what is there and what to do, or the job done; never exit 70.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.build import BuildResult
from export.cuda_advice import OnnxRuntimeInstall, cuda_unavailable_message, installed_onnxruntime
from export.manifest import read_manifest
from tests.conftest import export_cli

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
    result = export_cli("import-tf", *(str(a) for a in args))
    return result.returncode, result.stdout, result.stderr


def _error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def _suggested(line: str) -> list[str]:
    """The arguments of the ``python -m export import-tf ...`` command an error names."""
    match = re.search(r"`python -m export import-tf ([^`]+)`", line)
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
    result = export_cli(
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
    result = export_cli(
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
    result = export_cli(
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
    from ptycho_torch.import_tf.given import import_given

    case = ref / "n64-gs1"
    archive = model_state_sha256(import_archive(case / "wts.h5.zip").model)
    # the folder imports its archive; the weights with params.dill are the same model
    assert model_state_sha256(import_given(archive=case).model) == archive
    dill = import_weights(case / "model.weights.h5", config=params_dill).model
    assert model_state_sha256(dill) == archive
    # a folder without the archive: its weights, config.json and probe.npz
    gs2 = ref / "n64-gs2"
    explicit = import_weights(
        gs2 / "model.weights.h5", config=gs2 / "config.json", probe=gs2 / "probe.npz"
    ).model
    assert model_state_sha256(import_given(weights=gs2).model) == model_state_sha256(explicit)


def test_import_tf_config_that_is_a_weights_file_names_the_command(ref: Path) -> None:
    case = ref / "n64-gs1"
    code, _, err = _import_tf(
        "--archive", case / "wts.h5.zip", "--config", case / "wts.h5.zip", "--out", "unused.pt"
    )
    assert code == 2
    assert "--config" in _error_line(err) and "not its parameters" in err


# --- B: CUDA that ONNX Runtime cannot serve -----------------------------------------------------


def _cuda_runs() -> bool:
    import onnxruntime as ort

    return (
        "CUDAExecutionProvider" in ort.get_available_providers()
        and Path("/proc/driver/nvidia/version").exists()
    )


def test_verify_on_cuda_without_it_is_one_line_naming_the_installed_onnxruntime(
    built: BuildResult,
) -> None:
    if _cuda_runs():
        pytest.skip("ONNX Runtime may run CUDA here; this is the machine without it")
    done = subprocess.run(
        [sys.executable, "-m", "export", "verify", str(built.out), "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )  # a child process: ONNX Runtime's C++ logger writes to the real fd 2
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: requested CUDA"), done.stderr
    install = installed_onnxruntime()
    assert install.distributions
    for name, version in install.distributions.items():
        assert f"{name} {version}" in lines[0]
    assert "log line above" not in lines[0] and "onnxruntime:" not in done.stderr
    assert "Failed to load" not in done.stdout  # preload_dlls' prints are not results


def test_cuda_advice_of_the_cpu_package_says_which_package_to_install() -> None:
    install = OnnxRuntimeInstall(
        {"onnxruntime": "1.23.2"},
        "1.23.2",
        None,
        None,
        ["AzureExecutionProvider", "CPUExecutionProvider"],
    )
    line = cuda_unavailable_message(["CPUExecutionProvider"], "", install)
    assert "onnxruntime 1.23.2 is installed, a build without the CUDA provider" in line
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu==1.23.2" in line


def test_cuda_advice_names_both_packages_installed_at_once() -> None:
    both = {"onnxruntime": "1.23.2", "onnxruntime-gpu": "1.22.0"}
    install = OnnxRuntimeInstall(both, "1.23.2", "12.8", None, ["CPUExecutionProvider"])
    line = cuda_unavailable_message(["CPUExecutionProvider"], "", install)
    assert "onnxruntime 1.23.2 and onnxruntime-gpu 1.22.0 are installed at once" in line
    assert "pip install onnxruntime-gpu==1.22.0" in line


def test_cuda_advice_folds_onnx_runtimes_log_into_the_line() -> None:
    log = (
        "\x1b[1;31m2026-12-03 14:14:05.3 [E:onnxruntime:Default, provider_bridge_ort.cc:2458 "
        "operator()] /onnxruntime_src/x.cc:2043 Get() [ONNXRuntimeError] : 1 : FAIL : Failed to "
        "load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot "
        "open shared object file: No such file or directory\n\x1b[m\n\x1b[0;93m2026-12-03 [W:"
        "onnxruntime:Default, onnxruntime_pybind_state.cc:1295 X] Failed to create "
        "CUDAExecutionProvider. Require cuDNN 9.* and CUDA 13.*. Please install all\x1b[m\n"
    )
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    install = OnnxRuntimeInstall({"onnxruntime-gpu": "1.31.1"}, "1.31.1", "13.0", None, providers)
    line = cuda_unavailable_message(["CPUExecutionProvider"], log, install)
    assert (
        "onnxruntime-gpu 1.31.1 is installed but its CUDA provider cannot load libcublasLt.so.13"
        in line
    )
    assert "install cuDNN 9.* and CUDA 13.* (as ONNX Runtime says)" in line
    assert "\n" not in line and "\x1b" not in line


def test_bisect_on_cuda_gives_the_hosts_advice(built: BuildResult) -> None:
    if _cuda_runs():
        pytest.skip("ONNX Runtime may run CUDA here; this is the machine without it")
    from parity.bisect import bisect
    from parity.errors import EnvironmentUnavailable
    from parity.runners import Backend, make_runner

    manifest = read_manifest(built.out)
    sides = (
        make_runner(Backend.ONNXRUNTIME, built.out, manifest, "cuda"),
        make_runner(Backend.EAGER, built.out, manifest, "cpu"),
    )
    with pytest.raises(EnvironmentUnavailable) as caught:
        bisect(built.out, (Backend.ONNXRUNTIME, Backend.EAGER), device="cuda", sides=sides)
    assert str(caught.value).startswith("requested CUDA but ONNX Runtime runs")
    assert installed_onnxruntime().describe() in str(caught.value)


# --- C: --save-tuning on a busy machine ---------------------------------------------------------

QUICK = ["--seconds", "0", "--repeats", "1", "--warmup", "0", "--threads", "1", "--no-layers"]


class _Load:
    """``os.getloadavg`` as the test sets it: ``value`` until the tuning ends, then ``after``."""

    def __init__(self, value: float, after: float | None = None) -> None:
        self.value, self.after = value, after

    def __call__(self) -> tuple[float, float, float]:
        return (self.value, self.value, self.value)


@pytest.fixture()
def load(monkeypatch: pytest.MonkeyPatch, restore_threads: None) -> Iterator[_Load]:
    """A load the test sets, switched to ``after`` when the real tuning returns."""
    import bench.tuning

    fake = _Load(0.0)
    real_tune = bench.tuning.tune

    def tune_then_switch(*args: object, **kwargs: object) -> object:
        result = real_tune(*args, **kwargs)  # type: ignore[arg-type]
        if fake.after is not None:
            fake.value = fake.after
        return result

    monkeypatch.setattr(os, "getloadavg", fake)
    monkeypatch.setattr(bench.tuning, "tune", tune_then_switch)
    yield fake


def _bench(artifacts: Path, *extra: str) -> tuple[int, str]:
    result = export_cli("bench", "--artifacts", str(artifacts), *QUICK, *extra)
    return result.returncode, result.stderr


@pytest.mark.parametrize("busy_at", ["start", "end"])
def test_save_tuning_on_a_busy_machine_is_refused_and_changes_nothing(
    artifacts: Path, load: _Load, busy_at: str
) -> None:
    from ptycho_torch.threads import logical_cpus

    cores = logical_cpus()
    busy = float(cores * 3)
    load.value, load.after = (busy, 0.0) if busy_at == "start" else (0.0, busy)
    before = (artifacts / "manifest.json").read_bytes()
    code, err = _bench(artifacts, "--save-tuning")
    assert code == 2, err
    line = _error_line(err)
    assert f"load average {busy:.2f} on {cores} cores at the {busy_at} of the tuning" in line
    assert "--save-tuning-anyway" in line and "nothing was recorded" in line
    assert (artifacts / "manifest.json").read_bytes() == before
    assert not list(artifacts.glob(".manifest.json.*"))


def test_save_tuning_anyway_records_the_load_with_the_settings(
    artifacts: Path, load: _Load, caplog: pytest.LogCaptureFixture
) -> None:
    from export.predict import Predictor
    from export.session import SessionSettings
    from ptycho_torch.threads import logical_cpus

    load.value = load.after = float(logical_cpus() + 1)
    code, err = _bench(artifacts, "--save-tuning-anyway")
    assert code == 0, err
    settings = SessionSettings.from_manifest(read_manifest(artifacts))  # still verifies
    assert settings is not None and settings.intra_op_threads == 1
    assert f"1-minute load average {load.value:.2f} at the start" in settings.measured_while_busy
    assert f"on {logical_cpus()} cores" in settings.measured_while_busy
    assert any("busy machine" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert Predictor(artifacts).host.settings == settings


def test_save_tuning_on_an_idle_machine_records_no_load_note(artifacts: Path, load: _Load) -> None:
    from export.session import SessionSettings

    code, err = _bench(artifacts, "--save-tuning")
    assert code == 0, err
    settings = SessionSettings.from_manifest(read_manifest(artifacts))
    assert settings is not None and settings.measured_while_busy == ""
    assert "measured_while_busy" not in (read_manifest(artifacts).onnxruntime_session or {})
