"""Serve built artifacts through PyTriton's Triton server, torch-free.

:func:`serve_artifacts`, in order: puts this Python's library folder on ``LD_LIBRARY_PATH``
(:mod:`export.serving.environment`; a Python that cannot serve is exit 3 before anything
starts); checks that the ports are free; verifies the folder as ``python -m export verify``
does (:func:`export.verify.verify_artifacts`: hashes, manifest, the parity batch); opens one
ONNX Runtime session per model instance with the manifest's kept settings
(``onnxruntime_session``); binds :class:`export.serving.handler.InferenceHandler` under the
:class:`export.triton_model.TritonModel` of the signature, with Triton's dynamic batcher on;
starts the server (HTTP, gRPC and metrics on ``address``, loopback by default) and waits until
the model answers ``ready``; then serves until ``stop`` is set (the command sets it on SIGTERM
and Ctrl-C). Stopping, Triton stops taking requests, answers those in flight (up to
``exit_timeout_s``), then the sessions close. PyTriton is imported only here.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.tolerances import Device
from export.errors import ServeEnvironmentError, ServerError
from export.host import DEVICES, OnnxHost
from export.manifest import read_manifest
from export.serving.environment import prepare_environment
from export.serving.handler import InferenceHandler, ServeStats
from export.session import SessionSettings
from export.triton_model import DEFAULT_MODEL_NAME, ServedBatching, TritonModel, check_model_name
from export.verify import VerifyOptions, VerifyReport, verify_artifacts

__all__ = ["ServeOptions", "ServeSummary", "ServedModel", "serve_artifacts"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_READY_TIMEOUT_S = 60.0  # model load after the server answers; the demo takes ~2 s
# tritonserver's own wait on SIGINT, once the model is unloaded (drain): for HTTP clients that
# keep idle keep-alive connections open; every accepted request has been answered by then
_SERVER_EXIT_TIMEOUT_S = 3
_QUIET_S = 1.0  # no call running or started for this long after the unload: drained


@dataclass(frozen=True)
class ServeOptions:
    """How ``python -m export serve`` serves."""

    address: str = field(
        default=LOOPBACK,
        metadata={
            "help": "address the HTTP, gRPC and metrics endpoints bind to (0.0.0.0: every "
            "interface; the server has no authentication of inference requests)"
        },
    )
    http_port: int = field(default=8000, metadata={"help": "HTTP/REST port (KServe v2)"})
    grpc_port: int = field(default=8001, metadata={"help": "gRPC port (KServe v2)"})
    metrics_port: int = field(default=8002, metadata={"help": "Prometheus metrics port"})
    name: str = field(default=DEFAULT_MODEL_NAME, metadata={"help": "model name clients use"})
    max_batch_size: int = field(
        default=64,
        metadata={"help": "most patterns in one request, and in one dynamic batch"},
    )
    queue_delay_us: int = field(
        default=500,
        metadata={"help": "microseconds the dynamic batcher holds a request for others to join it"},
    )
    instances: int = field(
        default=1,
        metadata={"help": "model instances, each with its own ONNX Runtime session"},
    )
    device: Device = field(
        default="cpu", metadata={"help": "ONNX Runtime device", "choices": DEVICES}
    )
    log_every: int = field(
        default=1000,
        metadata={"help": "requests between two throughput and latency lines (0: none)"},
    )
    exit_timeout_s: int = field(
        default=30,
        metadata={"help": "seconds to answer the requests accepted before a stop"},
    )
    server_log: Path | None = field(
        default=None,
        metadata={
            "help": "where tritonserver writes its own log (default: a temporary file, kept "
            "and named only when the server fails)"
        },
    )

    def __post_init__(self) -> None:
        check_model_name(self.name)
        for port in ("http_port", "grpc_port", "metrics_port"):
            value = getattr(self, port)
            if not 0 < value < 65536:
                raise ValueError(f"{port} must be 1..65535, got {value}")
        if len({self.http_port, self.grpc_port, self.metrics_port}) != 3:
            raise ValueError("the HTTP, gRPC and metrics ports must differ")
        if self.instances < 1:
            raise ValueError(f"instances must be >= 1, got {self.instances}")
        if self.log_every < 0 or self.exit_timeout_s < 0:
            raise ValueError("log_every and exit_timeout_s must be >= 0")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        ServedBatching(self.max_batch_size, self.queue_delay_us)  # validates both

    @property
    def batching(self) -> ServedBatching:
        return ServedBatching(self.max_batch_size, self.queue_delay_us)

    def urls(self) -> dict[str, str]:
        """Where clients connect: ``{"http": "http://127.0.0.1:8000", ...}``."""
        host = LOOPBACK if self.address in ("0.0.0.0", "") else self.address
        return {
            "http": f"http://{host}:{self.http_port}",
            "grpc": f"grpc://{host}:{self.grpc_port}",
            "metrics": f"http://{host}:{self.metrics_port}/metrics",
        }


@dataclass(frozen=True)
class ServedModel:
    """What is being served, for the command's lines (and tests)."""

    model: TritonModel
    options: ServeOptions
    verify: VerifyReport
    providers: list[str]
    session: SessionSettings | None
    python_library_added: str | None

    def lines(self) -> list[str]:
        """The verify lines, then what is served where."""
        inputs = ", ".join(
            f"{t.name} {t.dtype}[b, {', '.join(map(str, t.dims))}]" for t in self.model.inputs
        )
        b, o = self.model.batch, self.options
        urls = o.urls()
        preferred = self.model.preferred_batch_sizes(o.batching)
        return [
            *self.verify.lines(),
            f"serving {self.model.name!r}: {inputs} -> {', '.join(self.model.output_names)}; "
            f"1..{o.max_batch_size} patterns per request, run in fixed batches of {b}; dynamic "
            f"batching, queue delay {o.queue_delay_us} us, preferred sizes {preferred}; "
            f"{o.instances} instance{'s' if o.instances > 1 else ''} on onnxruntime[{o.device}] "
            f"(providers {self.providers}; "
            f"{self.session.describe() if self.session else 'ONNX Runtime defaults'})",
            f"ready: HTTP {urls['http']}, gRPC {urls['grpc']}, metrics {urls['metrics']} "
            "(SIGTERM or Ctrl-C stops after the requests in flight)",
        ]


