"""Tolerances per output, pair class and device, with JSON override files and calibration.

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

Default table (``atol`` / ``rtol``; ``max_fraction_out`` is 0 everywhere):

==================  ==================  ===================  ====================
output              pair class          cpu                  cuda
==================  ==================  ===================  ====================
amplitude           torch-vs-artifact   1e-6 / 0             1e-5 / 0
amplitude           vs-reference        1e-6 / 0             1e-5 / 0
phase               torch-vs-artifact   4e-6 / 0             1e-5 / 0
phase               vs-reference        4e-6 / 0             1e-5 / 0
pred_amplitude      torch-vs-artifact   1e-4 / 1e-5          1e-3 / 1e-4
pred_amplitude      vs-reference        1e-3 / 1e-4          1e-3 / 1e-4
==================  ==================  ===================  ====================

``amplitude`` is a sigmoid output in [0, 1] and ``phase`` is ``pi * tanh`` in radians (compared
with the difference wrapped into (-pi, pi]); both use absolute tolerances. ``pred_amplitude``
(the physics head's diffraction amplitude) reaches ~1e3, so it is judged relatively; its
``atol`` only covers dark pixels where the FFT's absolute rounding noise dominates.

These are starting points. ``calibrate`` turns measured noise floors of a real run into a
table (``margin`` times the noise), and :meth:`ToleranceTable.save` writes the figures behind
every value into the file's ``measured`` section. Override files are JSON; a partial file
merges onto the defaults::

    {"tolerances": {"phase": {"vs-reference": {"cuda": {"atol": 5e-5}}}}}
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parity.results import OutputComparison

__all__ = [
    "DEVICES",
    "OUTPUTS",
    "PAIR_CLASSES",
    "TOLERANCE_SCHEMA",
    "Tolerance",
    "ToleranceTable",
    "calibrate",
    "classify_pair",
]

logger = logging.getLogger(__name__)

TOLERANCE_SCHEMA = 1
OUTPUTS = ("amplitude", "phase", "pred_amplitude")
PAIR_CLASSES = ("torch-vs-artifact", "vs-reference")
DEVICES = ("cpu", "cuda")
REFERENCE_KINDS = ("tf-reference", "tf-live")
# Calibration never goes tighter than this share of the tolerance it measured with, so that a
# bit-identical run (noise 0) does not produce a zero tolerance that the next machine fails.
MIN_CALIBRATED_SCALE = 0.01
_FILE_KEYS = ("schema", "tolerances", "measured", "notes")


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
        for name in ("atol", "rtol", "max_fraction_out", "rtol_peak"):
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
        allowed = ("atol", "rtol", "max_fraction_out", "rtol_peak")
        _check_keys(data, allowed, "tolerance")
        values = asdict(base) if base is not None else {"max_fraction_out": 0.0, "rtol_peak": 0.0}
        values.update(data)
        missing = [k for k in allowed if k not in values]
        if missing:
            raise ValueError(f"tolerance lacks {missing}; give atol and rtol")
        return cls(**values)


def _default_entries() -> dict[str, dict[str, dict[str, Tolerance]]]:
    def absolute(cpu: float, cuda: float) -> dict[str, Tolerance]:
        return {"cpu": Tolerance(cpu, 0.0), "cuda": Tolerance(cuda, 0.0)}

    # phase = pi * tanh(x): each float32 backend is itself ~1e-6 rad from a float64 run of the
    # trained demo model (README, "Why phase gets 4e-6"), so two of them differ by up to ~2e-6.
    amplitude = {"torch-vs-artifact": absolute(1e-6, 1e-5), "vs-reference": absolute(1e-6, 1e-5)}
    phase = {"torch-vs-artifact": absolute(4e-6, 1e-5), "vs-reference": absolute(4e-6, 1e-5)}
    return {
        "amplitude": amplitude,
        "phase": phase,
        # with the original's physics pred_amplitude peaks at 1e3..1e4 (x1000 border at
        # gridsize 1): judged against its peak, 2e-6 on CPU and 1e-5 on CUDA (the mission's)
        "pred_amplitude": {
            pair: {
                "cpu": Tolerance(1e-6, 0.0, rtol_peak=2e-6),
                "cuda": Tolerance(1e-5, 0.0, rtol_peak=1e-5),
            }
            for pair in ("torch-vs-artifact", "vs-reference")
        },
    }


def classify_pair(left_kind: str, right_kind: str) -> str:
    """Pair class of a comparison from its runners' kinds (see :class:`RunnerInfo.kind`)."""
    if left_kind in REFERENCE_KINDS or right_kind in REFERENCE_KINDS:
        return "vs-reference"
    return "torch-vs-artifact"


