"""GPU parity: skipped with a reason on machines without CUDA (see scripts/gpu_check.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.check import CheckOptions, run_check

pytestmark = pytest.mark.gpu


def test_cuda_parity_passes_and_runs_on_the_gpu(artifacts: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here")
    report = run_check(CheckOptions(artifacts=artifacts, device="cuda"))
    cuda = [r for r in report.runners if r.requested_device == "cuda"]
    assert cuda and all(r.actual_device.startswith("cuda") for r in cuda)
    onnx_runner = next(r for r in cuda if r.kind == "onnxruntime")
    assert onnx_runner.providers[0] == "CUDAExecutionProvider"
    assert report.verdict == "pass", [
        c.log_line() for c in report.comparisons if c.status != "pass"
    ]
