"""Shared pytest options and the session's builds.

Options: ``slow`` tests run only with ``--runslow``; ``tf`` and ``gpu`` tests skip with a reason.

Builds: exporting takes seconds per head, so the export and parity tests share two builds made
once per session: ``built`` (object head) and ``built_physics`` (physics head, gridsize 2).
``parity_build`` is a copy of ``built`` with an eager-PyTorch ``reference.npz``; a test that
tampers with artifacts takes its own copy (``artifacts``), never a rebuild. Tests of what
happens around the export (``--out`` checks, locking, publishing, recovery) use ``fast_export``.

Helpers for tests that make their own files: ``from tests.conftest import make_model_file``
(the repository root is on ``sys.path``: ``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import io
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from export.build import BuildResult


# The property tests need hypothesis (the 'test' extra); a machine without it (the lent GPU's
# image) still collects everything else, and the header says what was left out.
_NO_HYPOTHESIS = importlib.util.find_spec("hypothesis") is None
collect_ignore = ["export/test_fuzz.py", "parity/test_compare.py"] if _NO_HYPOTHESIS else []


def pytest_report_header(config: pytest.Config) -> str | None:
    if _NO_HYPOTHESIS:
        return "hypothesis not installed: tests/export/test_fuzz.py and tests/parity/test_compare.py not collected"
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_tf = importlib.util.find_spec("tensorflow") is not None
    has_cuda = _has_cuda()
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow (CI does)"))
        if "tf" in item.keywords and not has_tf:
            item.add_marker(
                pytest.mark.skip(reason="TensorFlow not installed: pip install -e '.[tf]'")
            )
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA device on this machine"))


# --- command lines in-process --------------------------------------------------------------


def run_main(main: Callable[[Sequence[str]], int], *args: str) -> SimpleNamespace:
    """A command's ``main(argv)`` in-process: ``returncode``, ``stdout`` and ``stderr``.

    argparse's own usage errors (``SystemExit``) give their code like any other exit.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code  # type: ignore[assignment]
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def export_cli(*args: str) -> SimpleNamespace:
    """``python -m export ARGS`` (the same as ``ptychopinn ARGS``) in-process (:func:`run_main`)."""
    from ptychopinn.main import main  # what `python -m export` and `ptychopinn` run

    return run_main(main, *args)


def command_main(name: str) -> Callable[[Sequence[str]], int]:
    """One command's ``main(argv)``: ``python -m export NAME ARGV`` in-process."""
    from ptychopinn.main import main

    return lambda argv: main([name, *argv])


@pytest.fixture()
def restore_threads() -> Iterator[None]:
    """torch's thread count as it was before the test (commands under test set it)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


_REAL_MEASURE: list[Callable[..., dict[int, float]]] = []  # ptycho_torch.threads._measure


@pytest.fixture(scope="session", autouse=True)
def _threads_measured_once() -> Iterator[None]:
    """``--threads auto``, every command's default, times a convolution at each thread count:
    about 1 s of CPU per command run, a hundred runs in the default test run. The session
    measures once, for real, and later commands (the session's builds too) get the same timings,
    so the same choice, and run the rest of ``set_threads`` as they would."""
    if importlib.util.find_spec("torch") is None:  # nothing measures threads without torch
        yield
        return
    import ptycho_torch.threads

    measure = ptycho_torch.threads._measure
    _REAL_MEASURE[:] = [measure]
    timings: dict[tuple[tuple[int, ...], int], dict[int, float]] = {}

    def measured_once(counts: range, rounds: int = 5) -> dict[int, float]:
        key = (tuple(counts), rounds)
        if key not in timings:
            timings[key] = measure(counts, rounds)
        return dict(timings[key])

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ptycho_torch.threads, "_measure", measured_once)
        yield


@pytest.fixture(autouse=True)
def _threads_measured_for_real(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tests/ptycho_torch/test_threads.py`` tests the measurement itself: it always measures."""
    if request.node.path.name == "test_threads.py":
        import ptycho_torch.threads

        monkeypatch.setattr(ptycho_torch.threads, "_measure", _REAL_MEASURE[0])


# --- small model and feed files ---------------------------------------------------------------


def make_model_file(path: Path, seed: int = 0, gridsize: int = 1) -> Path:
    """A small untrained model (n_filters_scale 1) with a random probe, saved to ``path``."""
    import torch

    from ptycho_torch.checkpoint import save_model
    from ptycho_torch.config import ModelConfig
    from ptycho_torch.model import PtychoPINN

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = np.exp(1j * rng.random((64, 64))) * rng.random((64, 64))
    model = PtychoPINN(
        ModelConfig(n_filters_scale=1, gridsize=gridsize, intensity_scale=20.0), probe=probe
    )
    save_model(model, path)
    return path


def make_feed_file(path: Path, batch: int = 2, channels: int = 1, seed: int = 0) -> Path:
    """A feed NPZ: ``diffraction`` float32[batch, channels, 64, 64] and ``positions``."""
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        diffraction=(rng.random((batch, channels, 64, 64)) * 30).astype(np.float32),
        positions=(rng.normal(size=(batch, channels, 2)) * 3).astype(np.float32),
    )
    return path


