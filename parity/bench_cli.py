"""``python -m parity.bench``: options in, the latency table (and JSON) out.

Options come from :class:`parity.bench.BenchOptions` fields; errors become exit codes in
:func:`ptycho_torch.cli.run_cli`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from parity.bench import BenchOptions, benchmark
from ptycho_torch.cli import ExitCode, run_cli
from ptycho_torch.cli_options import ConfigOptions

__all__ = ["main"]

BENCH = ConfigOptions(BenchOptions)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parity.bench",
        description="Latency of every backend on the artifacts' fixed batch, side by side.",
    )
    BENCH.add_to(parser)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    from parity.cli import configure_logging

    configure_logging()

    def run() -> int:
        options = BENCH.build(args)
        rows = benchmark(options.artifacts, options.device, options.repeats, options.warmup)
        print(f"{'runner':<20} {'median ms':>10} {'p90 ms':>10} {'patterns/s':>11} {'vs eager':>9}")
        for row in rows:
            if "unavailable" in row:
                print(f"{row['runner']:<20} unavailable: {row['unavailable']}")
                continue
            print(
                f"{row['runner']:<20} {row['median_ms']:>10.2f} {row['p90_ms']:>10.2f} "
                f"{row['patterns_per_s']:>11.1f} {row['speedup_vs_eager']:>8.2f}x"
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return ExitCode.ENVIRONMENT if any("unavailable" in r for r in rows) else ExitCode.PASS

    return run_cli(run, configure_logging=False)
