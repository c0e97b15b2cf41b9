"""PyTriton's Triton server with the model bound: started, ready, drained and stopped.

:class:`TritonServer` binds one :class:`export.serving.handler.InferenceHandler` per model
instance under the :class:`export.triton_model.TritonModel` of the signature, with Triton's
dynamic batcher on; it starts tritonserver (HTTP, gRPC and metrics on the options' address) and
waits until the model answers ``ready``. On a clean exit it unloads the model and waits for the
requests Triton had accepted (up to ``exit_timeout_s``) before stopping the server. Its own log
goes to a file kept only when it fails. :func:`check_ports_free` refuses taken ports before
anything starts. PyTriton and tritonclient are imported only here, when a server starts.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from export.errors import ServeEnvironmentError, ServerError
from export.serving.handler import InferenceHandler, ServeStats
from export.serving.options import ServeOptions
from export.triton_model import TritonModel

__all__ = ["TritonServer", "check_ports_free"]

log = logging.getLogger(__name__)

_READY_TIMEOUT_S = 60.0  # model load after the server answers; the demo takes ~2 s
# tritonserver's own wait on SIGINT, once the model is unloaded (drain): for HTTP clients that
# keep idle keep-alive connections open; every accepted request has been answered by then
_SERVER_EXIT_TIMEOUT_S = 3
_QUIET_S = 1.0  # no call running or started for this long after the unload: drained


class TritonServer:
    """PyTriton's ``Triton`` with the model bound, started and ready; stopped on exit."""

    def __init__(
        self, model: TritonModel, options: ServeOptions, handlers: list[InferenceHandler]
    ) -> None:
        self.model, self.options, self.handlers = model, options, handlers
        self.triton: Any = None
        self.log_file = Path(os.devnull)
        self.keep_log = False

    def __enter__(self) -> TritonServer:
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


def check_ports_free(options: ServeOptions) -> None:
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
