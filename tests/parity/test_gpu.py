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


def test_torch_backends_on_cuda_pass_even_without_onnxruntime_cuda(artifacts: Path) -> None:
    """The lent GPU's image has the CPU onnxruntime: eager, TorchScript and .pt2 still run and
    pass on CUDA, the missing ONNX Runtime CUDA runner is named, and the run is exit 3."""
    import onnxruntime as ort

    report = run_check(CheckOptions(artifacts=artifacts, device="cuda"))
    cuda = [r for r in report.runners if r.requested_device == "cuda"]
    torch_cuda = [r for r in cuda if r.kind != "onnxruntime"]
    assert len(torch_cuda) == 3 and all(r.actual_device.startswith("cuda") for r in torch_cuda)
    failing = [c.log_line() for c in report.comparisons if c.status != "pass"]
    assert not failing, failing
    missing = [n for n in report.notes if "onnxruntime[cuda] did not come up" in n]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert missing  # the CPU package: never silently a pass
    assert report.exit_code == (3 if missing else 0)
