"""Torch-free runtime for inference hosts: NumPy and ONNX Runtime only.

``OnnxHost`` loads ``model.onnx``, reads the signature the build stored in its metadata, checks
every feed with the one feed check (:meth:`export.signature.Signature.check_feed`, torch-free),
reports the execution providers the session really uses, and checks that the model and
``manifest.json`` describe the same thing. Whole scans: :mod:`export.predict`; checking a copied
folder: :mod:`export.verify`; the command line: :mod:`ptychopinn.host`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from export.cuda_advice import cuda_attempt, preload_cuda_libraries
from export.errors import ArtifactsChangedError
from export.manifest import Manifest
from export.session import SessionSettings
from export.signature import Signature  # torch-free: keeps the host so
from ptycho_torch.errors import ToolError

__all__ = [
    "DEVICES",
    "HostError",
    "OnnxHost",
    "preload_cuda_libraries",
    "provider_chain",
]

log = logging.getLogger(__name__)

DEVICES: tuple[str, ...] = ("cpu", "cuda")


class HostError(ToolError):
    """Bad input to the host runtime (exit code 2) or, with ``exit_code=3``, an environment gap."""


def provider_chain(device: str, session: SessionSettings | None = None) -> list[Any]:
    """Execution providers for a device, with TF32 off on CUDA (and ``session``'s CUDA options)."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        cuda = {"use_tf32": "0", **(session.cuda_options() if session else {})}
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
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
    """An ONNX Runtime session bound to the artifact's fixed float32 signature.

    ``session``: the settings the manifest records (``onnxruntime_session``, measured by
    ``python -m export bench --save-tuning``); None runs ONNX Runtime's defaults.
    """

    def __init__(
        self, path: str | Path, device: str = "cpu", session: SessionSettings | None = None
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise HostError(f"ONNX model {self.path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the CUDA provider's load failure is reported below instead
        if session is not None:
            session.session_options(options)
        self.settings = session
        try:
            with cuda_attempt(device) as attempt:  # ONNX Runtime's own log folded in below
                self.session = ort.InferenceSession(
                    str(self.path), sess_options=options, providers=provider_chain(device, session)
                )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
            if device == "cuda" and session is not None and session.cuda_graph:
                raise HostError(
                    f"ONNX Runtime {ort.__version__} cannot run {self.path} as a CUDA graph: "
                    f"{_ort_reason(exc)}; the manifest's onnxruntime_session asks for one: "
                    "rerun `python -m export bench --device cuda --save-tuning` on this host "
                    "(it keeps CUDA graphs only where they run)"
                ) from None
            raise HostError(
                f"ONNX Runtime {ort.__version__} cannot load {self.path}: {_ort_reason(exc)}; "
                "the file is truncated, not ONNX, refers to data outside its folder, or needs a "
                "newer onnxruntime: copy it again or rebuild with `python -m export build`"
            ) from None
        self.device = device
        self.providers = list(self.session.get_providers())
        problem = attempt.problem(self.providers)  # None unless CUDA was asked for and is missing
        if problem is not None:
            raise HostError(problem, exit_code=3)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "ptychopinn.signature" not in meta:
            raise HostError(f"{self.path} carries no PtychoPINN signature in its metadata")
        self.signature = Signature.from_dict(json.loads(meta["ptychopinn.signature"]))
        self.metadata = dict(meta)
        self._bound: _BoundRun | None = None
        wants_graph = device == "cuda" and session is not None and bool(session.cuda_graph)
        if session is not None and session.io_binding and not self.bind_io() and wants_graph:
            raise HostError(
                f"the manifest's onnxruntime_session asks for a CUDA graph, which needs IO "
                f"binding, and ONNX Runtime {ort.__version__} cannot bind {self.path}'s inputs "
                "and outputs here (logged above): rerun `python -m export bench --device cuda "
                "--save-tuning` on this host"
            )

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

    @property
    def io_bound(self) -> bool:
        """Whether runs go through IO binding (buffers allocated once on the session's device)."""
        return self._bound is not None

    def bind_io(self) -> bool:
        """Run through IO binding from now on, if ONNX Runtime can set it up here; where it
        cannot, runs stay plain ``session.run`` (logged) and this returns False."""
        if self._bound is None:
            try:
                self._bound = _BoundRun(self.session, self.signature, self.device)
            except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
                log.warning(
                    "IO binding unavailable (%s); running with session.run on %s", exc, self.device
                )
        return self._bound is not None

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the feed, run the session, return outputs by name."""
        self.check_feed(feed)
        if self._bound is not None:
            return self._bound(feed)
        outputs = self.session.run(self.output_names, {n: feed[n] for n in self.input_names})
        return dict(zip(self.output_names, outputs))

    def manifest_problems(self, manifest: Manifest) -> list[str]:
        """How this model and ``manifest`` disagree: head, signature, model config, weights
        digest (from the metadata the build stored) and the graph's own inputs and outputs."""
        problems = []
        try:
            described: Signature | None = Signature.from_dict(manifest.signature)
        except (KeyError, TypeError, ValueError) as exc:
            described = None
            problems.append(f"signature: the manifest's is malformed ({exc!r})")
        if described is not None and described != self.signature:
            problems.append(
                f"signature: manifest says {_signature_text(described)}, model.onnx carries "
                f"{_signature_text(self.signature)}"
            )
        stored: dict[str, tuple[Any, Any]] = {
            "head": (self.metadata.get("ptychopinn.head"), manifest.head),
            "weights_sha256": (
                self.metadata.get("ptychopinn.weights_sha256"),
                manifest.checkpoint.weights_sha256,
            ),
        }
        config = self.metadata.get("ptychopinn.model_config")
        if config is not None:
            stored["model_config"] = (json.loads(config), manifest.model_config)
        for what, (in_model, in_manifest) in stored.items():
            if in_model is not None and in_model != in_manifest:
                problems.append(f"{what}: manifest says {in_manifest!r}, model.onnx {in_model!r}")
        graph = {a.name: (a.type, list(a.shape)) for a in self.session.get_inputs()}
        graph |= {a.name: (a.type, list(a.shape)) for a in self.session.get_outputs()}
        for spec in (*self.signature.inputs, *self.signature.outputs):
            if graph.get(spec.name) != ("tensor(float)", list(spec.shape)):
                found = graph.get(spec.name, "absent")
                problems.append(
                    f"graph tensor {spec.name!r}: {found}, metadata says {spec.describe()}"
                )
        return problems

    def check_manifest(self, manifest: Manifest) -> None:
        """Raise unless this model is the one ``manifest`` describes.

        ``manifest.json`` lists every file's sha256 but not its own, so when ``model.onnx``
        matches its sha256 and still disagrees, the manifest was edited after the build.

        Raises:
            ArtifactsChangedError: (exit 4) naming every disagreement.
        """
        problems = self.manifest_problems(manifest)
        if problems:
            raise ArtifactsChangedError(
                f"{self.path.parent}: model.onnx and manifest.json disagree ({'; '.join(problems)}); "
                "model.onnx matches its sha256, so manifest.json was changed after the build "
                "(it does not hash itself): copy the folder again or rebuild with "
                "`python -m export build`"
            )


class _BoundRun:
    """One session run through ONNX Runtime's IO binding: every input and output has a buffer
    of the signature's fixed shape, allocated once on the session's device and bound once; a
    run copies the feed into the input buffers (one host-to-device copy on CUDA), runs, and
    copies the outputs out (one device-to-host copy): no allocation per run. The same addresses
    every run are what a CUDA graph replay needs. Runs are serialised (one set of buffers)."""

    def __init__(self, session: Any, signature: Signature, device: str) -> None:
        self.session, self.binding = session, session.io_binding()
        self._lock = threading.Lock()

        def buffer(shape: tuple[int, ...]) -> Any:
            return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.float32, device, 0)

        self.inputs = {s.name: buffer(s.shape) for s in signature.inputs}
        self.outputs = {s.name: buffer(s.shape) for s in signature.outputs}
        for name, value in self.inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for name, value in self.outputs.items():
            self.binding.bind_ortvalue_output(name, value)

    def __call__(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            for name, value in self.inputs.items():
                value.update_inplace(np.ascontiguousarray(feed[name], dtype=np.float32))
            self.session.run_with_iobinding(self.binding)
            return {name: _own_copy(value) for name, value in self.outputs.items()}


def _own_copy(value: Any) -> np.ndarray:
    """The output as an array the caller owns: a CPU buffer's view would change on the next run."""
    array = value.numpy()
    if array.__array_interface__["data"][0] == value.data_ptr():
        return array.copy()
    return array


def _signature_text(signature: Signature) -> str:
    inputs = ", ".join(f"{s.name}: {s.describe()}" for s in signature.inputs)
    outputs = ", ".join(f"{s.name}: {s.describe()}" for s in signature.outputs)
    return f"{signature.head} head ({inputs} -> {outputs})"
