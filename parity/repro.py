"""A reproducer folder for a failing parity check: ``python -m export check ... --repro DIR``.

For the first failing pair: the artifact-sized batch holding its worst sample as fed
(``inputs.npz``), both sides' outputs (``left_<output>.npy``, ``right_<output>.npy``), the
artifacts' ``model.onnx`` and ``manifest.json`` and the failing torch side's own file,
``case.json`` (pair, batch, tolerances with their peak, measured errors, environment, bisect
command), and ``rerun.py`` (:mod:`parity.rerun`) with the comparison kernel's files in
``core/``: numpy and onnxruntime only, exit 1 when the failure reproduces. The folder is written
beside ``DIR`` and renamed into place, so a failed write leaves nothing.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import core
from core.json_codec import encode_tree
from core.output_comparison import OutputComparison
from export.signature import Signature
from parity.errors import ParityError
from parity.pairs import Pair
from parity.runners import Backend, ReferenceRunner, Runner, runner_type
from parity.streaming import batch_feed
from ptycho_torch.npz import NpzRowReader

__all__ = ["bisect_command", "check_repro_target", "write_repro"]

_TORCH_FILES = {
    Backend.TORCHSCRIPT: "model.ts",
    Backend.EXPORTED_PROGRAM: "model.pt2",
    Backend.EAGER: "weights.pt",
}


def bisect_command(
    artifacts: Path, left: Backend, right: Backend, sample: int, device: str = "cpu"
) -> str | None:
    """The ``python -m export bisect`` line for a failing pair of backends, or None when a side
    is compiled whole (TorchScript) and cannot be stopped at a layer. A stored TensorFlow
    reference holds outputs only: the live twin it is made with stands in for it."""
    left, right = (Backend.TF_TWIN if b is Backend.TF_REFERENCE else b for b in (left, right))
    if left is right or not (
        runner_type(left).stops_at_layers and runner_type(right).stops_at_layers
    ):
        return None
    where = " --device cuda" if device == "cuda" else ""
    return (
        f"python -m export bisect --artifacts {artifacts} --pair {left}:{right} "
        f"--sample {sample}{where}"
    )


def check_repro_target(out: Path) -> None:
    """Refuse a ``--repro`` folder that already holds something (before any work is done)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ParityError(f"--repro {out} already exists and is not empty; give a new folder")


def write_repro(
    out: Path,
    *,
    artifacts: Path,
    signature: Signature,
    inputs: NpzRowReader,
    n: int,
    pairs: Sequence[Pair],
    comparisons: Sequence[OutputComparison],
    environment: Mapping[str, Any],
) -> Path | None:
    """Write the reproducer of the first failing pair (its runners still active); None if none
    failed."""
    failed = [c for c in comparisons if c.status != "pass"]
    if not failed:
        return None
    first = failed[0]
    pair = next(p for p in pairs if (p.left.name, p.right.name) == (first.left, first.right))
    sample = first.worst_sample if first.worst_sample is not None else 0
    batch = signature.inputs[0].shape[0]
    start = (sample // batch) * batch
    stop = min(start + batch, n)
    feed = batch_feed(inputs, signature, start, stop)
    sides = {
        "left": _outputs(pair.left, feed, start, stop),
        "right": _outputs(pair.right, feed, start, stop),
    }
    case = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "artifacts": str(artifacts),
        "pair": {
            "left": pair.left.name,
            "left_kind": pair.left.kind,
            "right": pair.right.name,
            "right_kind": pair.right.kind,
            "class": pair.pair_class,
            "device": pair.device,
        },
        "batch": {"start": start, "stop": stop, "size": batch, "worst_sample": sample},
        "outputs": {
            spec.name: {"wraps": spec.wraps, "weighted_by": spec.weighted_by}
            for spec in signature.outputs
        },
        "failures": [_failure(c) for c in failed if (c.left, c.right) == (first.left, first.right)],
        "files": [],  # filled in as they are copied
        "bisect": bisect_command(
            artifacts, pair.left.backend, pair.right.backend, sample, pair.device
        ),
        "environment": encode_tree(dict(environment)),
    }
    return _write_folder(out, artifacts, pair, feed, sides, case)


def _write_folder(
    out: Path,
    artifacts: Path,
    pair: Pair,
    feed: Mapping[str, np.ndarray],
    sides: Mapping[str, Mapping[str, np.ndarray]],
    case: dict[str, Any],
) -> Path:
    """The folder, written beside ``out`` and renamed into place (nothing is left on failure)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        np.savez(staging / "inputs.npz", **feed)  # type: ignore[arg-type]
        for side, values in sides.items():
            for name, value in values.items():
                np.save(staging / f"{side}_{name}.npy", value, allow_pickle=False)
        copied = []
        torch_files = [_TORCH_FILES.get(r.backend) for r in (pair.left, pair.right)]
        for name in ("model.onnx", "manifest.json", *filter(None, torch_files)):
            if (artifacts / name).is_file() and name not in copied:
                shutil.copy2(artifacts / name, staging / name)
                copied.append(name)
        case["files"] = sorted(copied)
        (staging / "case.json").write_text(json.dumps(case, indent=2) + "\n")
        _copy_rerun(staging)
        (staging / "README.md").write_text(_readme(case))
        if out.exists():
            out.rmdir()  # empty (check_repro_target ran before the check)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _outputs(
    runner: Runner, feed: Mapping[str, np.ndarray], start: int, stop: int
) -> dict[str, np.ndarray]:
    if isinstance(runner, ReferenceRunner):
        return runner.rows(start, stop)  # replays rows without moving its position
    return {k: np.ascontiguousarray(v[: stop - start]) for k, v in runner.infer(feed).items()}


def _copy_rerun(into: Path) -> None:
    """``rerun.py`` (:mod:`parity.rerun`) and, in ``core/``, the comparison kernel it imports."""
    shutil.copy2(Path(__file__).with_name("rerun.py"), into / "rerun.py")
    kernel = into / "core"
    kernel.mkdir()
    source = Path(core.__file__).parent
    for name in ("__init__", *core.KERNEL_MODULES):
        shutil.copy2(source / f"{name}.py", kernel / f"{name}.py")


def _failure(c: OutputComparison) -> dict[str, Any]:
    return {
        "output": c.output,
        **c.tolerance.to_dict(),  # atol, rtol, rtol_peak, max_fraction_out
        "peak": c.peak,
        "expected_dtype": c.expected_dtype,
        "weighted": c.weighted,
        "failures": list(c.failures),
        "messages": list(c.messages),
        "max_abs": c.max_abs,
        "n_out": c.n_out,
        "worst_sample": c.worst_sample,
    }


def _readme(case: Mapping[str, Any]) -> str:
    pair = case["pair"]
    outputs = ", ".join(f["output"] for f in case["failures"])
    lines = [
        f"# Parity reproducer: {pair['left']} vs {pair['right']} ({outputs})",
        "",
        f"Samples {case['batch']['start']}..{case['batch']['stop'] - 1} of the check's inputs "
        f"(worst sample {case['batch']['worst_sample']}), made {case['created']}.",
        "",
        "Rerun anywhere with numpy and onnxruntime (no project, no torch):",
        "",
        "    python rerun.py",
        "",
        "It exits 1 when the failure reproduces and 0 when it does not. `case.json` holds the "
        "tolerances, the measured errors and the environment the check ran in.",
    ]
    if case.get("bisect"):
        lines += [
            "",
            "Where the two sides part, with the project installed:",
            "",
            f"    {case['bisect']}",
        ]
    return "\n".join(lines) + "\n"
