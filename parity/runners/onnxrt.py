"""ONNX Runtime: ``model.onnx`` on one execution provider.

Intermediates come from a copy of the model whose conv values are added as graph outputs
(Polygraphy's ``ModifyOutputs``): each Conv is found by the initializer name of its weights,
then its Relu or Sigmoid-Mul when the graph has one right after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.errors import ReferenceFormatError
from export.signature import Signature
from parity.errors import EnvironmentUnavailable, ParityError
from parity.runners.base import Backend, Intermediate, Runner

if TYPE_CHECKING:
    from export.manifest import Manifest

__all__ = ["OnnxRuntimeRunner"]


class OnnxRuntimeRunner(Runner):
    """ONNX Runtime on one execution provider; a GPU request that fell back to CPU is exit 3."""

    backend = Backend.ONNXRUNTIME
    stops_at_layers = True

    def __init__(
        self, name: str, signature: Signature, device: str, path: Path, session: Any = None
    ) -> None:
        super().__init__(name, signature, device)
        self.path = path
        self.session = session  # export.session.SessionSettings, or None: ORT's defaults
        self._host: Any = None  # export.host.OnnxHost: the session

    @classmethod
    def for_build(cls, artifacts: Path, manifest: Manifest, device: str) -> Runner:
        """With the session settings the manifest records (the host's tuned session)."""
        from export.session import SessionSettings

        signature = Signature.from_dict(manifest.signature)
        path, session = artifacts / "model.onnx", SessionSettings.from_manifest(manifest)
        return cls(cls.backend.runner_name(device), signature, device, path, session)

    def _activate(self) -> None:
        from export.host import HostError, OnnxHost

        try:
            self._host = OnnxHost(self.path, device=self.requested_device, session=self.session)
        except HostError as exc:
            if exc.exit_code == 3:
                raise EnvironmentUnavailable(str(exc)) from None
            raise ReferenceFormatError(str(exc)) from None
        self.providers = self._host.providers
        if self.session is not None:
            self.detail["session"] = self.session.describe()
        self.actual_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else "cpu"
        if self.requested_device == "cuda":
            # DFT has no CUDA kernel: say which nodes ONNX Runtime places on the CPU.
            self.detail["note"] = "ops without a CUDA kernel (e.g. DFT) run on the CPU provider"

    def _deactivate(self) -> None:
        self._host = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._host.run(feed)

    def _intermediates(
        self, feed: Mapping[str, np.ndarray], wanted: Sequence[Intermediate]
    ) -> dict[str, np.ndarray]:
        """A session of a copy with the wanted values as extra outputs, built for this call."""
        session, taps = self._marked_session(wanted)
        names = sorted({value for value, _ in taps.values()})
        inputs = {k: np.asarray(feed[k]) for k in self.signature.input_names}
        results = dict(zip(names, session.run(names, inputs)))
        return {i: _post(post, np.asarray(results[value])) for i, (value, post) in taps.items()}

    def _marked_session(self, wanted: Sequence[Intermediate]) -> tuple[Any, dict[str, Any]]:
        """The session, and per name the graph value to read and the activation left to numpy.
        Run with this runner's settings, without IO binding or a CUDA graph: the outputs added
        here have no buffers."""
        import onnx
        import onnxruntime as ort

        from export.cuda_advice import cuda_attempt
        from export.host import provider_chain

        model = onnx.load(str(self.path))
        graph = model.graph
        taps = {o: (o, "none") for o in self.signature.output_names}
        taps.update(self._taps(graph, wanted))
        have = {o.name for o in graph.output}
        for value, _ in taps.values():
            if value not in have:
                graph.output.append(
                    onnx.helper.make_tensor_value_info(value, onnx.TensorProto.FLOAT, None)
                )
                have.add(value)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        settings = self.session
        if settings is not None:
            settings = replace(settings, io_binding=None, cuda_graph=None)
            settings.session_options(options)
        providers = provider_chain(self.requested_device, settings)  # TF32 off, as the host
        with cuda_attempt(self.requested_device) as attempt:  # the host's advice on CUDA
            session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        problem = attempt.problem(session.get_providers())
        if problem is not None:
            raise EnvironmentUnavailable(problem)
        return session, taps

    def _taps(self, graph: Any, wanted: Sequence[Intermediate]) -> dict[str, tuple[str, str]]:
        consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                consumers.setdefault(name, []).append(node)
        convs = {n.input[1]: n for n in graph.node if n.op_type == "Conv" and len(n.input) > 1}
        taps = {}
        for i in wanted:
            weight = next(
                (w for w in convs if w == f"{i.name}.weight" or w.endswith(f".{i.name}.weight")),
                None,
            )
            if weight is None:
                raise ParityError(
                    f"{self.path}: no Conv node takes the weights of {i.name} (looked for an "
                    f"initializer named like 'model.{i.name}.weight'); was it built by this tool?"
                )
            taps[i.name] = _fused_post(convs[weight].output[0], i.post, consumers)
        return taps


def _fused_post(value: str, post: str, consumers: Mapping[str, list[Any]]) -> tuple[str, str]:
    """The graph value after ``post`` when the graph has that op right after the conv, else the
    conv's value with ``post`` left for numpy."""
    users = consumers.get(value, [])
    if post == "relu":
        for node in users:
            if node.op_type == "Relu":
                return node.output[0], "none"
    if post == "silu":
        sigmoids = {n.output[0] for n in users if n.op_type == "Sigmoid"}
        for node in users:
            if node.op_type == "Mul" and set(node.input) & sigmoids:
                return node.output[0], "none"
    return value, post


def _post(post: str, value: np.ndarray) -> np.ndarray:
    if post == "relu":
        return np.maximum(value, np.float32(0))
    if post == "silu":
        return (value / (np.float32(1) + np.exp(-value))).astype(np.float32)
    return value
