"""The jump rule: where two backends part, from their errors at every boundary of one batch.

Float32 round-off grows slowly along a network, so a boundary's relative error
(``max |left - right| / max |left|``) is *expected* to stay within :data:`JUMP` times the worst
relative error upstream of it, and never to need more than the floor :data:`FLOOR`. The first
boundary above ``max(FLOOR, JUMP * upstream)`` is where the sides part; a healthy pair names
nothing and the table is its per-boundary noise floor. Phase is compared as angles, as the
comparison kernel does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.running_stats import wrap_to_pi
from export.signature import Signature
from parity.boundaries import Boundary
from parity.errors import ParityError

__all__ = ["FLOOR", "JUMP", "BisectResult", "BoundaryError", "compare_at_boundaries"]

JUMP = 10.0  # a boundary may carry this many times its upstream's relative error
FLOOR = 1e-5  # ... and never needs less room than this (5x the 2e-6 CPU target)


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


def compare_at_boundaries(
    bounds: Sequence[Boundary],
    left: Mapping[str, np.ndarray],
    right: Mapping[str, np.ndarray],
    signature: Signature,
) -> list[BoundaryError]:
    """Per-boundary errors and the jump rule (module docstring)."""
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
