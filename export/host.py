"""Torch-free runtime for inference hosts: NumPy and ONNX Runtime only.

``OnnxHost`` loads ``model.onnx``, reads the signature the build stored in its metadata, checks
every feed (names, float32, fixed shapes) with a message that says what to do, and reports the
execution providers the session really uses. ``python -m export.host verify ARTIFACTS`` checks
the file hashes in ``manifest.json`` and replays ``inputs.npz`` against ``reference.npz``.

This module deliberately re-implements the small feed check of ``export.signature`` because
importing that module would import torch; it imports only ``export.manifest`` (standard library).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from export.manifest import read_manifest
from export.signature import Signature  # torch-free: keeps the host so
from ptycho_torch.errors import ToolError

__all__ = [
    "DEVICES",
    "HostError",
    "OnnxHost",
    "VerifyOptions",
    "provider_chain",
    "verify_artifacts",
]

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")


class HostError(ToolError):
    """Bad input to the host runtime (exit code 2) or, with ``exit_code=3``, an environment gap."""


def provider_chain(device: str) -> list[Any]:
    """Execution providers for a device, with TF32 off on CUDA."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        return [("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"]
    raise HostError(f"unknown device {device!r}; expected 'cpu' or 'cuda'")


def _ort_reason(exc: Exception) -> str:
    """ONNX Runtime's own reason, without its C++ source location."""
    text = str(exc).strip()
    if "Load model from" in text and "failed:" in text:
        text = text.split("failed:", 1)[1].strip()
    if "onnxruntime_src" in text:
        text = text.rsplit(") ", 1)[-1]  # after the C++ function signature
    return text


class OnnxHost:
    """An ONNX Runtime session bound to the artifact's fixed float32 signature."""

    def __init__(self, path: str | Path, device: str = "cpu") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HostError(f"ONNX model {self.path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the CUDA provider's load failure is reported below instead
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=provider_chain(device)
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            raise HostError(
                f"ONNX Runtime {ort.__version__} cannot load {self.path}: {_ort_reason(exc)}; "
                "the file is truncated, not ONNX, refers to data outside its folder, or needs a "
                "newer onnxruntime: copy it again or rebuild with `python -m export build`"
            ) from None
        self.device = device
        self.providers = list(self.session.get_providers())
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise HostError(
                f"requested CUDA but ONNX Runtime runs {self.providers} "
                f"(available: {ort.get_available_providers()}); install CUDA 12 and cuDNN 9 "
                "libraries for onnxruntime-gpu, or run with --device cpu",
                exit_code=3,
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        if "ptychopinn.signature" not in meta:
            raise HostError(f"{self.path} carries no PtychoPINN signature in its metadata")
        self.signature = Signature.from_dict(json.loads(meta["ptychopinn.signature"]))
        self.metadata = dict(meta)

    @property
    def input_names(self) -> list[str]:
        return self.signature.input_names

    @property
    def output_names(self) -> list[str]:
        return self.signature.output_names

    def check_feed(self, feed: Mapping[str, Any]) -> None:
        """The one feed check (``Signature.check_feed``): every name, dtype, shape and
        non-finite problem at once, with the advice that fits it.

        Raises:
            SignatureError: (exit 2) what was expected, what was found, what to do.
        """
        self.signature.check_feed(feed)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the feed, run the session, return outputs by name."""
        self.check_feed(feed)
        outputs = self.session.run(self.output_names, {n: feed[n] for n in self.input_names})
        return dict(zip(self.output_names, outputs))


@dataclass(frozen=True)
class VerifyOptions:
    """How :func:`verify_artifacts` runs the parity batch."""

    device: str = field(default="cpu", metadata={"help": "ONNX Runtime device", "choices": DEVICES})
    atol: float = field(default=1e-5, metadata={"help": "max abs error vs reference.npz"})

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"VerifyOptions.device must be one of {DEVICES}, got {self.device!r}")
        if not (math.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"VerifyOptions.atol must be finite and >= 0, got {self.atol!r}")


def verify_artifacts(
    directory: str | Path, options: VerifyOptions = VerifyOptions()
) -> dict[str, Any]:
    """Check manifest hashes, run ``inputs.npz`` and compare with ``reference.npz``.

    Returns a summary dict; raises :class:`HostError` on any mismatch.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)  # every file checked: missing or changed is exit 4
    host = OnnxHost(directory / "model.onnx", device=options.device)
    with np.load(directory / "inputs.npz", allow_pickle=False) as data:
        feed = {k: data[k] for k in data.files}
    outputs = host.run(feed)
    summary: dict[str, Any] = {"providers": host.providers, "files": len(manifest.files)}
    ref_path = directory / "reference.npz"
    if ref_path.is_file():
        with np.load(ref_path, allow_pickle=False) as data:
            for name in host.output_names:
                err = float(np.max(np.abs(outputs[name].astype(np.float64) - data[name])))
                summary[f"max_abs[{name}]"] = err
                if not err <= options.atol:
                    raise HostError(
                        f"output {name!r} differs from reference.npz by {err:.3g} "
                        f"> {options.atol:g}",
                        1,
                    )
    return summary


if __name__ == "__main__":
    from export.host_cli import main

    sys.exit(main())
