"""One output of one runner pair compared: :class:`OutputComparison`, with its JSON round trip."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from core.json_codec import FLOAT_NAMES, encode_float
from core.tolerances import Tolerance

__all__ = ["OutputComparison", "Status"]

Status = Literal["pass", "fail"]  # one output of one pair, as reports write it


@dataclass
class OutputComparison:
    """One output of one runner pair: dtype and shape checks, then value metrics.

    ``right`` is the reference side: relative metrics and ``rtol`` divide by ``|right|``.
    Value metrics are ``None`` when no element could be compared (shape mismatch, or every
    element non-finite). Indices are full multi-indices into the output (``[sample, c, y, x]``).

    Attributes:
        output: Output name (``amplitude``, ``phase``, ``pred_amplitude``).
        left: Name of the compared runner (e.g. ``eager``).
        right: Name of the reference runner (e.g. ``tf-reference``).
        pair_class: Tolerance pair class (``torch-vs-artifact``, ``vs-reference``; empty outside
            a parity check).
        device: Device the pair ran on (``cpu``, ``cuda``).
        tolerance: Criterion applied.
        status: ``pass`` or ``fail``.
        failures: Failure kinds in order: ``dtype``, ``shape``, ``nonfinite``, ``tolerance``.
        messages: One human-readable line per failure.
        expected_dtype: Dtype both sides must have.
        dtype_left: Dtype of the left output.
        dtype_right: Dtype of the right output.
        shape_left: Shape of the left output (axis 0 summed over chunks).
        shape_right: Shape of the right output.
        wrap_phase: Whether differences were wrapped into (-pi, pi].
        weighted: Whether phase errors were weighted by the reference amplitude.
        rel_floor: Denominator floor of the relative error.
        peak: Peak ``max |ref|`` that scaled the tolerance's ``rtol_peak`` (None without one).
        n_elements: Elements per side (when shapes match).
        n_compared: Elements finite on both sides (the value metrics cover these).
        max_abs: Largest absolute difference.
        max_rel: Largest ``|a-b| / max(|ref|, rel_floor)``.
        mean_abs: Mean absolute difference.
        rms: Root mean square difference.
        rel_l2: ``||a-b|| / ||ref||``.
        cosine: Cosine similarity (of unit phasors for phase).
        max_ratio: Largest ``|a-b| / (atol + rtol*|ref| + rtol_peak*peak)``; above 1 means out
            of tolerance.
        n_out: Elements outside the tolerance (non-finite ones included).
        fraction_out: ``n_out / n_elements``.
        nan_left: NaN count on the left.
        nan_right: NaN count on the right.
        inf_left: Inf count on the left.
        inf_right: Inf count on the right.
        first_nan_left: First NaN positions on the left (at most a few).
        first_nan_right: First NaN positions on the right.
        first_inf_left: First Inf positions on the left.
        first_inf_right: First Inf positions on the right.
        worst_index: Element using the largest share of its tolerance.
        worst_left: Left value there.
        worst_right: Right value there.
        worst_sample: Sample (axis 0) to draw an error map of.
    """

    output: str
    left: str
    right: str
    tolerance: Tolerance
    status: Status
    pair_class: str = ""
    device: str = ""
    failures: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    expected_dtype: str = "float32"
    dtype_left: str = ""
    dtype_right: str = ""
    shape_left: list[int] = field(default_factory=list)
    shape_right: list[int] = field(default_factory=list)
    wrap_phase: bool = False
    weighted: bool = False
    rel_floor: float = 0.0
    peak: float | None = None
    n_elements: int = 0
    n_compared: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    rms: float | None = None
    rel_l2: float | None = None
    cosine: float | None = None
    max_ratio: float | None = None
    n_out: int = 0
    fraction_out: float | None = None
    nan_left: int = 0
    nan_right: int = 0
    inf_left: int = 0
    inf_right: int = 0
    first_nan_left: list[list[int]] = field(default_factory=list)
    first_nan_right: list[list[int]] = field(default_factory=list)
    first_inf_left: list[list[int]] = field(default_factory=list)
    first_inf_right: list[list[int]] = field(default_factory=list)
    worst_index: list[int] | None = None
    worst_left: float | None = None
    worst_right: float | None = None
    worst_sample: int | None = None

    @property
    def passed(self) -> bool:
        """True when the status is ``pass``."""
        return self.status == "pass"

    def label(self) -> str:
        """``amplitude | eager vs onnxruntime[cpu]``."""
        return f"{self.output} | {self.left} vs {self.right}"

    def log_line(self) -> str:
        """Polygraphy-style line: ``amplitude | eager vs ort[cpu] | PASSED max_abs=3.1e-07 atol=1e-06``."""
        parts = [f"{self.label()} | {'PASSED' if self.passed else 'FAILED'}"]
        if self.failures:
            parts.append(f"[{', '.join(self.failures)}]")
        parts.append(f"max_abs={_fmt(self.max_abs)}")
        if self.tolerance.rtol:
            parts.append(f"max_rel={_fmt(self.max_rel)}")
        parts.append(f"atol={_fmt(self.tolerance.atol)}")
        if self.tolerance.rtol:
            parts.append(f"rtol={_fmt(self.tolerance.rtol)}")
        if self.tolerance.rtol_peak:
            parts.append(f"rtol_peak={_fmt(self.tolerance.rtol_peak)} peak={_fmt(self.peak)}")
        if self.n_out:
            parts.append(f"out={self.n_out}/{self.n_elements}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite metric floats become strings."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["tolerance"] = self.tolerance.to_dict()
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = encode_float(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputComparison:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: On an unknown key or a malformed tolerance.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown OutputComparison keys {unknown}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "tolerance":
                value = Tolerance.from_dict(value)
            elif isinstance(value, str) and value in FLOAT_NAMES and known[key].type != "str":
                value = FLOAT_NAMES[value]
            kwargs[key] = value
        return cls(**kwargs)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"
