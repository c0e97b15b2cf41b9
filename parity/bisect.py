"""Where do two backends part? Layer-by-layer bisection of one batch across backends.

``python -m export bisect --artifacts DIR --pair eager:onnxruntime`` runs both sides of a pair
(runners, :mod:`parity.runners`, asked for intermediates) on the same batch up to every
boundary of the network (:mod:`parity.boundaries`: each conv layer after its fused activation,
the head outputs, the physics steps) and compares them there; the first boundary whose error
jumps above what its upstream carried is where the sides part (:mod:`parity.jump_rule`).
TorchScript is compiled whole (a loaded script module takes no hooks): compare it end to end
with ``parity check``.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.tolerances import DEVICES, Device
from export.manifest import Manifest, read_manifest
from export.signature import Signature
from parity.boundaries import Boundary, boundaries
from parity.errors import BisectError
from parity.jump_rule import BisectResult, compare_at_boundaries
from parity.runners import Backend, EagerRunner, Runner, make_runner, runner_type
from ptycho_torch.npz import NpzRowReader

__all__ = ["BisectOptions", "bisect", "parse_pair", "read_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BisectOptions:
    """What ``bisect`` compares: two backends of an artifacts folder on one batch."""

    artifacts: Path = field(metadata={"help": "folder written by `python -m export build`"})
    pair: str = field(
        default="eager:onnxruntime",
        metadata={
            "help": "LEFT:RIGHT, each of eager, exported-program (or pt2), onnxruntime, tf-twin"
        },
    )
    inputs: Path | None = field(
        default=None, metadata={"help": "inputs NPZ (default: ARTIFACTS/inputs.npz, or a repro's)"}
    )
    sample: int = field(
        default=0,
        metadata={
            "help": "bisect the artifact-sized batch holding this sample (a report's worst sample)"
        },
    )
    device: Device = field(default="cpu", metadata={"help": "device", "choices": DEVICES})
    json: Path | None = field(
        default=None, metadata={"help": "also write the per-boundary errors as JSON"}
    )


def parse_pair(text: str) -> tuple[Backend, Backend]:
    """``"eager:onnxruntime"`` -> ``(Backend.EAGER, Backend.ONNXRUNTIME)``; each side named as
    :meth:`Backend.parse` reads it (``pt2`` is the exported program), any case."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 2 or not all(parts):
        raise BisectError(f"--pair {text!r}: expected LEFT:RIGHT, e.g. eager:onnxruntime")
    left, right = (_side(text, part) for part in parts)
    if left is right:
        raise BisectError(f"--pair {text!r}: both sides are {left}; name two different sides")
    return left, right


def _side(text: str, part: str) -> Backend:
    layered = [b for b in Backend if runner_type(b).stops_at_layers]
    try:
        backend = Backend.parse(part)
    except ValueError:
        raise BisectError(
            f"--pair {text!r}: unknown side {part.lower()!r}; sides are {Backend.names(layered)}"
        ) from None
    if backend is Backend.TF_REFERENCE:
        raise BisectError(
            f"--pair {text!r}: {part} holds stored outputs only and cannot be stopped at a layer; "
            f"bisect {Backend.TF_TWIN}, the live twin such a reference is made with"
        )
    if backend not in layered:
        raise BisectError(
            f"--pair {text!r}: {part} runs as one compiled program and cannot be stopped at a "
            f"layer; bisect {' or '.join(layered)} (compare {part} end to end with `python -m export check`)"
        )
    return backend


def read_batch(
    inputs: Path, signature: Signature, sample: int
) -> tuple[dict[str, np.ndarray], int]:
    """The artifact-sized batch holding ``sample`` (and where it starts) from an inputs NPZ."""
    size = signature.inputs[0].shape[0]
    with NpzRowReader(inputs, "inputs file") as rows:
        held = rows.member(signature.input_names[0]).shape[0]
        if not 0 <= sample < held:
            raise BisectError(f"--sample {sample}: {inputs} holds samples 0..{held - 1}")
        start = (sample // size) * size
        if start + size > held:
            raise BisectError(
                f"--sample {sample}: the batch {start}..{start + size - 1} is past the end of "
                f"{inputs} ({held} samples); pick a sample in a full batch of {size}"
            )
        feed = {n: rows.rows(n, start, start + size) for n in signature.input_names}
    signature.check_feed(feed)
    return feed, start


def bisect(
    artifacts: Path,
    pair: tuple[Backend, Backend],
    *,
    inputs: Path | None = None,
    sample: int = 0,
    device: Device = "cpu",
    sides: tuple[Runner, Runner] | None = None,
) -> BisectResult:
    """Run both sides of ``pair`` on the batch holding ``sample`` and compare every boundary;
    ``sides``, when given, replaces the runners ``pair`` names (e.g. a broken twin in a test).

    Raises:
        BisectError: bad sample (exit 2).
        ParityError: artifacts this tool did not build, or a side that cannot run on ``device``
            (exit 2).
        EnvironmentUnavailable: a side's backend is missing (exit 3).
        ArtifactsChangedError: an artifact changed since the build (exit 4).
    """
    manifest = read_manifest(artifacts)
    signature = Signature.from_dict(manifest.signature)
    inputs = inputs or artifacts / "inputs.npz"
    feed, start = read_batch(inputs, signature, sample)
    if sides is None:
        sides = (
            make_runner(pair[0], artifacts, manifest, device),
            make_runner(pair[1], artifacts, manifest, device),
        )
    bounds, values = _run_to_boundaries(sides, artifacts, manifest, signature, feed)
    # named by backend, as bisect always has (a check report calls the exported program pt2[cpu])
    left, right = (f"{s.backend}[{s.requested_device}]" for s in sides)
    result = BisectResult(
        left=left,
        right=right,
        head=signature.head,
        inputs=str(inputs),
        batch_start=start,
        batch_size=len(next(iter(feed.values()))),
        rows=compare_at_boundaries(bounds, values[0], values[1], signature),
    )
    if any(s.backend is Backend.ONNXRUNTIME for s in sides):
        result.notes.append(
            "onnxruntime: boundary values are extra graph outputs of a copy of model.onnx, run "
            "with the manifest's session settings; ONNX Runtime does not fuse a node whose output "
            "is a graph output, so its kernels may differ slightly from the deployed session's"
        )
    return result


def _run_to_boundaries(
    sides: tuple[Runner, Runner],
    artifacts: Path,
    manifest: Manifest,
    signature: Signature,
    feed: dict[str, np.ndarray],
) -> tuple[list[Boundary], list[dict[str, np.ndarray]]]:
    """The boundaries of the artifacts' network, and each side's values at them."""
    from ptycho_torch.checkpoint import load_model

    steps = signature.head == "physics" and all(s.physics_steps for s in sides)
    values = []
    with ExitStack() as stack:
        for side in sides:
            stack.enter_context(side)
        # the boundary list needs the module tree only: an eager side's model, if one is loaded
        model = next((s.model for s in sides if isinstance(s, EagerRunner)), None)
        if model is None:
            model = load_model(manifest.weights_path(artifacts))
        bounds = boundaries(model, signature, steps)
        for side in sides:
            log.info("bisect: running %s to %d boundaries", side.name, len(bounds))
            values.append(side.infer(feed, bounds))
    return bounds, values
