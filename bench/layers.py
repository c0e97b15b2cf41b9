"""The per-layer view: each distinct convolution shape of the network timed alone.

Each shape runs as one ``torch.nn.functional.conv2d`` and as a one-node ONNX Runtime model
(the same session settings the bench uses), at the bench's batch, interleaved with the GEMM
probe so every figure is a fraction of the same ceiling. A shape whose fraction stays low when
it runs alone cannot be made faster by the rest of the graph: that is where the time goes and
why a backend falls short of the ceiling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bench.ceiling import GemmProbe, one_node_session
from bench.flops import ConvShape
from export.session import SessionSettings
from ptycho_torch.threads import interleave

__all__ = ["LayerTiming", "time_layers"]


@dataclass(frozen=True)
class LayerTiming:
    """One conv shape alone at ``batch``: ms per call and fraction of the GEMM ceiling."""

    shape: ConvShape
    count: int  # calls per pattern in the network
    batch: int
    torch_ms: float
    onnxruntime_ms: float | None
    ceiling_gflops: float

    def gflops(self, ms: float) -> float:
        return self.shape.flops * self.batch / (ms * 1e-3) / 1e9

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.shape.to_dict(), "count": self.count, "batch": self.batch}
        out["ceiling_gflops"] = self.ceiling_gflops
        for name, ms in (("torch", self.torch_ms), ("onnxruntime", self.onnxruntime_ms)):
            out[f"{name}_ms"] = ms
            out[f"{name}_gflops"] = None if ms is None else self.gflops(ms)
            out[f"{name}_fraction"] = None if ms is None else self.gflops(ms) / self.ceiling_gflops
        return out


def time_layers(
    shapes: list[tuple[ConvShape, int]],
    batch: int,
    probe: GemmProbe,
    seconds: float,
    device: str = "cpu",
    session: SessionSettings | None = None,
    channels_last: bool = False,
) -> list[LayerTiming]:
    """Time each shape alone with torch and (on the CPU) ONNX Runtime, ``seconds`` in all."""
    candidates: dict[str, Callable[[], object]] = dict(probe.runs)
    for i, (shape, _) in enumerate(shapes):
        candidates[f"torch{i}"] = _torch_conv(shape, batch, device, channels_last)
        if device == "cpu":
            candidates[f"ort{i}"] = _ort_conv(shape, batch, session)
    samples = interleave(candidates, seconds, min_rounds=3, what="per-layer view")
    ceiling, _ = probe.ceiling(samples)
    return [
        LayerTiming(
            shape,
            count,
            batch,
            1e3 * samples[f"torch{i}"].p50,
            1e3 * samples[f"ort{i}"].p50 if f"ort{i}" in samples else None,
            ceiling,
        )
        for i, (shape, count) in enumerate(shapes)
    ]


def _torch_conv(
    shape: ConvShape, batch: int, device: str, channels_last: bool
) -> Callable[[], object]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, shape.in_channels, *_input_hw(shape), generator=generator)
    w = torch.randn(shape.out_channels, shape.in_channels, *shape.kernel, generator=generator)
    bias = torch.zeros(shape.out_channels)
    if channels_last:
        x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
    x, w, bias = x.to(device), w.to(device), bias.to(device)

    def run() -> None:
        with torch.inference_mode():
            torch.nn.functional.conv2d(x, w, bias, padding=shape.padding)
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def _ort_conv(
    shape: ConvShape, batch: int, session: SessionSettings | None
) -> Callable[[], object]:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    h, w = _input_hw(shape)
    weight = rng.standard_normal(
        (shape.out_channels, shape.in_channels, *shape.kernel), dtype=np.float32
    )
    ph, pw = shape.padding
    options = ort.SessionOptions()
    if session is not None:
        session.session_options(options)
    constants = {"w": weight, "b": np.zeros(shape.out_channels, np.float32)}
    x_shape = [batch, shape.in_channels, h, w]
    sess = one_node_session("Conv", x_shape, constants, options, pads=[ph, pw, ph, pw])
    feed = {"x": rng.standard_normal((batch, shape.in_channels, h, w), dtype=np.float32)}
    return lambda: sess.run(None, feed)


def _input_hw(shape: ConvShape) -> tuple[int, int]:
    """Input size of a stride-1 convolution with this output size and padding."""
    (kh, kw), (ph, pw) = shape.kernel, shape.padding
    return shape.height + kh - 1 - 2 * ph, shape.width + kw - 1 - 2 * pw
