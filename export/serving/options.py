"""How ``python -m export serve`` serves: :class:`ServeOptions` (address, ports, model name,
batching, instances, device, stop and log settings), validated on construction, and the URLs
clients connect to. Read by :mod:`export.serving.server` and :mod:`export.serving.triton_server`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.tolerances import Device
from export.host import DEVICES
from export.triton_model import DEFAULT_MODEL_NAME, ServedBatching, check_model_name

__all__ = ["LOOPBACK", "ServeOptions"]

LOOPBACK = "127.0.0.1"


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
