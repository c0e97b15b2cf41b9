"""Every command line maps the same faults to the same exit code, with one ``error:`` line.

In-process through each ``main(argv)`` (fast); the faults: a missing file, a corrupt or
incomplete manifest (2), an artifact changed after the build (4), a bad option value, zero
included (2).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from export.build import BuildResult
from ptycho_torch.errors import ExitCode


def _main(argv: list[str]) -> int:
    """``python -m export ARGV`` (every command: ``ptychopinn ARGV``) in-process."""
    from ptychopinn.main import main

    return main(argv)


@pytest.fixture()
def folders(built: BuildResult, tmp_path: Path) -> dict[str, Path]:
    """Copies of a built artifacts folder: intact, corrupt manifest, bad layout, changed file."""
    out = {}
    for kind in ("intact", "corrupt", "layout", "changed", "outside"):
        out[kind] = tmp_path / kind
        shutil.copytree(built.out, out[kind])
    (out["corrupt"] / "manifest.json").write_text("{not json")
    (out["layout"] / "manifest.json").write_text(json.dumps({"files": ["model.onnx"]}))
    with (out["changed"] / "model.onnx").open("ab") as f:
        f.write(b"\0")
    manifest = json.loads((out["outside"] / "manifest.json").read_text())
    manifest["files"]["../secret"] = {"sha256": "0" * 64, "size": 1}  # path traversal
    (out["outside"] / "manifest.json").write_text(json.dumps(manifest))
    return out


def _bomb_checkpoint(path: Path) -> Path:
    """A tiny checkpoint whose config would allocate terabytes if it were built."""
    import torch

    torch.save({"model_config": {"n_filters_scale": 100000}, "state_dict": {}}, path)
    return path


def _nan_files(built: BuildResult, tmp: Path) -> tuple[str, str]:
    """A feed with a NaN and a checkpoint with a NaN weight."""
    import numpy as np
    import torch

    with np.load(built.out / "inputs.npz") as f:
        feed = {k: f[k].copy() for k in f.files}
    feed["diffraction"][0, 0, 3, 3] = np.nan
    np.savez(tmp / "nan_feed.npz", **feed)
    raw = torch.load(built.manifest.checkpoint.path, weights_only=True)
    key = next(k for k in raw["state_dict"] if k.endswith("weight"))
    raw["state_dict"][key] = raw["state_dict"][key].clone()
    raw["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(raw, tmp / "nan_model.pt")
    return str(tmp / "nan_feed.npz"), str(tmp / "nan_model.pt")


def _pickled_feed(tmp: Path) -> str:
    """A feed whose diffraction is a pickled object array."""
    import numpy as np

    np.savez(tmp / "pickled.npz", diffraction=np.array([object()], dtype=object))
    return str(tmp / "pickled.npz")


def _cases(d: dict[str, Path], tmp: Path) -> list[tuple[str, list[str], int, str]]:
    missing = str(tmp / "missing.pt")
    bomb = str(_bomb_checkpoint(tmp / "bomb.pt"))
    import torch

    no_gpu = (
        []
        if torch.cuda.is_available()
        else [
            (
                "export",
                ["train", "--preset", "demo", "--out", str(tmp / "g"), "--accelerator", "gpu"],
                3,
                "no CUDA device",
            ),
            (
                "export",
                [
                    "check",
                    "--artifacts",
                    str(d["intact"]),
                    "--device",
                    "cuda",
                    "--report-dir",
                    str(tmp / "c"),
                ],
                3,
                "--device cuda",
            ),
        ]
    )
    return no_gpu + [
        ("export", ["bench", "--artifacts", str(d["intact"]), "--repeats", "0"], 2, "--repeats"),
        ("export", ["bench", "--artifacts", str(d["intact"]), "--batch", "0"], 2, "--batch"),
        ("export", ["bench", "--artifacts", str(d["intact"]), "--threads", "x"], 2, "--threads"),
        ("export", ["verify", str(d["outside"])], 2, "not plain names"),
        ("export", ["triton", "--artifacts", str(d["intact"]), "--out", str(tmp / "r"), "--name", ".."], 2, "--name"),
        ("export", ["build", "--checkpoint", bomb, "--out", str(tmp / "b")], 2, "n_filters_scale"),
        ("export", ["infer", "--checkpoint", missing, "--data", missing, "--out", str(tmp / "i"), "--batch-size", "0"], 2, "--batch-size"),
        ("export", ["verify", str(d["corrupt"])], 2, "manifest.json as JSON"),
        ("export", ["verify", str(d["layout"])], 2, "not a build manifest"),
        ("export", ["verify", str(d["changed"])], 4, "changed since the build"),
        ("export", ["verify", str(tmp / "nowhere")], 2, "no manifest.json"),
        ("export", ["triton", "--artifacts", str(d["corrupt"]), "--out", str(tmp / "r")], 2, "JSON"),
        ("export", ["triton", "--artifacts", str(d["changed"]), "--out", str(tmp / "r")], 4, "changed"),
        ("export", ["build", "--checkpoint", missing, "--out", str(tmp / "b")], 2, f"checkpoint {missing} does not exist"),
        ("export", ["check", "--artifacts", str(d["corrupt"])], 2, "manifest.json as JSON"),
        ("export", ["check", "--artifacts", str(d["layout"])], 2, "not a build manifest"),
        ("export", ["check", "--artifacts", str(d["changed"])], 4, "changed since the build"),
        ("export", ["bench", "--artifacts", str(d["changed"])], 4, "changed since the build"),
        ("export", ["train", "--preset", "demo", "--out", str(tmp / "t"), "--epochs", "0"], 2, "epochs"),
        ("export", ["train", "--preset", "demo", "--out", str(tmp / "t"), "--gridsize", "0"], 2, "gridsize"),
        ("export", ["train", "--preset", "demo", "--out", str(tmp / "t"), "--batch-size", "0"], 2, "batch_size"),
        ("export", ["train", "--preset", "demo", "--out", str(tmp / "t"), "--n-filters-scale", "0"], 2, "n_filters_scale"),
        ("export", ["train", "--data", str(tmp / "none.npz"), "--out", str(tmp / "t")], 2, "none.npz"),
        ("export", ["infer", "--checkpoint", missing, "--data", missing, "--out", str(tmp / "i")], 2, f"checkpoint {missing} does not exist"),
        ("export", ["import-tf", "--archive", str(tmp / "none.zip"), "--out", str(tmp / "m.pt")], 2, "none.zip"),
    ]  # fmt: skip


def test_every_cli_maps_faults_to_the_documented_code(
    built: BuildResult,
    folders: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wrong = []
    nan_feed, nan_model = _nan_files(built, tmp_path)
    ckpt = built.manifest.checkpoint.path
    extra = [
        ("export", ["build", "--checkpoint", ckpt, "--inputs", nan_feed, "--out", str(tmp_path / "n")], 2, "NaN/Inf value"),
        ("export", ["build", "--checkpoint", nan_model, "--out", str(tmp_path / "n")], 2, "NaN/Inf weights"),
        ("export", ["build", "--checkpoint", ckpt, "--inputs", _pickled_feed(tmp_path), "--out", str(tmp_path / "a")], 2, "pickle"),
    ]  # fmt: skip
    for cli, argv, code, words in _cases(folders, tmp_path) + extra:
        got = _main(argv)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        if got != code or len(errors) != 1 or words not in errors[0] or "Traceback" in err:
            wrong.append(f"{cli} {argv[:2]}: exit {got} (want {code}), error lines {errors}")
    assert not wrong, "\n".join(wrong)


def test_intact_artifacts_verify_and_exit_zero(
    folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(["verify", str(folders["intact"])]) == ExitCode.PASS


def test_channels_last_batch_is_told_to_transpose() -> None:
    import numpy as np

    from export.errors import SignatureError
    from export.signature import TensorSpec

    spec = TensorSpec("diffraction", (8, 4, 64, 64), "B,C,N,N")
    with pytest.raises(SignatureError, match=r"channels-last.*\.transpose\(0, 3, 1, 2\)"):
        spec.check(np.zeros((8, 64, 64, 4), np.float32))


@pytest.mark.slow
def test_sigterm_stops_a_build_cleanly(built: BuildResult, tmp_path: Path) -> None:
    """SIGTERM mid-build: exit 143, no temporary folder left, previous artifacts untouched."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "artifacts"
    shutil.copytree(built.out, out)
    before = (out / "manifest.json").read_bytes()
    checkpoint = built.manifest.checkpoint.path
    feed = str(built.out / "inputs.npz")
    proc = subprocess.Popen(
        [sys.executable, "-m", "export", "build", "--checkpoint", checkpoint, "--inputs", feed,
         "--out", str(out), "--reference", "none", "--no-parity"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not any(tmp_path.glob(".artifacts.versions/.building-*")):
        time.sleep(0.05)  # wait until the build has its temporary folder
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".artifacts.lock", ".artifacts.versions", "artifacts"]
    assert list((tmp_path / ".artifacts.versions").iterdir()) == []  # temporary folder removed
    assert (out / "manifest.json").read_bytes() == before


def test_a_bug_is_exit_70_with_the_traceback_in_a_log_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ptycho_torch.cli import run_cli

    def broken() -> None:
        raise ZeroDivisionError("planted")

    assert run_cli(broken) == ExitCode.INTERNAL
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err
    log = Path(err.split("traceback in ")[1].split(";")[0])
    assert "ZeroDivisionError: planted" in log.read_text()
    log.unlink()


def test_exit_code_values_are_the_documented_ones() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 70, 130, 143]
