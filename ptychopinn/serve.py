"""``serve``, ``client`` and ``serve-bench``: the ONNX model behind a Triton server, torch-free.

``serve`` runs :func:`export.serving.server.serve_artifacts` until SIGTERM or Ctrl-C, which
stop it cleanly (the requests in flight answered; exit 0). ``client`` reconstructs a scan
through a running server by ``predict``'s code (:func:`ptychopinn.host.reconstruct`, the served
model as the predictor's runner). ``serve-bench`` starts ``serve`` on loopback in a child
process (or uses ``--url``) and runs the load test (:mod:`export.serving.load`). They need the
``serve`` extra in a Python 3.12 environment (docs/serving.md); PyTriton and tritonclient are
imported only when a server or a client starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from export.archive import open_artifacts
from export.predict import PredictOptions, Predictor
from export.serving.load import LoadOptions
from export.serving.load_report import LoadLevel
from export.serving.options import ServeOptions
from export.serving.server import ServedModel
from export.triton_model import DEFAULT_MODEL_NAME
from ptycho_torch.errors import ExitCode
from ptychopinn.command import CommandLine, add_json_option
from ptychopinn.host import reconstruct
from ptychopinn.options import ConfigOptions

__all__ = ["CLIENT", "SERVE", "SERVE_BENCH"]

SERVE_OPTIONS = ConfigOptions(ServeOptions)
CLIENT_OPTIONS = ConfigOptions(PredictOptions, fields=("progress_every",))
LOAD_OPTIONS = ConfigOptions(LoadOptions, fields=("requests", "protocol", "bare_seconds", "pool"))
# serve options serve-bench passes on to the server it starts
BENCH_SERVE_OPTIONS = ConfigOptions(
    ServeOptions, fields=("max_batch_size", "queue_delay_us", "instances", "name")
)
_ARTIFACTS_HELP = (
    "folder written by `python -m export build`, or an archive from `python -m export pack`"
)


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", type=Path, required=True, help=_ARTIFACTS_HELP)
    SERVE_OPTIONS.add_to(parser)


def _serve(args: argparse.Namespace) -> None:
    from export.serving.server import serve_artifacts

    options: ServeOptions = SERVE_OPTIONS.build(args)  # before any file is read
    if not args.verbose:  # PyTriton's start-up chatter; its warnings still show
        logging.getLogger("pytriton").setLevel(logging.WARNING)
    stop = _StopOnSignals()

    def ready(served: ServedModel) -> None:
        for line in served.lines():
            print(line, flush=True)
        stop.install()  # from now on SIGTERM and Ctrl-C stop serving cleanly

    try:
        with open_artifacts(args.artifacts) as directory:
            summary = serve_artifacts(directory, options, stop.event, ready)
    finally:
        stop.uninstall()
    reason = f"{stop.signal_name}" if stop.signal_name else summary.reason
    print(summary.line().replace(f"({summary.reason})", f"({reason})"), flush=True)


class _StopOnSignals:
    """SIGTERM and SIGINT set :attr:`event` (from a thread: a handler must not take the lock
    the interrupted main thread may hold); a second signal interrupts as it would have."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name:  # asked twice: stop waiting for the requests in flight
            handler = self._previous.get(signum)
            if callable(handler):
                handler(signum, frame)
            return
        self.signal_name = signal.Signals(signum).name
        threading.Thread(target=self.event.set, daemon=True).start()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()


SERVE = CommandLine(
    "Verify the artifacts, then serve model.onnx through a Triton server (PyTriton: HTTP, gRPC, "
    "metrics; dynamic batching) under the model name, inputs and outputs `python -m export "
    "triton` writes, until SIGTERM or Ctrl-C. Needs the 'serve' extra (Python 3.12).",
    _serve_arguments,
    _serve,
    log_names=True,
)


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        required=True,
        help="the server: grpc://HOST:PORT or http://HOST:PORT (`serve` prints both)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        required=True,
        help=f"{_ARTIFACTS_HELP}: the ones the server serves (their manifest gives the model "
        "config that prepares the patterns)",
    )
    parser.add_argument("--data", type=Path, required=True, help="scan .npz, as for `predict`")
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced whole)")
    parser.add_argument(
        "--name",
        default=DEFAULT_MODEL_NAME,
        help=f"served model name (default: {DEFAULT_MODEL_NAME})",
    )
    CLIENT_OPTIONS.add_to(parser)


