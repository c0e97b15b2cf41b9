"""Profiler events of training steps sorted into the parts of a step (:data:`PARTS`).

The steps are ``record_function`` ranges named :data:`STEP` (:class:`bench.train_profile.StepProfiler`
marks them), the network and the physics forward ranges :data:`NETWORK` and :data:`PHYSICS`
(:func:`bench.train_profile.label_regions`). :func:`classify` sorts the events inside the steps:

- forward ops by the range they ran in; convolutions (:data:`CONV_FORWARD`: torch's, and the
  training step's own paths, :mod:`ptycho_torch.fused_conv` and :mod:`ptycho_torch.narrow_conv`,
  which ReLU fused into the conv counts with) apart; the loss
  and anything else outside both ranges as other operators;
- backward ops by the forward op that made their autograd node (its sequence number), so that
  the physics' backward is told from the network's; convolutions' backward
  (:data:`CONV_BACKWARD`) apart;
- the optimizer (``Optimizer.step`` and ``zero_grad``; Lightning runs the forward and backward
  inside ``Optimizer.step``, its closure, and those are told apart), data loading
  (``enumerate(DataLoader)``);
- a compiled graph (``torch.compile``) as one part for its forward and one for its backward;
- what no operator accounts for (Python, Lightning's hooks, logging): the steps' wall time less
  the time of the operators inside them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "NETWORK",
    "PARTS",
    "PHYSICS",
    "STEP",
    "PartTime",
    "StepProfile",
    "classify",
    "combine",
]

STEP, NETWORK, PHYSICS = "ptycho:step", "ptycho:network", "ptycho:physics"  # the range names
_REGIONS = {NETWORK: "network", PHYSICS: "physics"}

# Convolutions' forward events (outermost first) and backward nodes: torch's, and the autograd
# Functions of ptycho_torch.fused_conv (conv + ReLU) and ptycho_torch.narrow_conv, named by class.
CONV_FORWARD = ("aten::convolution", "_ConvReLU", "_OneOutput", "_OneInput")
CONV_BACKWARD = (
    "ConvolutionBackward",
    "_ConvReLUBackward",
    "_OneOutputBackward",
    "_OneInputBackward",
)

_OTHER = "loss and other operators (forward and backward)"
_OPTIMIZER = "optimizer (Adam step, zero_grad)"
# The rows of the table, in order.
PARTS = (
    "network forward: convolutions",
    "network forward: other ops",
    "network backward: convolutions",
    "network backward: other ops",
    "physics forward (FFT included)",
    "physics backward (FFT included)",
    "compiled graph forward",
    "compiled graph backward",
    _OPTIMIZER,
    "data loading",
    "loss and other operators (forward and backward)",
    "Python, Lightning hooks, logging (no operator)",
)


@dataclass(frozen=True)
class PartTime:
    """One row: milliseconds per step and the share of the step's wall time."""

    part: str
    ms_per_step: float
    share: float


