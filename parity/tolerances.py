"""Tolerance tables: lookups, JSON override files and calibration from measured comparisons.

A :class:`ToleranceTable` holds one :class:`parity.tolerance.Tolerance` per output, pair class
and device (the documented defaults and why they are what they are: :mod:`parity.tolerance`).

These are starting points. :func:`calibrate` turns measured noise floors of a real run into a
table (``margin`` times the noise), and :meth:`ToleranceTable.save` writes the figures behind
every value into the file's ``measured`` section. Override files are JSON; a partial file
merges onto the defaults::

    {"tolerances": {"phase": {"vs-reference": {"cuda": {"atol": 5e-5}}}}}
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.output_comparison import OutputComparison
from parity.tolerance import (
    DEVICES,
    OUTPUTS,
    PAIR_CLASSES,
    Tolerance,
    check_keys,
    classify_pair,
    default_entries,
    device_key,
)

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
# Calibration never goes tighter than this share of the tolerance it measured with, so that a
# bit-identical run (noise 0) does not produce a zero tolerance that the next machine fails.
MIN_CALIBRATED_SCALE = 0.01
_FILE_KEYS = ("schema", "tolerances", "measured", "notes")


@dataclass
class ToleranceTable:
    """Tolerances keyed ``output -> pair class -> device``.

    Attributes:
        entries: The table; every output, pair class and device is present.
        measured: Figures behind calibrated values (same nesting), written by :func:`calibrate`.
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
        check_keys(data, _FILE_KEYS, "tolerance file")
        schema = data.get("schema", TOLERANCE_SCHEMA)
        if schema != TOLERANCE_SCHEMA:
            raise ValueError(
                f"tolerance file schema {schema!r}; this version reads {TOLERANCE_SCHEMA}"
            )
        table = copy.deepcopy(base if base is not None else cls.default())
        overrides = data.get("tolerances", {})
        check_keys(overrides, tuple(table.entries), "output in 'tolerances'")
        for out, pcs in overrides.items():
            check_keys(pcs, tuple(table.entries[out]), f"pair class under {out!r}")
            for pc, devs in pcs.items():
                check_keys(devs, tuple(table.entries[out][pc]), f"device under {out!r}/{pc!r}")
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
        key = (c.output, c.pair_class, device_key(c.device))
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
