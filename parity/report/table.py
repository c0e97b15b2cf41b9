"""The one table every view shows: rows are runner pairs, columns are outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.output_comparison import OutputComparison
from parity.results import ParityReport

__all__ = [
    "PairRow",
    "cell_text",
    "failure_detail",
    "fmt",
    "pair_rows",
    "pair_slug",
    "verdict_line",
]

PASS_MARK = "✅"
FAIL_MARK = "❌"


@dataclass
class PairRow:
    """The comparisons of one pair (left vs right on a device), keyed by output."""

    label: str  # eager vs tf-reference
    device: str
    cells: dict[str, OutputComparison] = field(default_factory=dict)


def pair_rows(report: ParityReport) -> tuple[list[str], list[PairRow]]:
    """Outputs (columns) and pairs (rows), both in order of first appearance."""
    outputs: list[str] = []
    rows: dict[tuple[str, str, str], PairRow] = {}
    for c in report.comparisons:
        if c.output not in outputs:
            outputs.append(c.output)
        key = (c.left, c.right, c.device)
        row = rows.setdefault(key, PairRow(f"{c.left} vs {c.right}", c.device))
        row.cells[c.output] = c
    return outputs, list(rows.values())


def fmt(value: float | None) -> str:
    """Short scientific format; ``n/a`` for a metric that was not computed."""
    return "n/a" if value is None else f"{value:.1e}"


def cell_text(c: OutputComparison | None) -> str:
    """``✅ 3.1e-07 / 2.0e-06`` (max abs / max rel), failure kinds appended when failing."""
    if c is None:
        return "—"
    text = f"{PASS_MARK if c.passed else FAIL_MARK} {fmt(c.max_abs)} / {fmt(c.max_rel)}"
    if c.failures:
        text += f" ({', '.join(c.failures)})"
    return text


def verdict_line(report: ParityReport) -> str:
    """One line: verdict, head, how many comparisons failed."""
    failed = len(report.failed_comparisons)
    mark = PASS_MARK if report.verdict == "pass" else FAIL_MARK
    if report.error:
        return (
            f"{mark} Parity ERROR (exit code {report.exit_code}): head `{report.head}`, "
            f"stopped before comparing: {report.error}"
        )
    notes = f", {len(report.notes)} note(s)" if report.notes else ""
    return (
        f"{mark} Parity {report.verdict.upper()} (exit code {report.exit_code}): head "
        f"`{report.head}`, {len(report.comparisons) - failed}/{len(report.comparisons)} "
        f"comparisons passed{notes}"
    )


def failure_detail(c: OutputComparison) -> list[str]:
    """Lines describing a comparison in full (for failures)."""
    t = c.tolerance
    lines = list(c.messages)
    lines.append(
        f"dtype {c.dtype_left} vs {c.dtype_right} (expected {c.expected_dtype}); "
        f"shape {c.shape_left} vs {c.shape_right}"
    )
    lines.append(
        f"max_abs={fmt(c.max_abs)} max_rel={fmt(c.max_rel)} mean_abs={fmt(c.mean_abs)} "
        f"rms={fmt(c.rms)} rel_l2={fmt(c.rel_l2)} cosine={_cos(c.cosine)} "
        f"max_ratio={fmt(c.max_ratio)}"
    )
    lines.append(
        f"tolerance atol={t.atol:g} rtol={t.rtol:g} max_fraction_out={t.max_fraction_out:g}"
        + (f" rtol_peak={t.rtol_peak:g} (peak {c.peak:.4g})" if c.peak is not None else "")
        + f"; out of tolerance {c.n_out}/{c.n_elements}"
        + (f" ({c.fraction_out:.2%})" if c.fraction_out is not None else "")
    )
    if c.worst_index is not None:
        lines.append(
            f"worst element {c.worst_index}: left={c.worst_left!r} right={c.worst_right!r}"
        )
    for side in ("left", "right"):
        nan, inf = getattr(c, f"nan_{side}"), getattr(c, f"inf_{side}")
        if nan or inf:
            lines.append(
                f"{side}: {nan} NaN (first {getattr(c, f'first_nan_{side}')}), "
                f"{inf} Inf (first {getattr(c, f'first_inf_{side}')})"
            )
    if c.wrap_phase:
        lines.append(
            "phase difference wrapped into (-pi, pi]"
            + ("; weighted by reference amplitude" if c.weighted else "")
        )
    return lines


def pair_slug(name: str) -> str:
    """``onnxruntime[cpu]`` -> ``onnxruntime-cpu`` (for names that carry brackets themselves)."""
    return name.replace("[", "-").replace("]", "").replace(" ", "_")


def _cos(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.9f}"