def _client(args: argparse.Namespace) -> None:
    from export.manifest import read_manifest
    from export.serving.client import ServerURL, TritonRunner
    from export.signature import Signature

    url = ServerURL.parse(args.url)  # before any file is read
    options: PredictOptions = CLIENT_OPTIONS.build(args)

    def predictor_for(directory: Path) -> Predictor:
        signature = Signature.from_dict(read_manifest(directory).signature)
        runner = TritonRunner(str(url), signature, args.name)
        return Predictor(directory, runner=runner)

    reconstruct(args, predictor_for, options.progress_every)


CLIENT = CommandLine(
    "Reconstruct a scan NPZ through a running Triton server (`serve`, or a full Triton server "
    "with the repository from `triton`): the patterns prepared, sent in fixed batches and "
    "stitched as `predict` does; writes what `predict` writes.",
    _client_arguments,
    _client,
    log_names=True,
)


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--artifacts", type=Path, required=True, help=_ARTIFACTS_HELP)
    parser.add_argument(
        "--url",
        help="load a server that is already running (grpc://HOST:PORT; with --protocol http "
        "an http:// URL) instead of starting `serve` on loopback",
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent clients per level"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help="patterns per request (default: 1 and the artifact's batch)",
    )
    add_json_option(parser, "the report")
    parser.add_argument("--server-log", type=Path, help="where the started server's log lines go")
    LOAD_OPTIONS.add_to(parser)
    BENCH_SERVE_OPTIONS.add_to(parser.add_argument_group("the server it starts"))


def _bench(args: argparse.Namespace) -> int:
    from export.host import OnnxHost
    from export.manifest import read_manifest
    from export.serving.client import ServerURL
    from export.serving.load import run_load_test
    from export.serving.process import ServerProcess
    from export.session import SessionSettings
    from ptycho_torch.npz import read_npz

    options: LoadOptions = LOAD_OPTIONS.build(
        args, clients=tuple(args.clients), sizes=tuple(args.sizes or ())
    )
    given = BENCH_SERVE_OPTIONS.given(args)
    served: ServeOptions = BENCH_SERVE_OPTIONS.build(args)  # checked before anything starts
    url = ServerURL.parse(args.url) if args.url else None
    if url is not None:  # the protocol of the server given
        options = dataclasses.replace(options, protocol=url.protocol)
    with open_artifacts(args.artifacts) as directory:
        manifest = read_manifest(directory)
        host = OnnxHost(directory / "model.onnx", session=SessionSettings.from_manifest(manifest))
        host.check_manifest(manifest)
        inputs = read_npz(directory / "inputs.npz", what="inputs")
        samples = {n: v for n, v in inputs.items() if n in host.signature.input_names}
        process = None
        if url is None:  # serve on loopback, as a user would start it
            flags = [f for n, v in given.items() for f in (BENCH_SERVE_OPTIONS.flag(n), str(v))]
            options_for_server = [*flags, "--log-every", "0"]
            process = ServerProcess(directory, sys.executable, options_for_server, args.server_log)
            urls = process.start().urls
        else:
            urls = {url.protocol: str(url)}
        try:
            report = run_load_test(
                host, samples, urls, served.name, options, _print_level, str(args.artifacts)
            )
        finally:
            code = process.stop() if process is not None else 0
    print(report.table())
    if args.json:
        report.write_json(args.json)
    if process is not None:
        last = process.stdout[-1] if process.stdout else "(nothing on stdout)"
        print(f"server stopped with SIGTERM: exit {code}; {last}")
    bad = sum(level.failed + level.wrong for level in report.levels)
    return ExitCode.PARITY_FAILURE if bad or code else ExitCode.PASS


def _print_level(level: LoadLevel) -> None:
    print(
        f"{level.clients} clients x {level.batch} patterns/request: {level.requests} requests, "
        f"{level.patterns_per_s:.1f} patterns/s, p50 {level.p50_ms:.1f} ms, p99 "
        f"{level.p99_ms:.1f} ms, {level.failed} failed, {level.wrong} wrong"
        + (f" (first: {level.first_failure})" if level.first_failure else ""),
        file=sys.stderr,
        flush=True,
    )


SERVE_BENCH = CommandLine(
    "Load test: start `serve` on loopback (or use --url), send bounded requests from 1, 4 and "
    "16 concurrent clients at 1 pattern and at the artifact's batch, check every answer "
    "against ONNX Runtime, and time bare ONNX Runtime at the artifact's batch before and "
    "after. Exit 1 if any request failed or was wrong.",
    _bench_arguments,
    _bench,
    log_names=True,
)
