"""The machine's float32 ceiling: GEMM probes on the same device, with the same threads.

A large square float32 matrix product is the best case for the hardware: a convolution, which
the backends lower to GEMMs (im2col, or blocked kernels of the same arithmetic), cannot go
faster per FLOP. Two BLAS are probed, torch's (``torch.mm``: MKL or OpenBLAS on a CPU, cuBLAS on
a GPU) and, on a CPU, ONNX Runtime's (a one-node ``MatMul``: MLAS), and the ceiling is the
faster of the two: on this project's AMD EPYC, single convolutions in oneDNN beat ``torch.mm``
of 1024^2 by up to 27%, so torch's GEMM alone is no ceiling. The probes are timed *in the same
rounds* as the backends (:func:`ptycho_torch.threads.interleave`), so a machine that slows down
under other jobs lowers the ceiling and the backends together and the fractions stay honest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptycho_torch.threads import Samples

__all__ = ["GemmProbe", "gemm_probe", "one_node_session"]


@dataclass(frozen=True)
class GemmProbe:
    """Callables that each multiply ``calls`` times ``n x n`` float32 matrices on ``device``."""

    runs: dict[str, Callable[[], object]]  # candidate name ("gemm-torch", ...) -> one probe run
    n: int
    calls: int
    device: str
    threads: int | None = None  # CPU threads of the probes

    @property
    def flops(self) -> int:
        """FLOPs of one run of any probe."""
        return 2 * self.n**3 * self.calls

    def ceiling(self, samples: Mapping[str, Samples]) -> tuple[float, dict[str, float]]:
        """The ceiling in GFLOP/s (the fastest probe's median) and every probe's rate."""
        rates = {name: self.flops / samples[name].p50 / 1e9 for name in self.runs}
        return max(rates.values()), rates

    def describe(self) -> str:
        threads = ""
        if self.device == "cpu" and self.threads:
            threads = f", {self.threads} thread{'' if self.threads == 1 else 's'}"
        which = " and ".join(name.removeprefix("gemm-") for name in self.runs)
        return (
            f"float32 GEMM {self.n}x{self.n} x{self.calls} ({which}, the faster counts) on "
            f"{self.device}{threads} (TF32 off)"
        )


def gemm_probe(device: str = "cpu", threads: int | None = None) -> GemmProbe:
    """The probes for ``device``: 1024^2 x 4 on a CPU (about 0.1 s at 100 GFLOP/s), 4096^2 x 8 on
    a GPU (synchronised, so the time is the GPU's). TF32 must already be off
    (:func:`parity.precision.apply_precision_policy`).

    ``threads``: the CPU threads of the probes (torch's set for each run and restored after
    it): the most any timed backend uses, so no backend is compared with a ceiling of fewer
    threads.
    """
    n, calls = (4096, 8) if device == "cuda" else (1024, 4)
    threads = threads or torch.get_num_threads()
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    out = torch.empty(n, n, device=device)

    def run_torch() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for _ in range(calls):
                torch.mm(a, b, out=out)
            if device == "cuda":
                torch.cuda.synchronize()
        finally:
            torch.set_num_threads(previous)

    runs: dict[str, Callable[[], object]] = {"gemm-torch": run_torch}
    if device == "cpu":
        runs["gemm-onnxruntime"] = _onnxruntime_gemm(a.numpy(), b.numpy(), calls, threads)
    return GemmProbe(runs, n, calls, device, threads)


def one_node_session(
    op: str,
    x_shape: list[int],
    constants: dict[str, np.ndarray],
    options: Any,
    **attributes: Any,
) -> Any:
    """A CPU ONNX Runtime session of one float32 node ``op(x, *constants)`` with output ``y``:
    what the GEMM probe and the per-layer view time. ``options``: its ``SessionOptions``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x", *constants], ["y"], **attributes)],
        op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8  # what every onnxruntime >= 1.14 reads
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _onnxruntime_gemm(
    a: np.ndarray, b: np.ndarray, calls: int, threads: int
) -> Callable[[], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # no busy-waiting after the probe: its threads must not take cores from what runs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = one_node_session("MatMul", list(a.shape), {"b": b}, options)
    feed = {"x": np.ascontiguousarray(a)}

    def run() -> None:
        for _ in range(calls):
            session.run(None, feed)

    return run
