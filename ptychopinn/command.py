"""What every command shares: its parser, the one logging set-up, the one ``--threads`` option,
and the edge its body runs behind (:func:`ptycho_torch.cli.run_cli`). Torch-free.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ptycho_torch.atomic import unwritable_file
from ptycho_torch.cli import UsageError, run_cli
from ptycho_torch.thread_option import AUTO, THREADS_HELP, parse_threads

__all__ = [
    "CommandLine",
    "add_json_option",
    "add_threads_option",
    "configure_logging",
    "given_threads",
]

# The frameworks' own log chatter; their warnings and errors still show.
_QUIET = ("torch", "onnxscript", "onnx_ir", "tensorflow", "absl", "lightning", "matplotlib", "PIL")


def configure_logging(verbose: bool = False, *, names: bool = False) -> None:
    """The logging set-up of every command: progress lines on stderr, DEBUG with ``-v``.

    Args:
        verbose: log DEBUG lines too.
        names: ``INFO ptycho_torch.train: message`` lines (training, inference, the importer,
            the host) instead of the bare message (build, parity, bench).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if names else "%(message)s",
        stream=sys.stderr,
    )
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(logging.ERROR)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """The ``--threads`` option of every command that runs torch on the CPU."""
    group = parser.add_argument_group("threads")
    group.add_argument("--threads", default=AUTO, help=f"{THREADS_HELP} (default: {AUTO})")


def json_target(value: str) -> Path:
    """``--json FILE`` checked when the options are read, before minutes of measuring: a file
    (not a folder) in a folder that exists and that this user may write (exit 2 otherwise)."""
    path = Path(value)
    problem = unwritable_file(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value}: {problem}")
    return path


def add_json_option(parser: argparse.ArgumentParser, what: str = "the whole report") -> None:
    """The ``--json FILE`` option of the commands that measure (checked by :func:`json_target`;
    the report is written with :func:`ptycho_torch.jsonio.write_json`)."""
    parser.add_argument(
        "--json", type=json_target, metavar="FILE", help=f"also write {what} as JSON"
    )


def given_threads(args: argparse.Namespace) -> str | int:
    """``--threads`` checked (exit 2 naming the accepted values) before any work."""
    try:
        return parse_threads(args.threads)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True)
class CommandLine:
    """One command: its options and its body, called with the arguments after its name.

    Parsing, logging set-up and the body all run behind :func:`ptycho_torch.cli.run_cli`, so a
    package missing while the options are derived is exit 3 like one missing later.

    Attributes:
        description: the first line of ``--help``.
        add_arguments: adds the command's options to its parser.
        run: the body; returns an exit code (None: 0) or raises a typed error.
        log_names: log lines name their logger (:func:`configure_logging`).
    """

    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]
    log_names: bool = False

    def __call__(self, argv: Sequence[str], *, prog: str, verbose: bool = False) -> int:
        def body() -> int | None:
            parser = argparse.ArgumentParser(prog=prog, description=self.description)
            parser.add_argument("-v", "--verbose", action="store_true", help="DEBUG log lines")
            self.add_arguments(parser)
            args = parser.parse_args(argv)
            configure_logging(verbose or args.verbose, names=self.log_names)
            return self.run(args)

        return run_cli(body)
