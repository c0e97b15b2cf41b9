"""Where do two backends part? Layer-by-layer bisection of one batch across backends.

``python -m export bisect --artifacts DIR --pair eager:onnxruntime`` runs both sides of a pair
on the same batch up to every named boundary of the network and compares them there:

- a **boundary** is the output of one convolution layer, after the activation that the original
  (and the TensorFlow twin) fuses into that layer: ``encoder.1.convs.conv2`` after its ReLU,
  ``amplitude_decoder.head.outer.conv`` after its swish, ``amplitude_decoder.head.centre_conv``
  before the head's activation; then the head outputs themselves (``amplitude``, ``phase``,
  ``pred_amplitude``). Names are the PyTorch module paths, which are also the twin's Keras layer
  names and (with the wrapper's ``model.`` prefix) the ONNX initializer names of each Conv's
  weights, so one name finds the same place in every backend;
- each boundary has a **block** (``encoder.1``, ``amplitude_decoder.blocks.0``,
  ``phase_decoder.head`` centre or outer path) and its **upstream** boundaries (dataflow, not
  file order: the phase decoder's first conv follows the encoder's last, not the amplitude
  decoder's).

Float32 round-off grows slowly along a network, so a boundary's relative error
(``max |left - right| / max |left|``) is *expected* to stay within ``JUMP`` times the worst
relative error upstream of it, and never to need more than the floor ``FLOOR``. The first
boundary above ``max(FLOOR, JUMP * upstream)`` is where the sides part; a healthy pair names
nothing and the table is its per-boundary noise floor.

Each side is a runner (:mod:`parity.runners`) asked for its values at the boundaries with
``infer(feed, intermediates)``: ``eager`` (forward hooks on the checkpoint's model),
``exported-program`` or ``pt2`` (``model.pt2`` run node by node, convs found by the exporter's
``nn_module_stack``), ``onnxruntime`` (a copy of ``model.onnx`` with the boundary values added as
graph outputs) and ``tf-twin`` (the TensorFlow twin with the checkpoint's weights, Keras layer
outputs; NHWC is turned into NCHW). TorchScript is compiled whole (a loaded script module takes no
hooks): compare it end to end with ``parity check``, and bisect eager against the others.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.running_stats import wrap_to_pi
from export.manifest import read_manifest
from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE, Signature
from parity.errors import ParityError
from parity.runners import (
    PHYSICS_STEPS,
    STEP_PREFIX,
    Backend,
    EagerRunner,
    Intermediate,
    Runner,
    make_runner,
    runner_type,
)
from ptycho_torch.npz import NpzRowReader

__all__ = [
    "FLOOR",
    "JUMP",
    "BisectError",
    "BisectOptions",
    "BisectResult",
    "Boundary",
    "BoundaryError",
    "bisect",
    "boundaries",
    "parse_pair",
    "read_batch",
]

log = logging.getLogger(__name__)

JUMP = 10.0  # a boundary may carry this many times its upstream's relative error
FLOOR = 1e-5  # ... and never needs less room than this (5x the 2e-6 CPU target)

_DECODER_OUTPUT = {"amplitude_decoder": AMPLITUDE, "phase_decoder": PHASE}


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
    device: str = field(default="cpu", metadata={"help": "device", "choices": ("cpu", "cuda")})
    json: Path | None = field(
        default=None, metadata={"help": "also write the per-boundary errors as JSON"}
    )


class BisectError(ParityError):
    """Bad bisect request (exit 2)."""


@dataclass(frozen=True)
class Boundary(Intermediate):
    """One place both sides are stopped at and compared: a runner's intermediate (``name`` a
    conv module path, a physics step or an output name; ``post`` ``output`` for a head output)
    with its place in the network.

    Attributes:
        block: The block it belongs to, as a person names it.
        upstream: Boundaries whose values feed this one directly.
    """

    block: str
    upstream: tuple[str, ...]


@dataclass(frozen=True)
class BoundaryError:
    """Both sides compared at one boundary."""

    name: str
    block: str
    shape: tuple[int, ...]
    max_abs: float
    peak: float
    rel: float  # max_abs / peak (max_abs when the peak is 0); inf when a side is not finite
    upstream_rel: float  # the worst rel of every boundary upstream (0 at the first)
    allowed: float  # max(FLOOR, JUMP * upstream_rel)
    jump: bool


@dataclass
class BisectResult:
    """Per-boundary errors of one pair on one batch; ``first_jump`` names where they part."""

    left: str
    right: str
    head: str
    inputs: str
    batch_start: int
    batch_size: int
    rows: list[BoundaryError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def first_jump(self) -> BoundaryError | None:
        return next((r for r in self.rows if r.jump), None)

    def to_dict(self) -> dict[str, Any]:
        jump = self.first_jump
        return {
            "left": self.left,
            "right": self.right,
            "head": self.head,
            "inputs": self.inputs,
            "batch_start": self.batch_start,
            "batch_size": self.batch_size,
            "jump_factor": JUMP,
            "floor": FLOOR,
            "first_jump": None if jump is None else {"boundary": jump.name, "block": jump.block},
            "boundaries": [
                {
                    k: (_finite_or_text(v) if isinstance(v, float) else v)
                    for k, v in asdict(r).items()
                }
                for r in self.rows
            ],
            "notes": list(self.notes),
        }

    def table(self) -> str:
        lines = [
            f"bisect {self.left} vs {self.right}: {self.head} head, samples "
            f"{self.batch_start}..{self.batch_start + self.batch_size - 1} of {self.inputs}",
            f"{'boundary':<44} {'block':<37} {'max abs':>9} {'peak':>9} {'rel':>9} {'allowed':>9}",
        ]
        first = self.first_jump
        for r in self.rows:
            mark = "  <- first jump" if r is first else ("  <- jump" if r.jump else "")
            lines.append(
                f"{r.name:<44} {r.block:<37} {r.max_abs:>9.2e} {r.peak:>9.2e} {r.rel:>9.2e} "
                f"{r.allowed:>9.2e}{mark}"
            )
        if first is None:
            worst = max((r.rel for r in self.rows), default=0.0)
            lines.append(
                f"no jump: every boundary within max({FLOOR:g}, {JUMP:g} x its upstream's relative "
                f"error); the rel column is this pair's noise floor (worst {worst:.2e})"
            )
        else:
            lines.append(
                f"first jump: {first.name} in {first.block}: relative error {first.rel:.2e}, where "
                f"its upstream noise {first.upstream_rel:.2e} allows {first.allowed:.2e}"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _finite_or_text(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def boundaries(model: Any, signature: Signature, physics_steps: bool = False) -> list[Boundary]:
    """The boundaries of a ``PtychoPINN`` in execution order, with their dataflow upstream;
    with ``physics_steps`` (physics head, both sides able) also every step of the physics
    forward (``physics.obj`` ... ``physics.pred_amplitude_unscaled``)."""
    from torch import nn

    from ptycho_torch.model import ConvPair, DecoderHead, OuterPath

    modules = dict(model.named_modules())
    out: list[Boundary] = []
    encoder_last: str | None = None
    block_last: dict[str, str] = {}
    outer_last: dict[str, str] = {}
    centre: dict[str, str] = {}
    for path, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        parent_path, _, leaf = path.rpartition(".")
        parent = modules[parent_path]
        if isinstance(parent, ConvPair):
            post = "relu"
        elif isinstance(parent, OuterPath):
            post = "silu"
        elif isinstance(parent, (DecoderHead, nn.Sequential)):
            post = "none"  # centre_conv, or the head's last conv without pad_object
        else:
            raise BisectError(f"bisect does not know the conv layer {path} (parent {parent_path})")
        if path.startswith("encoder."):
            upstream, block = encoder_last, ".".join(path.split(".")[:2])
            encoder_last = path
        else:
            decoder, rest = path.split(".", 1)
            trunk = block_last.get(decoder, encoder_last)
            if rest.startswith("blocks."):
                upstream, block = trunk, ".".join(path.split(".")[:3])
                block_last[decoder] = path
            elif rest.startswith("head.centre_conv"):
                upstream, block = trunk, f"{decoder}.head (centre path)"
                centre[decoder] = path
            elif rest.startswith("head.outer"):
                upstream, block = outer_last.get(decoder, trunk), f"{decoder}.head (outer path)"
                outer_last[decoder] = path
            else:
                raise BisectError(f"bisect does not know the conv layer {path}")
        first = () if upstream is None else (upstream,)
        out.append(Boundary(name=path, post=post, block=block, upstream=first))
    for decoder, output in _DECODER_OUTPUT.items():
        ends = tuple(p for p in (centre.get(decoder), outer_last.get(decoder)) if p)
        if output in signature.output_names:
            out.append(
                Boundary(name=output, post="output", block=f"{decoder} output", upstream=ends)
            )
    if PRED_AMPLITUDE in signature.output_names:
        last: tuple[str, ...] = (AMPLITUDE, PHASE)
        if physics_steps:
            for step, (_, feeds) in PHYSICS_STEPS.items():
                up = tuple(u if u in (AMPLITUDE, PHASE) else STEP_PREFIX + u for u in feeds)
                step_name = STEP_PREFIX + step
                out.append(
                    Boundary(name=step_name, post="step", block="physics forward", upstream=up)
                )
            last = (STEP_PREFIX + "pred_amplitude_unscaled",)
        out.append(
            Boundary(name=PRED_AMPLITUDE, post="output", block="physics head", upstream=last)
        )
    return out


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


def compare(
    bounds: Sequence[Boundary],
    left: Mapping[str, np.ndarray],
    right: Mapping[str, np.ndarray],
    signature: Signature,
) -> list[BoundaryError]:
    """Per-boundary errors and the jump rule (module docstring)."""
    rel_of: dict[str, float] = {}
    reach: dict[str, float] = {}  # worst rel at or upstream of each boundary
    rows = []
    for b in bounds:
        a = np.asarray(left[b.name], dtype=np.float64)
        r = np.asarray(right[b.name], dtype=np.float64)
        if a.shape != r.shape:
            raise ParityError(f"boundary {b.name}: left has shape {a.shape}, right {r.shape}")
        d = a - r
        if (
            b.post == "output"
            and b.name in signature.output_names
            and signature.output(b.name).wraps
        ):
            d = wrap_to_pi(d)  # phase: compare angles, as the comparison kernel does
        finite = bool(np.isfinite(a).all() and np.isfinite(r).all())
        max_abs = float(np.abs(d).max()) if finite and d.size else (0.0 if finite else math.inf)
        peak = float(np.abs(a).max()) if finite and a.size else math.inf
        rel = max_abs / peak if finite and peak > 0 else max_abs
        upstream = max((reach[u] for u in b.upstream if u in reach), default=0.0)
        allowed = max(FLOOR, JUMP * upstream)
        rel_of[b.name] = rel
        reach[b.name] = max(rel, upstream)
        rows.append(
            BoundaryError(
                b.name,
                b.block,
                tuple(a.shape),
                max_abs,
                peak,
                rel,
                upstream,
                allowed,
                not rel <= allowed,
            )
        )
    return rows


def bisect(
    artifacts: Path,
    pair: tuple[Backend, Backend],
    *,
    inputs: Path | None = None,
    sample: int = 0,
    device: str = "cpu",
    sides: tuple[Runner, Runner] | None = None,
) -> BisectResult:
    """Run both sides of ``pair`` on the batch holding ``sample`` and compare every boundary.

    ``sides`` replaces the runners ``pair`` names (already built, e.g. a deliberately broken twin
    in a test); they are activated here if they are not yet.

    Raises:
        BisectError: bad sample (exit 2).
        ParityError: artifacts this tool did not build, or a side that cannot run on ``device``
            (exit 2).
        EnvironmentUnavailable: a side's backend is missing (exit 3).
        ArtifactsChangedError: an artifact changed since the build (exit 4).
    """
    from contextlib import ExitStack

    from ptycho_torch.checkpoint import load_model

    manifest = read_manifest(artifacts)
    signature = Signature.from_dict(manifest.signature)
    inputs = inputs or artifacts / "inputs.npz"
    feed, start = read_batch(inputs, signature, sample)
    if sides is None:
        sides = (
            make_runner(pair[0], artifacts, manifest, device),
            make_runner(pair[1], artifacts, manifest, device),
        )
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
    # named by backend, as bisect always has (a check report calls the exported program pt2[cpu])
    left, right = (f"{s.backend}[{s.requested_device}]" for s in sides)
    result = BisectResult(
        left=left,
        right=right,
        head=signature.head,
        inputs=str(inputs),
        batch_start=start,
        batch_size=len(next(iter(feed.values()))),
        rows=compare(bounds, values[0], values[1], signature),
    )
    if any(s.backend is Backend.ONNXRUNTIME for s in sides):
        result.notes.append(
            "onnxruntime: boundary values are extra graph outputs of a copy of model.onnx, run "
            "with the manifest's session settings; ONNX Runtime does not fuse a node whose output "
            "is a graph output, so its kernels may differ slightly from the deployed session's"
        )
    return result
