"""``python -m export bench``: options in; table, JSON, plot out.

Options come from :class:`bench.run.BenchOptions` fields; errors become exit codes in
:func:`ptycho_torch.cli.run_cli`. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.run import BenchOptions, run_bench
from ptycho_torch.cli import ExitCode, run_cli
from ptycho_torch.cli_options import ConfigOptions

__all__ = ["main"]

BENCH = ConfigOptions(BenchOptions)


def main(argv: Sequence[str] | None = None, prog: str = "python -m export bench") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Throughput, latency and fraction of the machine's GEMM ceiling of every "
        "backend, per batch size, with the ONNX Runtime settings worth keeping.",
    )
    BENCH.add_to(parser)
    parser.add_argument("--json", type=Path, help="also write the whole report as JSON")
    parser.add_argument("--plot", type=Path, help="also draw throughput vs batch as a PNG")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    from parity.cli import configure_logging

    configure_logging(args.verbose)

    def run() -> int:
        options = BENCH.build(args)
        report = run_bench(options)
        print(report.table())
        if args.json:
            report.write_json(args.json)
        if args.plot:
            report.plot(args.plot)
        for row in report.unavailable:
            print(f"exit 3: {row.runner} did not come up: {row.unavailable}")
        return ExitCode.ENVIRONMENT if report.unavailable else ExitCode.PASS

    return run_cli(run, configure_logging=False)
