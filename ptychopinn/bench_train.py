"""``bench-train``: options in; the table (and JSON) out.

Options come from :class:`bench.train_options.TrainBenchOptions` fields (``--threads``: the one
option of :mod:`ptychopinn.command`). Torch loads only once the options are read, after
:func:`~ptycho_torch.thread_option.training_process` (as ``train``). Progress goes to stderr, the
table to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses

from bench.train_options import TrainBenchOptions
from ptycho_torch.errors import ExitCode
from ptycho_torch.thread_option import training_process
from ptychopinn.command import CommandLine, add_json_option, add_threads_option, given_threads
from ptychopinn.options import ConfigOptions

__all__ = ["BENCH_TRAIN"]

TRAIN_BENCH_OPTIONS = ConfigOptions(
    TrainBenchOptions,
    fields=tuple(f.name for f in dataclasses.fields(TrainBenchOptions) if f.name != "threads"),
)


def _arguments(parser: argparse.ArgumentParser) -> None:
    training_process()
    TRAIN_BENCH_OPTIONS.add_to(parser)
    add_threads_option(parser)
    add_json_option(parser)


def _bench_train(args: argparse.Namespace) -> int:
    from bench.train_step import run_train_bench

    options = TRAIN_BENCH_OPTIONS.build(args, threads=str(given_threads(args)))
    report = run_train_bench(options)
    print(report.table())
    if args.json:
        report.write_json(args.json)
    return ExitCode.PASS


BENCH_TRAIN = CommandLine(
    "Steady-state training steps (patterns/s, ms per step, where the time goes) of our step "
    "and, with TensorFlow, of the same step in Keras, timed interleaved in one run.",
    _arguments,
    _bench_train,
)