@dataclass(frozen=True)
class ServeSummary:
    """How serving ended."""

    requests: int
    patterns: int
    errors: int
    seconds: float
    in_flight_at_exit: int
    reason: str  # "stop requested", or why the server went away

    def line(self) -> str:
        rate = self.patterns / self.seconds if self.seconds > 0 else math.inf
        return (
            f"stopped ({self.reason}) after serving {self.requests} requests "
            f"({self.patterns} patterns, {rate:.0f} patterns/s over {self.seconds:.0f} s) and "
            f"{self.errors} error responses from the model; {self.in_flight_at_exit} in flight"
        )


def serve_artifacts(
    directory: str | Path,
    options: ServeOptions,
    stop: threading.Event,
    on_ready: Callable[[ServedModel], None] | None = None,
) -> ServeSummary:
    """Verify ``directory`` and serve it until ``stop`` is set (module docstring).

    Raises:
        ServeEnvironmentError: (exit 3) a Python PyTriton cannot serve from.
        ServerError: (exit 2) a port in use, or a model the server did not load.
        ArtifactsChangedError, StaleReferenceError, OutputMismatchError, HostError: as
            ``python -m export verify``.
        ModuleNotFoundError: PyTriton missing (the command's edge turns it into exit 3 and the
            install line).
    """
    directory = Path(directory)
    added = prepare_environment()
    _check_ports_free(options)
    report = verify_artifacts(directory, VerifyOptions(device=options.device))
    report.check()  # exit 1 before serving a model that computes differently here
    manifest = read_manifest(directory)
    settings = SessionSettings.from_manifest(manifest)
    hosts = [
        OnnxHost(directory / "model.onnx", device=options.device, session=settings)
        for _ in range(options.instances)
    ]
    model = TritonModel.from_signature(options.name, hosts[0].signature)
    stats = ServeStats(log_every=options.log_every)
    handlers = [InferenceHandler(h.run, model, options.batching, stats) for h in hosts]
    served = ServedModel(model, options, report, hosts[0].providers, settings, added)
    start = time.perf_counter()
    with _TritonServer(model, options, handlers) as triton:
        if on_ready is not None:
            on_ready(served)
        reason = triton.wait(stop)
    return ServeSummary(
        stats.requests,
        stats.patterns,
        stats.errors,
        time.perf_counter() - start,
        stats.in_flight,
        reason,
    )