@dataclass
class ToleranceTable:
    """Tolerances keyed ``output -> pair class -> device``.

    Attributes:
        entries: The table; every output, pair class and device is present.
        measured: Figures behind calibrated values (same nesting), written by :func:`calibrate`.
        notes: Free-form lines saved with the file (how and when it was calibrated).
    """

    entries: dict[str, dict[str, dict[str, Tolerance]]] = field(default_factory=_default_entries)
    measured: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def default(cls) -> ToleranceTable:
        """The documented default table (see the module docstring)."""
        return cls()

    def lookup(self, output: str, pair_class: str, device: str) -> Tolerance:
        """Tolerance for one output of one pair on one device.

        Raises:
            ValueError: For an unknown output, pair class or device, naming the allowed ones.
        """
        by_class = self.entries.get(output)
        if by_class is None:
            raise ValueError(f"no tolerance for output {output!r}; known: {sorted(self.entries)}")
        by_device = by_class.get(pair_class)
        if by_device is None:
            raise ValueError(f"unknown pair class {pair_class!r}; allowed: {sorted(by_class)}")
        tol = by_device.get(_device_key(device))
        if tol is None:
            raise ValueError(f"unknown device {device!r}; allowed: {sorted(by_device)}")
        return tol

    def to_dict(self) -> dict[str, Any]:
        """The complete table as JSON-ready data (``schema``, ``tolerances``, ``measured``, ``notes``)."""
        data: dict[str, Any] = {
            "schema": TOLERANCE_SCHEMA,
            "tolerances": {
                out: {pc: {dev: t.to_dict() for dev, t in devs.items()} for pc, devs in pcs.items()}
                for out, pcs in self.entries.items()
            },
        }
        if self.measured:
            data["measured"] = copy.deepcopy(self.measured)
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], base: ToleranceTable | None = None
    ) -> ToleranceTable:
        """Merge ``data`` (possibly partial) onto ``base`` (default: the default table).

        Raises:
            ValueError: On an unknown key at any level, naming the key and the allowed ones,
                or on a schema this version does not read.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"tolerance file must hold a JSON object, got {type(data).__name__}")
        _check_keys(data, _FILE_KEYS, "tolerance file")
        schema = data.get("schema", TOLERANCE_SCHEMA)
        if schema != TOLERANCE_SCHEMA:
            raise ValueError(
                f"tolerance file schema {schema!r}; this version reads {TOLERANCE_SCHEMA}"
            )
        table = copy.deepcopy(base if base is not None else cls.default())
        overrides = data.get("tolerances", {})
        _check_keys(overrides, tuple(table.entries), "output in 'tolerances'")
        for out, pcs in overrides.items():
            _check_keys(pcs, tuple(table.entries[out]), f"pair class under {out!r}")
            for pc, devs in pcs.items():
                _check_keys(devs, tuple(table.entries[out][pc]), f"device under {out!r}/{pc!r}")
                for dev, tol in devs.items():
                    where = f"{out!r}/{pc!r}/{dev!r}"
                    if not isinstance(tol, Mapping):
                        raise ValueError(f"tolerance at {where} must be an object, got {tol!r}")
                    try:
                        table.entries[out][pc][dev] = Tolerance.from_dict(
                            tol, base=table.entries[out][pc][dev]
                        )
                    except ValueError as exc:
                        raise ValueError(f"{where}: {exc}") from None
        if "measured" in data:
            table.measured = copy.deepcopy(dict(data["measured"]))
        if "notes" in data:
            table.notes = [str(n) for n in data["notes"]]
        return table

    @classmethod
    def load(cls, path: str | Path, base: ToleranceTable | None = None) -> ToleranceTable:
        """Read an override file (JSON) and merge it onto ``base`` (default: the defaults).

        Raises:
            ValueError: If the file is not JSON or holds unknown keys (the message names the file).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read tolerance file {path}: {exc}") from None
        try:
            return cls.from_dict(data, base=base)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @staticmethod
    def calibrate(
        comparisons: Iterable[OutputComparison], margin: float = 10.0
    ) -> tuple[ToleranceTable, list[str]]:
        """Same as the module-level :func:`calibrate`."""
        return calibrate(comparisons, margin)

    def save(self, path: str | Path) -> Path:
        """Write the complete table (with ``measured`` and ``notes`` when present) as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


def calibrate(
    comparisons: Iterable[OutputComparison], margin: float = 10.0
) -> tuple[ToleranceTable, list[str]]:
    """Turn measured noise floors into a tolerance table.

    For every (output, pair class, device) the comparisons of a passing-shape, finite run are
    pooled; the new tolerance is the tolerance they were measured with, scaled by
    ``margin * max_ratio`` (``max_ratio`` = the largest ``|a-b| / (atol + rtol*|ref|)``), so an
    absolute tolerance becomes ``margin * max_abs`` and a relative one keeps its shape. The
    scale never drops below ``MIN_CALIBRATED_SCALE``. Groups without measurements keep their
    defaults. The figures (max abs, max rel, max ratio, pairs, the tolerance measured with)
    go into ``table.measured``, so :meth:`ToleranceTable.save` writes them beside each value.

    Args:
        comparisons: Finished comparisons with ``pair_class`` and ``device`` set.
        margin: Safety factor over the measured noise.

    Returns:
        The calibrated table and human-readable notes (one line per decision).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    table = ToleranceTable.default()
    notes: list[str] = []
    groups: dict[tuple[str, str, str], list[OutputComparison]] = {}
    for c in comparisons:
        key = (c.output, c.pair_class, _device_key(c.device))
        if {"dtype", "shape", "nonfinite"} & set(c.failures) or c.max_ratio is None:
            notes.append(f"skipped {c.label()}: failures {c.failures} leave no usable noise figure")
            continue
        try:
            table.lookup(*key)
        except ValueError as exc:
            notes.append(f"skipped {c.label()}: {exc}")
            continue
        groups.setdefault(key, []).append(c)
    for (out, pc, dev), group in sorted(groups.items()):
        worst = max(group, key=lambda c: c.max_ratio or 0.0)
        measured_with = worst.tolerance
        scale = max(margin * (worst.max_ratio or 0.0), MIN_CALIBRATED_SCALE)
        new = Tolerance(
            atol=measured_with.atol * scale,
            rtol=measured_with.rtol * scale,
            max_fraction_out=measured_with.max_fraction_out,
            rtol_peak=measured_with.rtol_peak * scale,
        )
        default = table.lookup(out, pc, dev)
        table.entries[out][pc][dev] = new
        table.measured.setdefault(out, {}).setdefault(pc, {})[dev] = {
            "max_abs": max(c.max_abs or 0.0 for c in group),
            "max_rel": max(c.max_rel or 0.0 for c in group),
            "max_ratio": worst.max_ratio,
            "margin": margin,
            "measured_with": measured_with.to_dict(),
            "pairs": sorted({f"{c.left} vs {c.right}" for c in group}),
            "n_comparisons": len(group),
        }
        looser = " (looser than the default)" if new.atol > default.atol else ""
        peak = f" rtol_peak={new.rtol_peak:.3g}" if new.rtol_peak else ""
        notes.append(
            f"{out}/{pc}/{dev}: atol={new.atol:.3g} rtol={new.rtol:.3g}{peak}{looser} from "
            f"max_abs={table.measured[out][pc][dev]['max_abs']:.3g} over {len(group)} comparison(s)"
        )
    table.notes = [f"calibrated with margin {margin:g}", *notes]
    for line in notes:
        logger.info("calibrate: %s", line)
    return table, notes


def _device_key(device: str) -> str:
    # "cuda:0" and "cuda" share a tolerance.
    return device.split(":", 1)[0]


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {data!r}")
    for key in data:
        if key not in allowed:
            raise ValueError(f"unknown {what} key {key!r}; allowed: {', '.join(allowed)}")