def eager_reference(result: BuildResult, path: Path) -> Path:
    """A reference made with eager PyTorch (stands in for the TF twin in fast tests)."""
    import torch

    from export.wrapper import wrap
    from parity.reference import save_reference
    from ptycho_torch.checkpoint import load_model, model_state_sha256
    from ptycho_torch.digest import arrays_sha256

    model = load_model(result.manifest.checkpoint.path)
    with np.load(result.out / "inputs.npz", allow_pickle=False) as data:
        feed = {k: data[k] for k in data.files}
    with torch.inference_mode():
        outs = wrap(model, result.signature)(
            *(torch.from_numpy(feed[n]) for n in result.signature.input_names)
        )
    outputs = {n: t.numpy() for n, t in zip(result.signature.output_names, outs)}
    save_reference(
        path,
        outputs,
        {
            "generator": "eager-pytorch (test)",
            "head": result.signature.head,
            "signature": result.signature.to_dict(),
            "weights_sha256": model_state_sha256(model),
            "inputs_sha256": arrays_sha256(feed),
        },
    )
    return path


# --- the session's builds ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def feed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_feed_file(tmp_path_factory.mktemp("feed") / "feed.npz")


@pytest.fixture(scope="session")
def built(
    tmp_path_factory: pytest.TempPathFactory, model_file: Path, feed_file: Path
) -> BuildResult:
    """The object head of ``model_file`` on ``feed_file``, no reference; do not modify it.

    Built from a neighbouring folder with relative ``--checkpoint``/``--inputs`` paths, as a
    user would type them: the manifest must record them resolved.
    """
    from export.build import build
    from export.options import BuildOptions

    root = tmp_path_factory.mktemp("build")
    shutil.copy(model_file, root / "model.pt")
    shutil.copy(feed_file, root / "feed.npz")
    (root / "cwd").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root / "cwd")
        options = BuildOptions(
            checkpoint=Path("../model.pt"),
            inputs=Path("../feed.npz"),
            out=Path("../artifacts"),
            reference="none",
        )
        return build(options)


@pytest.fixture(scope="session")
def built_physics(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The physics head at gridsize 2 (overlap constraint, shift matmuls, DFT); do not modify it."""
    from export.build import build
    from export.options import BuildOptions

    root = tmp_path_factory.mktemp("build-physics")
    model = make_model_file(root / "model.pt", seed=2, gridsize=2)
    feed = make_feed_file(root / "feed.npz", batch=2, channels=4, seed=2)
    return build(
        BuildOptions(
            checkpoint=model, inputs=feed, out=root / "artifacts", head="physics", reference="none"
        )
    )


@pytest.fixture(scope="session")
def parity_build(tmp_path_factory: pytest.TempPathFactory, built: BuildResult) -> BuildResult:
    """``built`` copied, with an eager-PyTorch ``reference.npz`` beside it; do not modify it."""
    out = tmp_path_factory.mktemp("parity") / "artifacts"
    shutil.copytree(built.out, out)
    result = dataclasses.replace(built, out=out)
    eager_reference(result, out / "reference.npz")
    return result


@pytest.fixture()
def artifacts(parity_build: BuildResult, tmp_path: Path) -> Path:
    """A private copy of ``parity_build``'s artifacts that a test may tamper with."""
    copy = tmp_path / "artifacts"
    shutil.copytree(parity_build.out, copy)
    return copy


@pytest.fixture()
def fast_export(built: BuildResult, monkeypatch: pytest.MonkeyPatch) -> None:
    """``build()`` runs for real except its export step, which copies ``built``'s files.

    For tests of what happens around the export (``--out`` checks, the lock, publishing,
    pruning, recovering killed builds), which would otherwise export again for nothing.
    Build with ``model_file`` and ``feed_file`` so that the copied files are what it would
    have written.
    """
    from export import build as build_module

    bind = inspect.signature(build_module._export_all).bind

    def copy_export(*args: object, **kwargs: object) -> object:
        tmp = Path(bind(*args, **kwargs).arguments["tmp"])  # type: ignore[arg-type]
        for source in built.out.iterdir():
            if source.is_file():
                shutil.copy2(source, tmp / source.name)
        return built.manifest

    monkeypatch.setattr(build_module, "_export_all", copy_export)


# --- error maps ----------------------------------------------------------------------------------


def _placeholder_png() -> bytes:
    """A valid 1x1 greyscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def placeholder_error_maps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parity check's error maps become 1x1 placeholder PNGs at the same paths."""
    import parity.report

    def placeholder(
        left: np.ndarray, right: np.ndarray, wrap_phase: bool, title: str, path: str | Path
    ) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_placeholder_png())
        return path

    monkeypatch.setattr(parity.report, "render_error_map", placeholder)


@pytest.fixture(autouse=True)
def _placeholder_error_maps(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parity check draws one matplotlib figure per output and runner (about 1 s each on two
    cores); tests that do not look at them get a 1x1 placeholder PNG at the same path
    (:func:`placeholder_error_maps`; a module-scoped fixture that runs a check calls it itself).
    Tests marked ``error_maps`` (and the renderer's own tests, which call it directly) draw
    the real images."""
    if not request.node.get_closest_marker("error_maps"):
        placeholder_error_maps(monkeypatch)


def conv_parameter_count(model: object) -> int:
    """Number of a PyTorch model's convolution weights and biases (the intensity scale and the
    probe excluded): the figure the original TensorFlow PtychoPINN reports."""
    from torch import nn

    assert isinstance(model, nn.Module)
    return sum(
        p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters()
    )
