"""``python -m export bench``: every backend's throughput against the machine's own GEMM ceiling,
and the tuning of ONNX Runtime and eager PyTorch that a host keeps."""

from __future__ import annotations

__all__: list[str] = []
