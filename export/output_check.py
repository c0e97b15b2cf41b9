"""One output against the bundled reference, with parity's semantics, torch-free.

``export`` cannot import :mod:`parity` (it is the layer above), so an inference host that checks
a copied artifacts folder uses this small restatement of what ``python -m parity check`` does
for one runner against the reference:

- dtype and shape first (float32 and the signature's shape), then NaN/Inf on either side;
- an element passes when ``|a - b| <= atol + rtol * |ref| + rtol_peak * peak``, ``peak`` being
  the output's largest finite ``|ref|``; the output passes when at most ``max_fraction_out`` of
  its elements fail;
- an angle (the spec ``wraps``: phase) is compared with ``a - b`` folded into (-pi, pi], each
  difference weighted by ``min(1, ref_amplitude / 1e-2)`` (phase is undefined where the
  amplitude vanishes);
- tolerances: the ``vs-reference`` column of parity's default table for the device, then the
  reference's own entries (its provenance's ``tolerances``, a partial tolerance file).

``tests/export/test_verify.py`` checks that the defaults here equal ``parity.tolerance``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE, TensorSpec

__all__ = [
    "PHASE_WEIGHT_FLOOR",
    "Bound",
    "OutputCheck",
    "bounds_for",
    "check_output",
    "wrap_to_pi",
]

PHASE_WEIGHT_FLOOR = 1e-2
PAIR_CLASS = "vs-reference"  # the host's ONNX Runtime against the bundled reference


@dataclass(frozen=True)
class Bound:
    """``|a - b| <= atol + rtol * |ref| + rtol_peak * peak``; ``max_fraction_out`` may fail."""

    atol: float
    rtol: float = 0.0
    rtol_peak: float = 0.0
    max_fraction_out: float = 0.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"tolerance {name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"tolerance {name} must be finite and >= 0, got {value!r}")

    def describe(self, peak: float) -> str:
        text = f"atol={self.atol:g}"
        if self.rtol:
            text += f" rtol={self.rtol:g}"
        if self.rtol_peak:
            text += f" rtol_peak={self.rtol_peak:g} peak={peak:.3g}"
        return text


# parity.tolerance.default_entries(), pair class vs-reference (the figures and why: README,
# "Tolerances"; a test keeps the two equal)
_DEFAULTS: dict[str, dict[str, Bound]] = {
    AMPLITUDE: {"cpu": Bound(1e-6), "cuda": Bound(1e-5)},
    PHASE: {"cpu": Bound(4e-6), "cuda": Bound(1e-5)},
    PRED_AMPLITUDE: {"cpu": Bound(1e-6, rtol_peak=2e-6), "cuda": Bound(1e-5, rtol_peak=1e-5)},
}


def bounds_for(
    device: str, reference_tolerances: Mapping[str, Any] | None = None, atol: float | None = None
) -> dict[str, Bound]:
    """The bound of every output on ``device``.

    Args:
        device: ``cpu`` or ``cuda``.
        reference_tolerances: the reference provenance's ``tolerances`` (a partial tolerance
            file: ``{"tolerances": {output: {pair class: {device: {atol, ...}}}}}``), merged on
            top of the defaults.
        atol: when given, every output is held to this absolute tolerance instead.

    Raises:
        ValueError: a malformed entry, naming where it is.
    """
    bounds = {name: by_device[device] for name, by_device in _DEFAULTS.items()}
    entries = (reference_tolerances or {}).get("tolerances", {})
    if not isinstance(entries, Mapping):
        raise ValueError(f"'tolerances' must be an object, got {entries!r}")
    for name, by_pair in entries.items():
        entry = by_pair.get(PAIR_CLASS, {}).get(device) if isinstance(by_pair, Mapping) else None
        if entry is None:
            continue
        if not isinstance(entry, Mapping) or set(entry) - set(asdict(Bound(0.0))):
            raise ValueError(
                f"tolerance {name}/{PAIR_CLASS}/{device} is not a tolerance: {entry!r}"
            )
        base = asdict(bounds.get(name, Bound(0.0)))
        try:
            bounds[name] = Bound(**{**base, **entry})
        except ValueError as exc:
            raise ValueError(f"tolerance {name}/{PAIR_CLASS}/{device}: {exc}") from None
    if atol is not None:
        bounds = {name: Bound(atol) for name in bounds}
    return bounds


def wrap_to_pi(d: np.ndarray) -> np.ndarray:
    """Fold angles (radians) into (-pi, pi]."""
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        w = d - (2.0 * math.pi) * np.round(d / (2.0 * math.pi))
    return np.where(w <= -math.pi, w + 2.0 * math.pi, w)


@dataclass(frozen=True)
class OutputCheck:
    """One output of the model against the reference; ``problem`` is empty when it passed."""

    output: str
    passed: bool
    max_abs: float
    bound: str
    n_out: int = 0
    worst_index: tuple[int, ...] = ()
    problem: str = ""

    def line(self, runner: str) -> str:
        """``phase | onnxruntime[cpu] vs reference | PASSED max_abs=9.5e-07 atol=4e-06``."""
        verdict = "PASSED" if self.passed else "FAILED"
        text = f"{self.output} | {runner} vs reference | {verdict} max_abs={self.max_abs:.2g} {self.bound}"
        return text + (f" ({self.problem})" if self.problem else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "worst_index": list(self.worst_index)}


def check_output(
    spec: TensorSpec,
    actual: np.ndarray,
    reference: np.ndarray,
    bound: Bound,
    weight: np.ndarray | None = None,
) -> OutputCheck:
    """Compare one output (``actual``) with the reference, as the parity check does.

    Args:
        spec: the output's spec (dtype, shape, ``wraps``).
        actual: what ONNX Runtime produced.
        reference: the reference's array.
        bound: the tolerance.
        weight: for an angle, the reference's ``spec.weighted_by`` output (amplitude).
    """
    expected = f"{spec.dtype}{list(spec.shape)}"
    for side, value in (("model", actual), ("reference", reference)):
        found = f"{value.dtype}{list(value.shape)}"
        if found != expected:
            problem = f"{side} output is {found}, expected {expected}"
            return OutputCheck(spec.name, False, math.inf, bound.describe(0.0), problem=problem)
    a, b = actual.astype(np.float64), reference.astype(np.float64)
    finite_ref = np.abs(b[np.isfinite(b)])
    peak = float(finite_ref.max()) if finite_ref.size else 0.0
    nonfinite = {side: int((~np.isfinite(v)).sum()) for side, v in (("model", a), ("reference", b))}
    d = a - b
    if spec.wraps:
        d = wrap_to_pi(d)
        if weight is not None:
            d = d * np.minimum(
                1.0, np.abs(np.nan_to_num(weight.astype(np.float64))) / PHASE_WEIGHT_FLOOR
            )
    d = np.abs(d)
    limit = bound.atol + bound.rtol * np.abs(b) + bound.rtol_peak * peak
    out = ~(d <= limit)  # NaN counts as out
    finite_d = np.where(np.isfinite(d), d, -1.0)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(finite_d)), d.shape))
    max_abs = float(finite_d.max()) if finite_d.size else 0.0
    n_out = int(out.sum())
    problems = [f"{n} NaN/Inf in the {side}" for side, n in nonfinite.items() if n]
    if n_out > bound.max_fraction_out * out.size:
        problems.append(
            f"{n_out} of {out.size} elements out of tolerance, worst at {list(worst)}: "
            f"model {actual[worst]:.7g}, reference {reference[worst]:.7g}"
        )
    return OutputCheck(
        spec.name,
        not problems,
        max_abs,
        bound.describe(peak),
        n_out,
        worst,
        "; ".join(problems),
    )
