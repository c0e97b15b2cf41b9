"""``bench``: options in; table, JSON, plot out.

Options come from :class:`bench.run.BenchOptions` fields (``--threads``: the one option of
:mod:`ptychopinn.command`). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from bench.run import BenchOptions
from ptycho_torch.errors import ExitCode
from ptychopinn.command import CommandLine, add_json_option, add_threads_option
from ptychopinn.options import ConfigOptions

__all__ = ["BENCH"]

BENCH_OPTIONS = ConfigOptions(
    BenchOptions,
    fields=tuple(f.name for f in dataclasses.fields(BenchOptions) if f.name != "threads"),
)


def _arguments(parser: argparse.ArgumentParser) -> None:
    BENCH_OPTIONS.add_to(parser)
    add_threads_option(parser)
    add_json_option(parser)
    parser.add_argument("--plot", type=Path, help="also draw throughput vs batch as a PNG")


def _bench(args: argparse.Namespace) -> int:
    from bench.run import run_bench

    options = BENCH_OPTIONS.build(args, threads=args.threads)
    report = run_bench(options)
    print(report.table())
    if args.json:
        report.write_json(args.json)
    if args.plot:
        report.plot(args.plot)
    for row in report.unavailable:
        print(f"exit 3: {row.runner} did not come up: {row.unavailable}")
    return ExitCode.ENVIRONMENT if report.unavailable else ExitCode.PASS


BENCH = CommandLine(
    "Throughput, latency and fraction of the machine's GEMM ceiling of every backend, per "
    "batch size, with the ONNX Runtime settings worth keeping.",
    _arguments,
    _bench,
)
