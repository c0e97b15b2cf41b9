"""``--device cuda`` where torch has CUDA but ONNX Runtime's CUDA provider does not come up (the
lent H200's image ships the CPU onnxruntime): the torch runners are still compared, the missing
one is named, and the run can never pass (exit 3)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack

import numpy as np
import pytest

from export.signature import make_signature
from parity.errors import EnvironmentUnavailable
from parity.pairs import activate_runners
from parity.runners import OnnxRuntimeRunner, Runner
from ptycho_torch.config import ModelConfig

SIGNATURE = make_signature(ModelConfig(), 1)


class _Fine(Runner):
    kind = "eager"

    def _activate(self) -> None: ...

    def _deactivate(self) -> None: ...

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}


class _NoCudaOrt(OnnxRuntimeRunner):
    def _activate(self) -> None:
        raise EnvironmentUnavailable(
            "requested CUDA but ONNX Runtime runs ['CPUExecutionProvider']"
        )


def _runners() -> list[Runner]:
    return [
        _Fine("eager[cpu]", SIGNATURE, "cpu"),
        _Fine("eager[cuda]", SIGNATURE, "cuda"),
        _NoCudaOrt("onnxruntime[cuda]", SIGNATURE, "cuda", path=None),  # type: ignore[arg-type]
    ]


def test_device_cuda_keeps_torch_cuda_and_names_the_missing_provider() -> None:
    notes: list[str] = []
    unavailable: list[str] = []
    with ExitStack() as stack:
        active = activate_runners(stack, _runners(), "cuda", notes, unavailable)
        assert [r.name for r in active] == ["eager[cpu]", "eager[cuda]"]
    assert unavailable and "onnxruntime[cuda]" in unavailable[0]
    assert any("did not come up, not compared" in n for n in notes)


def test_device_cuda_without_any_cuda_runner_is_exit_3_at_once() -> None:
    runners = [_NoCudaOrt("onnxruntime[cuda]", SIGNATURE, "cuda", path=None)]  # type: ignore[arg-type]
    with ExitStack() as stack, pytest.raises(EnvironmentUnavailable):
        activate_runners(stack, runners, "cuda", [], [])
