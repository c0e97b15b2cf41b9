"""Where did the wrong dtype come from? A trace of every module call of an eager model.

``with dtype_trace(model) as trace: my_inference()`` records, for every module call, the dtype,
device, shape, min/max and NaN/Inf counts of each tensor in and out, and the file and line of the
user code that made the outermost call (the first frame outside this project and torch). The
hooks are removed on exit, even if the inference raised (a float64 batch usually ends in a dtype
error inside the first conv: the trace still holds the calls up to it). Cost: two hooks per
module call and one reduction per tensor (measured in ``tests/parity/test_trace.py``).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CallRecord",
    "DtypeTrace",
    "TensorInfo",
    "TraceOptions",
    "dtype_trace",
    "trace_inference",
]

CONTRACT_DTYPE = torch.float32
_PROJECT = tuple(
    str(Path(__file__).resolve().parents[1] / pkg)
    for pkg in ("ptycho_torch", "export", "parity", "ptychopinn")
)
_TORCH = str(Path(torch.__file__).resolve().parent)


@dataclass(frozen=True)
class TensorInfo:
    """One tensor at a module boundary."""

    dtype: str
    device: str
    shape: tuple[int, ...]
    min: float | None
    max: float | None
    nan: int
    inf: int

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorInfo:
        lo = hi = None
        nan = inf = 0
        with torch.no_grad():
            x = t.detach()
            if x.is_complex():
                x = x.abs()
            if x.numel() and x.dtype != torch.bool:
                lo_t, hi_t = torch.aminmax(x)  # NaN propagates: one reduction when all finite
                lo, hi = float(lo_t), float(hi_t)
                if x.is_floating_point() and not (math.isfinite(lo) and math.isfinite(hi)):
                    nan = int(torch.isnan(x).sum())
                    inf = int(torch.isinf(x).sum())
                    ok = x[torch.isfinite(x)]
                    lo = hi = None
                    if ok.numel():
                        lo, hi = float(ok.min()), float(ok.max())
        return cls(
            str(t.dtype).removeprefix("torch."), str(t.device), tuple(t.shape), lo, hi, nan, inf
        )


@dataclass
class CallRecord:
    """One module call: its qualified name, class, tensors in and out, depth in the call tree."""

    index: int
    module: str
    kind: str
    depth: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo] = field(default_factory=list)
    caller: str | None = None  # file:line of the user code (outermost calls only)

    def dtypes(self) -> set[str]:
        return {t.dtype for t in (*self.inputs, *self.outputs)}


@dataclass
class DtypeTrace:
    """Every recorded call, in call order."""

    calls: list[CallRecord] = field(default_factory=list)
    contract: str = str(CONTRACT_DTYPE).removeprefix("torch.")

    def first_violation(self) -> CallRecord | None:
        """The first call where a tensor of another dtype than the contract's goes in or out."""
        for call in self.calls:
            if any(t.dtype != self.contract for t in (*call.inputs, *call.outputs)):
                return call
        return None

    def user_line(self) -> str | None:
        """Where the user's code fed the first violating call (its outermost call's caller)."""
        first = self.first_violation()
        if first is None:
            return None
        for call in reversed(self.calls[: first.index + 1]):
            if call.caller is not None:
                return call.caller
        return None

    def table(self) -> str:
        """A compact table, one line per call, the first violation marked ``<-- first``."""
        first = self.first_violation()
        lines = [f"{'#':>4}  {'module':<40} {'in':<32} {'out':<32} nan/inf"]
        for call in self.calls:
            ins = ", ".join(f"{t.dtype}{list(t.shape)}" for t in call.inputs)[:32]
            outs = ", ".join(f"{t.dtype}{list(t.shape)}" for t in call.outputs)[:32]
            bad = sum(t.nan + t.inf for t in (*call.inputs, *call.outputs))
            mark = "  <-- first non-" + self.contract if call is first else ""
            name = ("  " * call.depth + (call.module or "<root>"))[:40]
            lines.append(f"{call.index:>4}  {name:<40} {ins:<32} {outs:<32} {bad}{mark}")
        if first is not None:
            lines.append(
                f"first {'/'.join(sorted(first.dtypes() - {self.contract}))} at call {first.index}: "
                f"{first.module or '<root>'} ({first.kind}), fed from "
                f"{self.user_line() or 'this tool (no user code on the stack)'}"
            )
        else:
            lines.append(f"every tensor at every module boundary is {self.contract}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_violation()
        return {
            "contract": self.contract,
            "first_violation": None if first is None else first.index,
            "user_line": self.user_line(),
            "calls": [asdict(c) for c in self.calls],
        }


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _user_frame() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        path = str(Path(name).resolve())
        if not name.startswith("<") and not path.startswith((*_PROJECT, _TORCH)):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


@contextmanager
def dtype_trace(model: nn.Module) -> Iterator[DtypeTrace]:
    """Record every module call of ``model`` (and its children) while the block runs."""
    trace = DtypeTrace()
    names = {m: n for n, m in model.named_modules()}
    stack: list[CallRecord] = []
    handles = []

    def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        record = CallRecord(
            index=len(trace.calls),
            module=names.get(module, "?"),
            kind=type(module).__name__,
            depth=len(stack),
            inputs=[TensorInfo.of(t) for t in _tensors((args, kwargs))],
            caller=_user_frame() if not stack else None,
        )
        trace.calls.append(record)
        stack.append(record)

    def post(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if stack:
            stack.pop().outputs = [TensorInfo.of(t) for t in _tensors(out)]

    for module in names:
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, with_kwargs=True))
    try:
        yield trace
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class TraceOptions:
    """What ``trace`` runs: a checkpoint's eager model on an NPZ's diffraction as stored."""

    checkpoint: Path = field(metadata={"help": "model file or .ckpt"})
    inputs: Path = field(metadata={"help": "NPZ whose 'diffraction' is fed as stored"})
    json: Path | None = field(default=None, metadata={"help": "also write the trace as JSON"})


def trace_inference(checkpoint: Path, inputs: Path) -> tuple[DtypeTrace, str | None]:
    """The trace of the eager model of ``checkpoint`` on ``inputs``' diffraction exactly as
    stored (no cast: it shows what a pipeline feeding these arrays sends), and the error the
    model raised, if any."""
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.npz import read_npz

    model = load_model(checkpoint)
    arrays = read_npz(inputs, "inputs")
    if "diffraction" not in arrays:
        from parity.errors import ParityError

        raise ParityError(f"inputs {inputs} has no 'diffraction' array; found {sorted(arrays)}")
    x = torch.from_numpy(arrays["diffraction"])
    error = None
    with dtype_trace(model) as trace, torch.inference_mode():
        try:
            model.predict(x)
        except RuntimeError as exc:  # the model refusing the dtype is what is being traced
            error = str(exc).splitlines()[0]
    return trace, error