@dataclass(frozen=True)
class StepProfile:
    """The parts of an average profiled step (rows in :data:`PARTS` order)."""

    steps: int
    wall_ms_per_step: float  # under the profiler
    rows: tuple[PartTime, ...]
    fft_ms_per_step: float  # FFT ops, forward and backward (inside the physics rows)
    # "in -> out @ HxW": (forward ms, backward ms) per step, every convolution of that shape
    convolutions: dict[str, tuple[float, float]] = field(default_factory=dict)

    def table(self) -> str:
        """A Markdown table: part, ms per step, share."""
        lines = ["| part of a step | ms per step | share |", "|---|---|---|"]
        for row in self.rows:
            lines.append(f"| {row.part} | {row.ms_per_step:.1f} | {100 * row.share:.1f}% |")
        lines.append(f"| **step (wall, profiled)** | **{self.wall_ms_per_step:.1f}** | 100% |")
        lines.append(f"| of which FFTs (in the physics rows) | {self.fft_ms_per_step:.1f} | |")
        return "\n".join(lines)

    def convolution_table(self) -> str:
        """A Markdown table: convolutions by shape, forward and backward ms per step."""
        lines = [
            "| convolution (in -> out channels @ output size, batch) | forward ms | backward ms |",
            "|---|---|---|",
        ]
        ranked = sorted(self.convolutions.items(), key=lambda kv: -sum(kv[1]))
        for shape, (fwd, bwd) in ranked:
            lines.append(f"| {shape} | {fwd:.1f} | {bwd:.1f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify(events: Iterable[Any]) -> StepProfile:
    """Sort the profiler events (``profile.events()``) inside the marked steps into :data:`PARTS`.

    Raises:
        ValueError: no marked step among the events.
    """
    events = list(events)
    steps = [e for e in events if e.name == STEP]
    if not steps:
        raise ValueError("no step was marked (StepProfiler.step_begin/step_end)")
    regions = _forward_regions(events)
    us = dict.fromkeys(PARTS, 0.0)
    for step in steps:
        for event in step.cpu_children:
            for part, t in _parts_of(event, regions):
                us[part] += t
    wall_us = sum(e.cpu_time_total for e in steps)
    us[PARTS[-1]] = max(0.0, wall_us - sum(us.values()))
    n = len(steps)
    wall_ms = wall_us / 1e3 / n
    rows = tuple(PartTime(p, us[p] / 1e3 / n, us[p] / 1e3 / n / wall_ms) for p in PARTS)
    inside = [e for step in steps for e in _descendants(step)]
    fft = sum(e.cpu_time_total for e in inside if e.name.startswith("aten::_fft_"))
    return StepProfile(n, wall_ms, rows, fft / 1e3 / n, _convolutions(inside, n))


def combine(profiles: Sequence[StepProfile]) -> StepProfile:
    """The average step of several profiles (each weighted by its steps).

    Raises:
        ValueError: no profile.
    """
    if not profiles:
        raise ValueError("no step was marked (StepProfiler.step_begin/step_end)")
    n = sum(p.steps for p in profiles)

    def mean(values: Iterable[tuple[float, int]]) -> float:
        return sum(v * k for v, k in values) / n

    wall = mean((p.wall_ms_per_step, p.steps) for p in profiles)
    rows = []
    for i, part in enumerate(PARTS):
        ms = mean((p.rows[i].ms_per_step, p.steps) for p in profiles)
        rows.append(PartTime(part, ms, ms / wall))
    shapes = {k for p in profiles for k in p.convolutions}
    convolutions = {
        k: (
            mean((p.convolutions.get(k, (0.0, 0.0))[0], p.steps) for p in profiles),
            mean((p.convolutions.get(k, (0.0, 0.0))[1], p.steps) for p in profiles),
        )
        for k in shapes
    }
    fft = mean((p.fft_ms_per_step, p.steps) for p in profiles)
    return StepProfile(n, wall, tuple(rows), fft, convolutions)


def _descendants(event: Any) -> Iterator[Any]:
    for child in event.cpu_children:
        yield child
        yield from _descendants(child)


def _convolutions(events: list[Any], steps: int) -> dict[str, tuple[float, float]]:
    """Forward and backward ms per step of every convolution shape (needs ``record_shapes``)."""
    found: dict[str, list[float]] = {}
    for e in events:
        if e.name in ("aten::convolution", "mkldnn::_convolution_pointwise"):
            x, w = e.input_shapes[0], e.input_shapes[1]
            at = 0
        elif e.name == "aten::convolution_backward":
            x, w = e.input_shapes[1], e.input_shapes[2]
            at = 1
        else:
            continue
        if len(x) != 4 or len(w) != 4:
            continue
        key = f"{w[1]} -> {w[0]} @ {x[2]}x{x[3]}, batch {x[0]}"
        found.setdefault(key, [0.0, 0.0])[at] += e.cpu_time_total / 1e3 / steps
    return {k: (v[0], v[1]) for k, v in found.items()}


def _forward_regions(events: list[Any]) -> dict[int, str]:
    """Autograd sequence number -> ``network`` or ``physics``: the range of the forward op."""
    regions: dict[int, str] = {}
    for e in events:
        if e.sequence_nr < 0 or "Backward" in e.name or e.name.startswith("autograd::"):
            continue
        region = _enclosing_region(e)
        if region:
            regions.setdefault(e.sequence_nr, region)
    return regions


def _enclosing_region(event: Any) -> str | None:
    while event is not None:
        if event.name in _REGIONS:
            return _REGIONS[event.name]
        event = event.cpu_parent
    return None


def _descendants_named(event: Any, prefixes: tuple[str, ...]) -> float:
    """Inclusive time of the outermost descendants whose name starts with one of ``prefixes``."""
    total = 0.0
    for child in event.cpu_children:
        if child.name.startswith(prefixes):
            total += child.cpu_time_total
        else:
            total += _descendants_named(child, prefixes)
    return total


def _parts_of(
    event: Any, regions: dict[int, str], default: str = _OTHER
) -> list[tuple[str, float]]:
    """The parts one event's time belongs to; plain operators go to ``default``.

    Ranges that hold other work are opened up: Lightning runs the forward and backward inside
    ``Optimizer.step`` (its closure), so only what is left of that is the optimizer's.
    """
    name, total = event.name, event.cpu_time_total
    if name in _REGIONS:
        return _forward_parts(event)
    if name.startswith("autograd::engine::evaluate_function"):
        return _backward_parts(event, regions)
    if name.startswith("enumerate(DataLoader)"):
        return [("data loading", total)]
    if name.startswith(("Torch-Compiled Region", "CompiledFunction")) and "Backward" not in name:
        return [("compiled graph forward", total)]
    if name.startswith("Optimizer."):
        default = _OPTIMIZER
    elif name.startswith("aten::") or not event.cpu_children:
        return [(default, total)]
    parts = [(default, event.self_cpu_time_total)]
    for child in event.cpu_children:
        parts.extend(_parts_of(child, regions, default))
    return parts


def _forward_parts(event: Any) -> list[tuple[str, float]]:
    region, total = _REGIONS[event.name], event.cpu_time_total
    if region == "network":
        conv = _descendants_named(event, CONV_FORWARD)
        return [
            ("network forward: convolutions", conv),
            ("network forward: other ops", total - conv),
        ]
    return [("physics forward (FFT included)", total)]


def _backward_parts(event: Any, regions: dict[int, str]) -> list[tuple[str, float]]:
    total = event.cpu_time_total
    node = next((c for c in event.cpu_children if c.sequence_nr >= 0), None)
    node_name = node.name if node is not None else event.name
    if "Compiled" in node_name:
        return [("compiled graph backward", total)]
    region = regions.get(node.sequence_nr) if node is not None else None
    if region == "physics":
        return [("physics backward (FFT included)", total)]
    if region == "network":
        if node_name.startswith(CONV_BACKWARD):
            return [("network backward: convolutions", total)]
        return [("network backward: other ops", total)]
    return [(_OTHER, total)]
