"""PyTorch runners: the eager model, TorchScript and the exported program (``.pt2``).

Eager stops at layers through forward hooks on the checkpoint's model, the exported program by
running its graph node by node (``torch.fx.Interpreter``, each conv node found by the module path
the exporter keeps in its ``nn_module_stack``). TorchScript is compiled whole: a loaded script
module takes no hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from export.signature import AMPLITUDE, PHASE, Signature
from parity.errors import EnvironmentUnavailable, ParityError
from parity.runners.base import (
    PHYSICS_STEPS,
    STEP_PREFIX,
    Backend,
    Intermediate,
    Runner,
    flat_step,
)

if TYPE_CHECKING:
    from export.manifest import Manifest

__all__ = ["EagerRunner", "ExportedProgramRunner", "TorchScriptRunner", "torch_device"]


def torch_device(device: str) -> str:
    """``device`` when torch can use it; ``EnvironmentUnavailable`` (exit 3) for a missing CUDA."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise EnvironmentUnavailable(
            "requested --device cuda but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); run with --device cpu"
        )
    return device


def _post(post: str, value: Any) -> Any:
    """``value`` after the activation the original fuses into its conv layer."""
    import torch

    if post == "relu":
        return torch.relu(value)
    if post == "silu":
        return torch.nn.functional.silu(value)
    return value


class _TorchRunner(Runner):
    file: ClassVar[str]  # the artifact in a build folder

    def __init__(self, name: str, signature: Signature, device: str, path: Path) -> None:
        super().__init__(name, signature, device)
        self.path = path
        self._fn: Any = None  # a loaded, checked callable (export.artifacts.LoadedArtifact)

    @classmethod
    def for_build(cls, artifacts: Path, manifest: Manifest, device: str) -> Runner:
        signature = Signature.from_dict(manifest.signature)
        return cls(cls.backend.runner_name(device), signature, device, artifacts / cls.file)

    def _deactivate(self) -> None:
        self._fn = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._fn(feed)


class EagerRunner(_TorchRunner):
    """The PyTorch model from its checkpoint, wrapped with the signature check.

    ``inference_mode`` (False: ``torch.no_grad``) and ``channels_last`` (the module and 4-D
    inputs in channels-last memory) are the eager modes ``python -m export bench`` tunes; the
    defaults are how every other command runs the model. ``model`` is the unwrapped
    ``PtychoPINN`` while active.
    """

    backend = Backend.EAGER
    stops_at_layers = True
    physics_steps = True

    def __init__(
        self,
        name: str,
        signature: Signature,
        device: str,
        path: Path,
        *,
        inference_mode: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__(name, signature, device, path)
        self.inference_mode, self.channels_last = inference_mode, channels_last
        self.model: Any = None

    @classmethod
    def for_build(cls, artifacts: Path, manifest: Manifest, device: str) -> Runner:
        signature = Signature.from_dict(manifest.signature)
        weights = manifest.weights_path(artifacts)
        return cls(cls.backend.runner_name(device), signature, device, weights)

    def _activate(self) -> None:
        import torch

        from export.artifacts import LoadedArtifact
        from export.wrapper import wrap
        from ptycho_torch.checkpoint import load_model

        device = torch_device(self.requested_device)
        self.model = load_model(self.path)
        module = wrap(self.model, self.signature).to(device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self._fn = LoadedArtifact(
            self.path,
            self.kind,
            self.signature,
            device,
            module,
            channels_last=self.channels_last,
            inference_mode=self.inference_mode,
        )
        self.actual_device = str(next(module.parameters()).device)

    def _deactivate(self) -> None:
        self._fn = self.model = None

    def _intermediates(
        self, feed: Mapping[str, np.ndarray], wanted: Sequence[Intermediate]
    ) -> dict[str, np.ndarray]:
        """A forward hook on every wanted conv; the physics steps recomputed after the forward."""
        modules = dict(self.model.named_modules())
        values: dict[str, np.ndarray] = {}
        handles = []
        for i in wanted:
            if i.post == "step":
                continue

            def hook(_m: Any, _a: Any, out: Any, i: Intermediate = i) -> None:
                values[i.name] = _post(i.post, out).detach().cpu().numpy()

            handles.append(modules[i.name].register_forward_hook(hook))
        try:
            values.update(self._infer(feed))
        finally:
            for h in handles:
                h.remove()
        if any(i.post == "step" for i in wanted):
            values.update(self._physics_steps(feed, values))
        return values

    def _physics_steps(
        self, feed: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The physics forward's steps, recomputed from the head's own outputs (the same ops
        on the same values as inside the forward)."""
        import torch

        device = next(self.model.parameters()).device
        tensors = (values[AMPLITUDE], values[PHASE], feed["positions"])
        amplitude, phase, positions = (torch.from_numpy(np.asarray(v)).to(device) for v in tensors)
        with torch.inference_mode():
            steps = self.model.physics_steps(amplitude, phase, positions)
        out = {}
        for step, (key, _) in PHYSICS_STEPS.items():
            if f"{key}_re" in steps:
                value = steps[f"{key}_re"].cpu().numpy() + 1j * steps[f"{key}_im"].cpu().numpy()
            else:
                value = steps[key].cpu().numpy()
            out[STEP_PREFIX + step] = flat_step(value)
        return out


class TorchScriptRunner(_TorchRunner):
    backend = Backend.TORCHSCRIPT
    file = "model.ts"

    def _activate(self) -> None:
        from export.artifacts import load_torchscript

        self._fn = load_torchscript(self.path, torch_device(self.requested_device))
        self.actual_device = self.requested_device


class ExportedProgramRunner(_TorchRunner):
    """``model.pt2``; intermediates come from running its graph node by node."""

    backend = Backend.EXPORTED_PROGRAM
    file = "model.pt2"
    stops_at_layers = True

    def _activate(self) -> None:
        from export.artifacts import load_program

        self._fn = load_program(self.path, torch_device(self.requested_device))
        self.actual_device = self.requested_device

    def _intermediates(
        self, feed: Mapping[str, np.ndarray], wanted: Sequence[Intermediate]
    ) -> dict[str, np.ndarray]:
        import torch.fx

        posts = {i.name: i.post for i in wanted}
        values: dict[str, np.ndarray] = {}

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n: torch.fx.Node) -> Any:
                result = super().run_node(n)
                stack = n.meta.get("nn_module_stack") or {}
                if n.op == "call_function" and "conv" in str(n.target):
                    path = str(list(stack.values())[-1][0]) if stack else ""
                    name = next((b for b in posts if path == b or path.endswith("." + b)), None)
                    if name is not None:
                        values[name] = _post(posts[name], result).detach().cpu().numpy()
                return result

        module: Any = self._fn._fn  # the program's GraphModule, run by the recording interpreter
        values.update(replace(self._fn, _fn=lambda *args: Recorder(module).run(*args))(feed))
        missing = sorted(set(posts) - set(values))
        if missing:
            raise ParityError(
                f"{self.path.name}: no conv node carries the module path of {missing[0]} "
                f"({len(missing)} boundaries unmatched); was it built by this tool?"
            )
        return values
