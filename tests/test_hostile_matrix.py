"""The hostile-input matrix: files and options from possibly untrusted hands, each one clear
``error:`` line with the documented exit code, no traceback, nothing written or changed.

Run in-process through the same ``main(argv)`` that ``python -m export`` (and ``ptychopinn``)
runs. ``HOSTILE_CASES`` counts the cases (the closing note of issue 10 quotes it).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import shutil
import signal
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from export.build import BuildResult
from ptychopinn.main import main as export_main
from tests.conftest import command_main

Maker = Callable[[Path, Path, Path], list[str]]  # (tmp, model_file, feed_file) -> argv


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _build(tmp: Path, checkpoint: Path, inputs: Path, *extra: str) -> list[str]:
    return ["build", "--checkpoint", str(checkpoint), "--inputs", str(inputs),
            "--out", str(tmp / "out"), "--no-parity", "--reference", "none", *extra]  # fmt: skip


def _ckpt(write: Callable[[Path, Path], None]) -> Maker:
    def make(tmp: Path, model: Path, feed: Path) -> list[str]:
        path = tmp / "hostile.pt"
        write(path, model)
        return _build(tmp, path, feed)

    return make


def _feed(arrays: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> Maker:
    def make(tmp: Path, model: Path, feed: Path) -> list[str]:
        with np.load(feed) as f:
            base = {k: f[k].copy() for k in f.files}
        path = tmp / "hostile.npz"
        np.savez(path, **arrays(base))
        return _build(tmp, model, path)

    return make


def _raw_feed(write: Callable[[Path], None]) -> Maker:
    def make(tmp: Path, model: Path, feed: Path) -> list[str]:
        path = tmp / "hostile.npz"
        write(path)
        return _build(tmp, model, path)

    return make


def _state(model: Path) -> dict:  # type: ignore[type-arg]
    return torch.load(model, weights_only=True)


def _mismatched(path: Path, model: Path) -> None:
    raw = _state(model)
    raw["model_config"]["n_filters_scale"] = 2  # weights are for 1
    torch.save(raw, path)


def _lightning_missing_keys(path: Path, model: Path) -> None:
    raw = _state(model)
    state = {f"model.{k}": v for k, v in list(raw["state_dict"].items())[:-3]}
    torch.save({"state_dict": state, "hyper_parameters": {"model": raw["model_config"]}}, path)


def _nonfinite_scale(path: Path, model: Path) -> None:
    raw = _state(model)
    raw["model_config"]["intensity_scale"] = float("inf")
    torch.save(raw, path)


def _forged_header(path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 1, 64, 64)}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("diffraction.npy", header.getvalue() + bytes(64))


def _pickled_feed(path: Path) -> None:
    np.savez(path, diffraction=np.array([{"x": 1}], dtype=object))


def _pickle_checkpoint(path: Path, model: Path) -> None:
    torch.save({"model_config": _Payload(path.parent / "PWNED"), "state_dict": {}}, path)


def _truncated(path: Path, model: Path) -> None:
    raw = model.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


CHECKPOINT_CASES: dict[str, tuple[Maker, str]] = {
    "checkpoint missing": (lambda t, m, f: _build(t, t / "nope.pt", f), "nope.pt"),
    "checkpoint empty": (_ckpt(lambda p, m: p.write_bytes(b"")), "hostile.pt"),
    "checkpoint is a folder": (_ckpt(lambda p, m: p.mkdir()), "hostile.pt"),
    "checkpoint random bytes": (_ckpt(lambda p, m: p.write_bytes(os.urandom(4096))), "hostile.pt"),
    "checkpoint truncated": (_ckpt(_truncated), "hostile.pt"),
    "checkpoint pickle payload": (_ckpt(_pickle_checkpoint), "hostile.pt"),
    "checkpoint config does not match weights": (_ckpt(_mismatched), "does not match"),
    "lightning ckpt missing keys": (_ckpt(_lightning_missing_keys), "hostile.pt"),
    "checkpoint non-finite scale": (_ckpt(_nonfinite_scale), "intensity_scale"),
}

INPUT_CASES: dict[str, tuple[Maker, str]] = {
    "inputs not NPZ": (_raw_feed(lambda p: p.write_text("hello")), "not an .npz file"),
    "inputs pickled object array": (_raw_feed(_pickled_feed), "pickled object array"),
    "inputs forged gigantic header": (_raw_feed(_forged_header), "truncated or forged"),
    "inputs complex": (
        _feed(lambda a: {**a, "diffraction": a["diffraction"].astype(np.complex64)}),
        "complex",
    ),
    "inputs wrong rank": (
        _feed(lambda a: {"diffraction": np.zeros((2, 64), np.float32)}),
        "diffraction",
    ),
    "inputs wrong N": (
        _feed(lambda a: {"diffraction": np.ones((2, 1, 32, 32), np.float32)}),
        "[2, 1, 32, 32]",
    ),
    "inputs zero patterns": (
        _feed(lambda a: {"diffraction": np.ones((0, 1, 64, 64), np.float32)}),
        "holds no patterns",
    ),
    "inputs NaN": (_feed(lambda a: {**a, "diffraction": a["diffraction"] * np.nan}), "NaN"),
    "inputs Inf": (_feed(lambda a: {**a, "diffraction": a["diffraction"] + np.inf}), "Inf"),
    "inputs negative amplitudes": (
        _feed(lambda a: {**a, "diffraction": -1 - a["diffraction"]}),
        "negative",
    ),
    "inputs missing key": (_feed(lambda a: {"positions": a["positions"]}), "'diffraction'"),
    "inputs channels-last": (
        _feed(lambda a: {"diffraction": np.ones((2, 64, 64, 1), np.float32)}),
        "transpose",
    ),
}


def _option(*extra: str) -> Maker:
    return lambda t, m, f: _build(t, m, f, *extra)


def _out_of_user_files(tmp: Path, model: Path, feed: Path) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "thesis.tex").write_text("precious")
    return _build(tmp, model, feed)


OPTION_CASES: dict[str, tuple[Maker, str]] = {
    "--batch 0": (_option("--batch", "0"), "--batch"),
    "--batch -3": (_option("--batch", "-3"), "--batch"),
    "--opset 5": (_option("--opset", "5"), "--opset"),
    "--opset huge": (_option("--opset", "10000000000"), "--opset"),
    "--keep -1": (_option("--keep", "-1"), "--keep"),
    "--head unknown": (_option("--head", "nonsense"), "invalid choice"),
    "--out is a regular file": (
        lambda t, m, f: [
            *_build(t, m, f)[:-4],
            str(t / "file"),
            "--no-parity",
            "--reference",
            "none",
        ],
        "not a folder",
    ),
    "--out holds a user's files": (_out_of_user_files, "--force"),
}

ALL_BUILD_CASES = {**CHECKPOINT_CASES, **INPUT_CASES, **OPTION_CASES}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(folder.rglob("*"))
        if not p.name.endswith(".lock")  # the advisory lock file of --out stays (empty)
    }


@pytest.mark.parametrize("case", sorted(ALL_BUILD_CASES))
def test_hostile_build_input(
    case: str, model_file: Path, feed_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, needle = ALL_BUILD_CASES[case]
    (tmp_path / "file").write_text("a user's file")
    argv = make(tmp_path, model_file, feed_file)
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as exited:  # argparse rejects unknown choices itself
        raise SystemExit(export_main(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert "Traceback" not in err
    assert needle in err, err
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not (tmp_path / "PWNED").exists()  # no payload ran


REFERENCE_CASES: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = {
    "reference wrong keys": lambda r: {"ampl": r["amplitude"], "phase": r["phase"]},
    "reference wrong shape": lambda r: {k: v[:, :, :32] for k, v in r.items()},
    "reference wrong dtype": lambda r: {k: v.astype(np.complex64) for k, v in r.items()},
    "reference pickled": lambda r: {**r, "amplitude": np.array([{"x": 1}], dtype=object)},
}


@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
def test_hostile_reference(
    case: str, built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import eager_reference

    good = eager_reference(built, tmp_path / "good.npz")
    with np.load(good) as f:
        arrays = REFERENCE_CASES[case]({k: f[k] for k in f.files})
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    shutil.copy(good.with_suffix(".json"), bad.with_suffix(".json"))
    code = export_main(
        ["check", "--artifacts", str(built.out), "--reference", str(bad), "--device", "cpu",
         "--report-dir", str(tmp_path / "report")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert "bad.npz" in err


# --- damaged NPZ members (issue 20): a bad CRC-32 is exit 2 on every path that reads the file ---


def _damage(path: Path, member: str) -> Path:
    """Overwrite up to 16 KiB inside ``member``'s data with plausible values (float32 ones, as a
    bad disk block could): the array stays finite and non-negative, only its CRC-32 tells."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(f"{member}.npy")
    with path.open("r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), "<u2")
        data = info.header_offset + 30 + int(name_len) + int(extra_len)
        start = data + (info.compress_size // 2) // 4 * 4
        f.seek(start)
        f.write(np.ones(min(4096, info.compress_size // 16), np.float32).tobytes())
    return path


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    return write_npz(
        simulate_scan(SimulationConfig(seed=7, n_images=12)),
        tmp_path_factory.mktemp("s") / "scan.npz",
    )


def _damaged_copy(tmp: Path, source: Path, member: str, compressed: bool = False) -> Path:
    path = tmp / "damaged.npz"
    if compressed:
        with np.load(source) as f:
            np.savez_compressed(path, **{k: f[k] for k in f.files})
    else:
        shutil.copy(source, path)
    if source.with_suffix(".json").is_file():  # a reference's provenance
        shutil.copy(source.with_suffix(".json"), path.with_suffix(".json"))
    return _damage(path, member)


DamagedMaker = Callable[[Path, Path, BuildResult], tuple[Callable[[list[str]], int], list[str]]]


def _predict_damaged(compressed: bool) -> DamagedMaker:
    def make(
        tmp: Path, scan: Path, built: BuildResult
    ) -> tuple[Callable[[list[str]], int], list[str]]:
        bad = _damaged_copy(tmp, scan, "diffraction", compressed)
        return export_main, [
            "predict",
            "--artifacts",
            str(built.out),
            "--data",
            str(bad),
            "--out",
            str(tmp / "r"),
        ]

    return make


_train_main = command_main("train")
_infer_main = command_main("infer")


DAMAGED_CASES: dict[str, DamagedMaker] = {
    "export predict, stored scan": _predict_damaged(False),
    "export predict, compressed scan": _predict_damaged(True),
    "export build --inputs scan": lambda t, s, b: (
        export_main,
        _build(t, b.manifest.checkpoint.path, _damaged_copy(t, s, "diffraction")),
    ),
    "train --data": lambda t, s, b: (
        _train_main,
        ["--data", str(_damaged_copy(t, s, "diffraction")), "--out", str(t / "r"), "--epochs", "1"],
    ),
    "infer --data": lambda t, s, b: (
        _infer_main,
        [
            "--checkpoint",
            str(b.manifest.checkpoint.path),
            "--data",
            str(_damaged_copy(t, s, "diffraction")),
            "--out",
            str(t / "r"),
        ],
    ),  # fmt: skip
    "parity check --inputs": lambda t, s, b: (
        export_main,
        [
            "check",
            "--artifacts",
            str(b.out),
            "--inputs",
            str(_damaged_copy(t, b.out / "inputs.npz", "diffraction")),
            "--device",
            "cpu",
            "--reference",
            str(b.out / "reference.npz"),
            "--report-dir",
            str(t / "r"),
        ],
    ),  # fmt: skip
    "parity check --reference": lambda t, s, b: (
        export_main,
        [
            "check",
            "--artifacts",
            str(b.out),
            "--device",
            "cpu",
            "--report-dir",
            str(t / "r"),
            "--reference",
            str(_damaged_copy(t, b.out / "reference.npz", "amplitude")),
        ],
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(DAMAGED_CASES))
def test_damaged_npz_member_is_exit_2_naming_file_and_member(
    case: str,
    small_scan: Path,
    parity_build: BuildResult,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main, argv = DAMAGED_CASES[case](tmp_path, small_scan, parity_build)
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert "damaged.npz" in err and "CRC" in err, err
    member = "amplitude" if "reference" in case else "diffraction"
    assert f"{member}" in err, err
    assert not (tmp_path / "r").exists() or case.startswith("parity check")  # nothing published


# --- OS-level failures on user-given paths (issue 20): exit 2 with the path, nothing left ---


def _out_under_a_file(t: Path, m: Path, f: Path) -> tuple[Callable[[list[str]], int], list[str]]:
    return export_main, [*_build(t, m, f)[:-4], str(t / "file" / "artifacts"), "--no-parity",
                         "--reference", "none"]  # fmt: skip


OS_CASES: dict[str, tuple[Callable[..., tuple[Callable[[list[str]], int], list[str]]], str]] = {
    "build --out under a regular file": (_out_under_a_file, "file"),
    "build --out on a read-only file system": (
        lambda t, m, f: (
            export_main,
            [
                *_build(t, m, f)[:-4],
                "/proc/ptychopinn-artifacts",
                "--no-parity",
                "--reference",
                "none",
            ],
        ),  # fmt: skip
        "/proc",
    ),
    "train --out is a regular file": (
        lambda t, m, f: (
            _train_main,
            ["--preset", "demo", "--out", str(t / "file"), "--epochs", "1"],
        ),
        "file",
    ),
    "infer --out is a regular file": (
        lambda t, m, f: (
            _infer_main,
            ["--checkpoint", str(m), "--data", str(t / "scan.npz"), "--out", str(t / "file")],
        ),  # fmt: skip
        "file",
    ),
}


@pytest.mark.parametrize("case", sorted(OS_CASES))
def test_os_refusal_on_a_user_path_is_exit_2_naming_it(
    case: str,
    model_file: Path,
    feed_file: Path,
    small_scan: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "file").write_text("a user's file")
    shutil.copy(small_scan, tmp_path / "scan.npz")
    make, needle = OS_CASES[case]
    main, argv = make(tmp_path, model_file, feed_file)
    before = _snapshot(tmp_path)
    with pytest.raises(SystemExit) as exited:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert "Traceback" not in err and err.count("error:") == 1, err
    assert needle in err and "internal error" not in err, err
    assert _snapshot(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.slow
def test_a_file_size_limit_while_writing_artifacts_is_exit_2_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """``prlimit --fsize``: torch's own archive writer would abort the process (C++ terminate);
    the artifacts are serialised in memory and written by Python, which gets EFBIG."""
    import resource
    import subprocess
    import sys

    def limit() -> None:  # 2.4 MB: weights.pt fits, model.ts (2.5 MB) does not
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_400_000, 2_400_000))

    run = subprocess.run(
        [sys.executable, "-m", "export", "build", "--out", str(tmp_path / "a"), "--no-parity"],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "model.ts" in run.stderr and "ulimit" in run.stderr
    assert not os.path.lexists(tmp_path / "a")
    assert list((tmp_path / ".a.versions").iterdir()) == []  # the build folder was removed


# --- signals (issue 20): SIGTERM at any build step is 143, whatever library code was running ---


def _term_at(monkeypatch: pytest.MonkeyPatch, title: str) -> None:
    from export import build as build_module

    step = build_module._Progress.step

    @contextlib.contextmanager
    def killing(self: object, name: str) -> Iterator[list[str]]:
        with step(self, name) as notes:  # type: ignore[arg-type]
            if name.startswith(title):
                os.kill(os.getpid(), signal.SIGTERM)
            yield notes

    monkeypatch.setattr(build_module._Progress, "step", killing)


def _term_inside_the_onnx_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM inside torch.export while torch.onnx runs it, wrapped the way the exporter did
    in the field ("Failed to export the model with torch.export ...")."""
    real = torch.export.export

    def export(*args: object, **kwargs: object) -> object:
        if any(f.function == "export_onnx" for f in inspect.stack()):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except BaseException as exc:  # noqa: BLE001 - what a library that wraps does
                raise RuntimeError(
                    f"Failed to export the model with torch.export: {exc!r}"
                ) from exc
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.export, "export", export)


SIGNAL_STEPS = {
    "load checkpoint": lambda mp: _term_at(mp, "load checkpoint"),
    "read inputs": lambda mp: _term_at(mp, "read inputs"),
    "ONNX export, wrapped by the exporter": _term_inside_the_onnx_exporter,
    "TorchScript": pytest.param(lambda mp: _term_at(mp, "TorchScript"), marks=pytest.mark.slow),
    "torch.export": pytest.param(lambda mp: _term_at(mp, "torch.export"), marks=pytest.mark.slow),
    "load back": pytest.param(lambda mp: _term_at(mp, "load back"), marks=pytest.mark.slow),
    "publish": pytest.param(lambda mp: _term_at(mp, "publish"), marks=pytest.mark.slow),
}


@pytest.mark.parametrize("arm", SIGNAL_STEPS.values(), ids=list(SIGNAL_STEPS))
def test_sigterm_during_any_build_step_is_143_with_nothing_published(
    arm: Callable[[pytest.MonkeyPatch], None],
    model_file: Path,
    feed_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    arm(monkeypatch)
    code = export_main(_build(tmp_path, model_file, feed_file))
    err = capsys.readouterr().err
    assert code == 143, err
    assert err.count("error:") == 1 and "terminated (SIGTERM)" in err, err
    assert not os.path.lexists(tmp_path / "out")
    versions = tmp_path / ".out.versions"
    assert not versions.exists() or list(versions.iterdir()) == []


# --- missing packages (issue 20): exit 3 with the install line, from every entry point ---

_BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
sys.argv = ["python", *sys.argv[4:]]
import runpy
runpy.run_module(sys.argv_module, run_name="__main__", alter_sys=True)
"""

MISSING_CASES: dict[str, tuple[str, str, list[str], str]] = {
    # case: (blocked packages, module run with -m, its arguments, word of the install line)
    "export build without onnx": ("onnx,tensorflow", "export", ["build", "--no-parity"], "onnx"),
    "export build without torch": ("torch,lightning,tensorflow", "export", ["build"], "torch"),
    "export bench without torch": ("torch,lightning,tensorflow", "export", ["bench"], "torch"),
    "export check without torch": (
        "torch,lightning,tensorflow",
        "export",
        ["check", "--artifacts", "."],
        "torch",
    ),  # fmt: skip
    "export infer without torch": (
        "torch,lightning",
        "export",
        ["infer", "--checkpoint", "x", "--data", "y", "--out", "z"],
        "torch",
    ),  # fmt: skip
    "ptychopinn train without lightning": (
        "lightning,pytorch_lightning",
        "ptychopinn",
        ["train", "--preset", "demo", "--out", "z"],
        "Lightning",
    ),  # fmt: skip
    "export verify without onnxruntime": (
        "onnxruntime,torch",
        "export",
        ["verify", "."],
        "onnxruntime",
    ),  # fmt: skip
    "export import-tf without h5py": (
        "h5py,torch",
        "export",
        ["import-tf", "--archive", "x"],
        "h5py",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(MISSING_CASES))
def test_missing_package_is_exit_3_with_its_install_line(case: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    blocked, module, args, word = MISSING_CASES[case]
    script = _BLOCKER.replace("sys.argv_module", repr(module))
    run = subprocess.run(
        [sys.executable, "-c", script, blocked, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 3, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and run.stderr.count("error:") == 1, run.stderr[-3000:]
    line = next(x for x in run.stderr.splitlines() if x.startswith("error:"))
    assert word in line and "pip install" in line, line


# quoted in the closing notes of issues 10 and 20
HOSTILE_CASES = (
    len(ALL_BUILD_CASES)
    + len(REFERENCE_CASES)
    + len(DAMAGED_CASES)
    + len(OS_CASES)
    + 1
    + len(SIGNAL_STEPS)
    + len(MISSING_CASES)
)
