"""Calibration: the measured noise floors of a real run turned into a tolerance table
(``python -m export check --calibrate FILE``; the table and its files: :mod:`core.tolerances`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from core.output_comparison import OutputComparison
from core.tolerances import Tolerance, ToleranceTable, device_key

__all__ = ["MIN_CALIBRATED_SCALE", "calibrate"]

logger = logging.getLogger(__name__)

# Calibration never goes tighter than this share of the tolerance it measured with, so that a
# bit-identical run (noise 0) does not produce a zero tolerance that the next machine fails.
MIN_CALIBRATED_SCALE = 0.01


def calibrate(
    comparisons: Iterable[OutputComparison], margin: float = 10.0
) -> tuple[ToleranceTable, list[str]]:
    """Turn measured noise floors into a tolerance table, and one note per decision.

    Per (output, pair class, device), the tolerance the comparisons were measured with is scaled
    by ``margin * max_ratio`` (the largest ``|a-b| / (atol + rtol*|ref|)``), never below
    ``MIN_CALIBRATED_SCALE``: an absolute tolerance becomes ``margin * max_abs``, a relative one
    keeps its shape. Groups without measurements keep their defaults; the figures go into
    ``table.measured``, written beside each value.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    table = ToleranceTable.default()
    notes: list[str] = []
    for (out, pc, dev), group in sorted(_groups(comparisons, table, notes).items()):
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


def _groups(
    comparisons: Iterable[OutputComparison], table: ToleranceTable, notes: list[str]
) -> dict[tuple[str, str, str], list[OutputComparison]]:
    """The comparisons with a usable noise figure, by (output, pair class, device); a note for
    each one skipped and why."""
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
    return groups