class _TritonServer:
    """PyTriton's ``Triton`` with the model bound, started and ready; stopped on exit."""

    def __init__(
        self, model: TritonModel, options: ServeOptions, handlers: list[InferenceHandler]
    ) -> None:
        self.model, self.options, self.handlers = model, options, handlers
        self.triton: Any = None
        self.log_file = Path(os.devnull)
        self.keep_log = False

    def __enter__(self) -> _TritonServer:
        import numpy as np
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig

        logging.getLogger("pytriton.proxy.inference").setLevel(logging.ERROR)  # handler logs
        o, model = self.options, self.model
        if o.server_log is not None:
            self.log_file, self.keep_log = o.server_log.resolve(), True
        else:  # tritonserver's own lines: kept only when it fails
            fd, name = tempfile.mkstemp(prefix="ptychopinn-tritonserver-", suffix=".log")
            os.close(fd)
            self.log_file = Path(name)
        config = TritonConfig(
            http_address=o.address,
            http_port=o.http_port,
            grpc_address=o.address,
            grpc_port=o.grpc_port,
            metrics_address=o.address,
            metrics_port=o.metrics_port,
            allow_gpu_metrics=o.device == "cuda",  # else NVML's failure lands on stdout
            exit_timeout_secs=_SERVER_EXIT_TIMEOUT_S,
            log_verbose=0,
            log_file=self.log_file,
        )
        self.triton = Triton(config=config)
        self.triton.bind(
            model_name=model.name,
            infer_func=self.handlers,  # one per instance
            inputs=[Tensor(name=t.name, dtype=np.float32, shape=t.dims) for t in model.inputs],
            outputs=[Tensor(name=t.name, dtype=np.float32, shape=t.dims) for t in model.outputs],
            config=ModelConfig(
                batching=True,
                max_batch_size=o.max_batch_size,
                batcher=DynamicBatcher(
                    max_queue_delay_microseconds=o.queue_delay_us,
                    preferred_batch_size=model.preferred_batch_sizes(o.batching),
                ),
            ),
            strict=True,
        )
        try:
            self.triton._initialize_server()  # PyTriton 0.7.0 (pinned): what run() would do first
            server = getattr(self.triton, "_triton_server", None)
            if server is not None:  # it echoes tritonserver's stdout ("Signal (2) received.")
                server._verbose = False  # onto ours; the log file holds tritonserver's lines
            self.triton.run()  # starts tritonserver, loads the model
            self._wait_until_ready()
        except BaseException:
            self.triton.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        import tritonclient.http as http

        url = f"{self.options.urls()['http'].removeprefix('http://')}"
        deadline = time.monotonic() + _READY_TIMEOUT_S
        with closing(http.InferenceServerClient(url)) as client:
            while time.monotonic() < deadline:
                if not self.triton.is_alive():
                    break
                try:
                    if client.is_model_ready(self.model.name):
                        return
                except Exception:  # noqa: BLE001 - not up yet: connection refused, 503
                    pass
                time.sleep(0.2)
        raise ServerError(
            f"the Triton server did not load model {self.model.name!r} within "
            f"{_READY_TIMEOUT_S:.0f} s; its log ends: {self._server_log_tail()}"
        )

    def _server_log_tail(self) -> str:
        self.keep_log = True
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        tail = " | ".join([line for line in lines if line.strip()][-5:]) or "(nothing)"
        return f"{tail} (all of it in {self.log_file})"

    def wait(self, stop: threading.Event) -> str:
        """Serve until ``stop`` is set or the server goes away; returns why it ended."""
        while not stop.wait(0.5):
            if not self.triton.is_alive():
                raise ServerError(
                    f"the Triton server stopped by itself; its log ends: {self._server_log_tail()}"
                )
        return "stop requested"

    def drain(self, stats: ServeStats) -> None:
        """Unload the model, then return once the requests Triton had accepted are answered.

        After the unload call Triton refuses new requests to the model ("unknown model") and
        still dispatches every request it had queued; the model is idle when no call of the
        callable is running and none has started for :data:`_QUIET_S` (an idle instance gets
        a queued request at once). Bounded by ``exit_timeout_s``. Stopping tritonserver alone
        would first wait, up to its exit timeout, for HTTP clients to close their keep-alive
        connections, serving them meanwhile, then drop the requests in flight.
        """
        import tritonclient.http as http
        from pytriton.client.auth import create_auth_headers

        o = self.options
        headers = create_auth_headers(self.triton.get_access_token(), "http")
        address = o.urls()["http"].removeprefix("http://")
        deadline = time.monotonic() + o.exit_timeout_s
        with closing(http.InferenceServerClient(address, network_timeout=5.0)) as client:
            client.unload_model(self.model.name, headers=headers)
        while time.monotonic() < deadline:
            if stats.idle_for() >= _QUIET_S:
                return
            time.sleep(0.05)
        log.warning(
            "requests were still running after %d s (--exit-timeout-s); stopping anyway",
            o.exit_timeout_s,
        )

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None and self.triton.is_alive():
            try:
                self.drain(self.handlers[0].stats)
            except Exception as error:  # noqa: BLE001 - stop anyway, as tritonserver would
                log.warning("could not unload the model before stopping (%s)", error)
        self.triton.stop()  # tritonserver gets SIGINT; the model is gone, nothing in flight
        if not self.keep_log:
            self.log_file.unlink(missing_ok=True)


def _check_ports_free(options: ServeOptions) -> None:
    """Refuse ports already taken, naming them (tritonserver alone would fail late and vaguely).

    Raises:
        ServerError: (exit 2) a port in use; ServeEnvironmentError (exit 3): an address this
            machine does not have.
    """
    for what, port in (
        ("--http-port", options.http_port),
        ("--grpc-port", options.grpc_port),
        ("--metrics-port", options.metrics_port),
    ):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((options.address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ServerError(
                        f"port {port} on {options.address} is in use ({what}): stop what holds "
                        f"it or pass another {what}"
                    ) from None
                raise ServeEnvironmentError(
                    f"cannot bind {options.address}:{port} ({what}): {exc.strerror}; pass "
                    "--address 127.0.0.1 or an address of this machine"
                ) from None
