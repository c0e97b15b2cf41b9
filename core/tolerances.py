"""What "within tolerance" means: :class:`Tolerance`, the default table, and tolerance files.

An element passes when ``|left - right| <= atol + rtol * |right| + rtol_peak * peak``
(``right`` is the reference side of a comparison, as in Polygraphy; ``peak`` is the largest
``|value|`` of that output over the whole compared set: the reference's, or eager PyTorch's
when there is no reference). An output passes when the fraction of failing elements is at most
``max_fraction_out`` (0 by default: every element must pass).

``rtol_peak`` judges an output against its own scale: float32 carries ~6e-8 of a value, so an
output that peaks at 674 (the original's gridsize-1 amplitude, whose swish border path is
unbounded) cannot meet an absolute 1e-6, while ``rtol`` alone would demand near-exact dark
pixels. References imported from the original TensorFlow PtychoPINN carry their own
peak-relative entries for amplitude and phase (see ``parity.import_reference``).

Pair classes: ``torch-vs-artifact`` is eager PyTorch against one of its own artifacts on the
same device (same weights and float32 math, other kernels and summation order);
``vs-reference`` is any runner against the TensorFlow reference (another framework, yet
measured at about 1e-7 for amplitude on CPU, so the same bounds hold: README, "Measured
figures"). Devices: ``cpu`` and ``cuda``; GPU tolerances assume TF32 is off (the parity
precision policy), and cuDNN may pick other algorithms than the CPU kernels, so they are looser.

Default table, the same for both pair classes (``atol`` / ``rtol`` / ``rtol_peak``;
``max_fraction_out`` is 0 everywhere):

==================  ===================  ====================
output              cpu                  cuda
==================  ===================  ====================
amplitude           1e-6 / 0 / 0         1e-5 / 0 / 0
phase               4e-6 / 0 / 0         1e-5 / 0 / 0
pred_amplitude      1e-6 / 0 / 2e-6      1e-5 / 0 / 1e-5
==================  ===================  ====================

``amplitude`` (a sigmoid, in [0, 1]) and ``phase`` (``pi * tanh`` in radians, compared wrapped
into (-pi, pi]: its ``TensorSpec`` says ``wraps``) have absolute tolerances. ``pred_amplitude``
(the physics head's diffraction amplitude, 1e3 to 1e4) is judged against its peak; its ``atol``
only covers dark pixels where the FFT's absolute rounding noise dominates.

:data:`LOAD_BACK` (``1e-4 / 0 / 2e-6``, every output and device) is the build's check that each
artifact, loaded back, computes what eager PyTorch did: it catches a wrong export, not float32
noise (the per-output verdict is the parity check's, with the table above).

A :class:`ToleranceTable` holds the table; override files are JSON, and a partial file merges
onto the defaults: ``{"tolerances": {"phase": {"vs-reference": {"cuda": {"atol": 5e-5}}}}}``.
Calibration from measured comparisons: ``parity.calibrate``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DEVICES",
    "Device",
    "LOAD_BACK",
    "OUTPUTS",
    "PAIR_CLASSES",
    "TOLERANCE_SCHEMA",
    "Tolerance",
    "ToleranceTable",
    "default_entries",
    "device_key",
]

# the outputs of any head (export.signature.OUTPUT_NAMES; a test keeps the table covering them)
OUTPUTS = ("amplitude", "phase", "pred_amplitude")
PAIR_CLASSES = ("torch-vs-artifact", "vs-reference")
Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
TOLERANCE_SCHEMA = 1
_TOLERANCE_KEYS = ("atol", "rtol", "max_fraction_out", "rtol_peak")
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
        _check_keys(data, _TOLERANCE_KEYS, "tolerance")
        values = asdict(base) if base is not None else {"max_fraction_out": 0.0, "rtol_peak": 0.0}
        values.update(data)
        missing = [k for k in _TOLERANCE_KEYS if k not in values]
        if missing:
            raise ValueError(f"tolerance lacks {missing}; give atol and rtol")
        return cls(**values)


# The build's load-back check (module docstring): a wrong export, not float32 noise, fails it.
LOAD_BACK = Tolerance(1e-4, 0.0, rtol_peak=2e-6)


def default_entries() -> dict[str, dict[str, dict[str, Tolerance]]]:
    """The documented default table (module docstring), keyed output -> pair class -> device."""
    cpu_cuda = {
        "amplitude": (Tolerance(1e-6, 0.0), Tolerance(1e-5, 0.0)),
        # phase = pi * tanh(x) of a deep float32 conv stack: eager PyTorch, ONNX Runtime and the
        # TF twin are each 0.9-1.5e-6 rad from a float64 run of the trained demo model (README,
        # "Why phase gets 4e-6"), so two of them differ by up to ~2e-6; 4e-6 is 6e-7 of 2*pi
        "phase": (Tolerance(4e-6, 0.0), Tolerance(1e-5, 0.0)),
        # with the original's physics pred_amplitude peaks at 1e3..1e4 (x1000 border at
        # gridsize 1): judged against its peak, 2e-6 on CPU and 1e-5 on CUDA (the mission's)
        "pred_amplitude": (
            Tolerance(1e-6, 0.0, rtol_peak=2e-6),
            Tolerance(1e-5, 0.0, rtol_peak=1e-5),
        ),
    }
    return {
        output: {pair: {"cpu": cpu, "cuda": cuda} for pair in PAIR_CLASSES}
        for output, (cpu, cuda) in cpu_cuda.items()
    }


def device_key(device: str) -> str:
    """The device a tolerance is keyed by: ``cuda:0`` and ``cuda`` share one."""
    return device.split(":", 1)[0]


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Raise ValueError naming the first key of ``data`` not in ``allowed`` (and the allowed ones)."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object, got {data!r}")
    for key in data:
        if key not in allowed:
            raise ValueError(f"unknown {what} key {key!r}; allowed: {', '.join(allowed)}")


@dataclass
class ToleranceTable:
    """Tolerances keyed ``output -> pair class -> device``.

    Attributes:
        entries: The table; every output, pair class and device is present.
        measured: Figures behind calibrated values (same nesting), written by calibration.
        notes: Free-form lines saved with the file (how and when it was calibrated).
    """

    entries: dict[str, dict[str, dict[str, Tolerance]]] = field(default_factory=default_entries)
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
        tol = by_device.get(device_key(device))
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

    def save(self, path: str | Path) -> Path:
        """Write the complete table (with ``measured`` and ``notes`` when present) as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path
