"""Precision policy, fixed before any framework computes, and the environment fingerprint."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections.abc import Mapping
from typing import Any

__all__ = ["apply_precision_policy", "environment_fingerprint"]


def apply_precision_policy() -> dict[str, Any]:
    """TF32 off everywhere, deterministic algorithms on. Returns what was set, for the report.

    ``NVIDIA_TF32_OVERRIDE=0`` and ``CUBLAS_WORKSPACE_CONFIG`` only take effect if set before
    CUDA initialises, so call this first. ONNX Runtime's CUDA provider gets ``use_tf32=0`` per
    session (``export.host.provider_chain``); TensorFlow's switch is set by the twin before it runs.
    """
    os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    torch.use_deterministic_algorithms(True, warn_only=True)
    return {
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch.backends.cudnn.deterministic": torch.backends.cudnn.deterministic,
        "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch.deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "NVIDIA_TF32_OVERRIDE": os.environ["NVIDIA_TF32_OVERRIDE"],
        "onnxruntime.cuda.use_tf32": 0,
        "tensorflow.tf32": "disabled by the twin (enable_tensor_float_32_execution(False))",
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TF default)"),
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_fingerprint(threads: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Versions, CPU, GPU, CUDA/cuDNN and driver, as far as this machine tells, and torch's
    CPU threads: ``threads`` (how the count was chosen, ``ThreadChoice.to_dict()``) when given,
    else the count in effect."""
    import onnxruntime as ort
    import torch

    from ptycho_torch.threads import cpu_kind

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_kind(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": ort.__version__,
        "onnxruntime_package": "onnxruntime-gpu" if _version("onnxruntime-gpu") else "onnxruntime",
        "onnxruntime_available_providers": ort.get_available_providers(),
        "lightning": _version("lightning"),
        "numpy": _version("numpy"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "threads": dict(threads) if threads else {"threads": torch.get_num_threads()},
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cudnn"] = torch.backends.cudnn.version()
        try:
            import subprocess

            env["driver"] = (
                subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout.strip()
                or None
            )
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    return env
