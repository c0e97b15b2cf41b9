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
``exit_timeout_s``), then the sessions close. PyTriton is imported only in
:mod:`export.serving.triton_server`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from export.host import OnnxHost
from export.manifest import read_manifest
from export.serving.environment import prepare_environment
from export.serving.handler import InferenceHandler, ServeStats
from export.serving.options import ServeOptions
from export.serving.triton_server import TritonServer, check_ports_free
from export.session import SessionSettings
from export.triton_model import TritonModel
from export.verify import VerifyOptions, VerifyReport, verify_artifacts

__all__ = ["ServeSummary", "ServedModel", "serve_artifacts"]


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
    check_ports_free(options)
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
    with TritonServer(model, options, handlers) as triton:
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
