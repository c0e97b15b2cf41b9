"""One output's pass criterion (:class:`Tolerance`), what tolerances are keyed by, and the defaults.

An element passes when ``|left - right| <= atol + rtol * |right| + rtol_peak * peak``
(``right`` is the reference side of a comparison, as in Polygraphy; ``peak`` is the largest
``|value|`` of that output over the whole compared set: the reference's, or eager PyTorch's
when there is no reference). An output passes when the fraction of failing elements is at most
``max_fraction_out`` (0 by default: every element must pass).

``rtol_peak`` judges an output against its own scale: float32 carries ~6e-8 of a value, so an
output that peaks at 674 (the original's gridsize-1 amplitude, whose swish border path is
unbounded) cannot meet an absolute 1e-6, while ``rtol`` alone would demand near-exact dark
pixels. The default table uses it for ``pred_amplitude`` (2e-6 of the peak on CPU, 1e-5 on
CUDA); references imported from the original TensorFlow PtychoPINN carry their own
peak-relative entries for amplitude and phase too (see ``parity.import_reference``).

Pair classes:

- ``torch-vs-artifact``: eager PyTorch against one of its own artifacts (TorchScript,
  ``.pt2``, ONNX Runtime) on the same device. Same weights, same float32 math, different
  kernels and summation order.
- ``vs-reference``: any runner against the TensorFlow reference. Different framework and
  convolution algorithms, yet measured at about 1e-7 (amplitude) on CPU for this network, so
  the same bounds hold (README, "Measured figures").

Phase is ``pi * tanh`` of a deep float32 conv stack: measured against a float64 run of the
trained demo model, eager PyTorch, ONNX Runtime and the TensorFlow twin are each 0.9-1.5e-6 rad
off, so two float32 backends can differ by ~2e-6; its CPU bound is 4e-6 rad (6e-7 of 2*pi).

Devices: ``cpu`` and ``cuda``. GPU tolerances assume TF32 is off (the parity precision
policy); cuDNN may still pick other algorithms than the CPU kernels, so they are looser.

Default table (``atol`` / ``rtol`` / ``rtol_peak``; ``max_fraction_out`` is 0 everywhere):

==================  ==================  ===================  ====================
output              pair class          cpu                  cuda
==================  ==================  ===================  ====================
amplitude           torch-vs-artifact   1e-6 / 0 / 0         1e-5 / 0 / 0
amplitude           vs-reference        1e-6 / 0 / 0         1e-5 / 0 / 0
phase               torch-vs-artifact   4e-6 / 0 / 0         1e-5 / 0 / 0
phase               vs-reference        4e-6 / 0 / 0         1e-5 / 0 / 0
pred_amplitude      torch-vs-artifact   1e-6 / 0 / 2e-6      1e-5 / 0 / 1e-5
pred_amplitude      vs-reference        1e-6 / 0 / 2e-6      1e-5 / 0 / 1e-5
==================  ==================  ===================  ====================

``amplitude`` is a sigmoid output in [0, 1] and ``phase`` is ``pi * tanh`` in radians (its
:class:`export.signature.TensorSpec` says ``wraps``: compared with the difference wrapped into
(-pi, pi]); both use absolute tolerances. ``pred_amplitude`` (the physics head's diffraction
amplitude) reaches 1e3 to 1e4, so it is judged against its peak; its ``atol`` only covers dark
pixels where the FFT's absolute rounding noise dominates.

Tables of these, override files and calibration: :mod:`parity.tolerances`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from export.signature import AMPLITUDE, OUTPUT_NAMES, PHASE, PRED_AMPLITUDE

__all__ = [
    "DEVICES",
    "OUTPUTS",
    "PAIR_CLASSES",
    "REFERENCE_KINDS",
    "Tolerance",
    "classify_pair",
    "default_entries",
]

OUTPUTS = OUTPUT_NAMES
PAIR_CLASSES = ("torch-vs-artifact", "vs-reference")
DEVICES = ("cpu", "cuda")
REFERENCE_KINDS = ("tf-reference", "tf-live")
_TOLERANCE_KEYS = ("atol", "rtol", "max_fraction_out", "rtol_peak")


@dataclass(frozen=True)
class Tolerance:
    """Pass criterion for one output: ``|a - b| <= atol + rtol * |ref| + rtol_peak * peak``.

    Attributes:
        atol: Absolute tolerance, in the output's unit.
        rtol: Relative tolerance, a multiple of ``|ref|`` (element by element).
        max_fraction_out: Largest fraction of elements allowed outside the bound.
        rtol_peak: Multiple of the output's peak ``max |ref|`` over the whole compared set.
    """

    atol: float
    rtol: float
    max_fraction_out: float = 0.0
    rtol_peak: float = 0.0

    def __post_init__(self) -> None:
        for name in _TOLERANCE_KEYS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"Tolerance.{name} must be a number, got {value!r}")
            if not value >= 0.0 or value == float("inf"):
                raise ValueError(f"Tolerance.{name} must be finite and >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.max_fraction_out > 1.0:
            raise ValueError(
                f"Tolerance.max_fraction_out must be <= 1, got {self.max_fraction_out}"
            )

    def floor(self, peak: float | None) -> float:
        """The part of the bound that is the same for every element: ``atol + rtol_peak * peak``.

        Raises:
            ValueError: If ``rtol_peak`` is set and ``peak`` is unknown.
        """
        if not self.rtol_peak:
            return self.atol
        if peak is None or not math.isfinite(peak):
            raise ValueError(
                f"a tolerance with rtol_peak={self.rtol_peak:g} needs the output's finite peak "
                f"max|ref|, got {peak!r}"
            )
        return self.atol + self.rtol_peak * abs(peak)

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Tolerance | None = None) -> Tolerance:
        """Build from a dict; keys missing from ``data`` come from ``base`` when given.

        Raises:
            ValueError: On an unknown key (the message names the allowed ones) or a missing
                key without ``base``.
        """
        check_keys(data, _TOLERANCE_KEYS, "tolerance")
        values = asdict(base) if base is not None else {"max_fraction_out": 0.0, "rtol_peak": 0.0}
        values.update(data)
        missing = [k for k in _TOLERANCE_KEYS if k not in values]
        if missing:
            raise ValueError(f"tolerance lacks {missing}; give atol and rtol")
        return cls(**values)


def default_entries() -> dict[str, dict[str, dict[str, Tolerance]]]:
    """The documented default table (module docstring), keyed output -> pair class -> device."""

    def absolute(cpu: float, cuda: float) -> dict[str, Tolerance]:
        return {"cpu": Tolerance(cpu, 0.0), "cuda": Tolerance(cuda, 0.0)}

    # phase = pi * tanh(x): each float32 backend is itself ~1e-6 rad from a float64 run of the
    # trained demo model (README, "Why phase gets 4e-6"), so two of them differ by up to ~2e-6.
    amplitude = {"torch-vs-artifact": absolute(1e-6, 1e-5), "vs-reference": absolute(1e-6, 1e-5)}
    phase = {"torch-vs-artifact": absolute(4e-6, 1e-5), "vs-reference": absolute(4e-6, 1e-5)}
    return {
        AMPLITUDE: amplitude,
        PHASE: phase,
        # with the original's physics pred_amplitude peaks at 1e3..1e4 (x1000 border at
        # gridsize 1): judged against its peak, 2e-6 on CPU and 1e-5 on CUDA (the mission's)
        PRED_AMPLITUDE: {
            pair: {
                "cpu": Tolerance(1e-6, 0.0, rtol_peak=2e-6),
                "cuda": Tolerance(1e-5, 0.0, rtol_peak=1e-5),
            }
            for pair in PAIR_CLASSES
        },
    }


def classify_pair(left_kind: str, right_kind: str) -> str:
    """Pair class of a comparison from its runners' kinds (see :class:`RunnerInfo.kind`)."""
    if left_kind in REFERENCE_KINDS or right_kind in REFERENCE_KINDS:
        return "vs-reference"
    return "torch-vs-artifact"


def device_key(device: str) -> str:
    """The device a tolerance is keyed by: ``cuda:0`` and ``cuda`` share one."""
    return device.split(":", 1)[0]


def check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Raise ValueError naming the first key of ``data`` not in ``allowed`` (and the allowed ones)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {data!r}")
    for key in data:
        if key not in allowed:
            raise ValueError(f"unknown {what} key {key!r}; allowed: {', '.join(allowed)}")
