"""The live TensorFlow twin with the checkpoint's weights (optional; needs TensorFlow).

Its intermediates are Keras layer outputs (the layers carry the PyTorch module paths as names)
and the steps of its physics forward, NHWC turned into NCHW.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.signature import Signature
from parity.errors import EnvironmentUnavailable, ParityError
from parity.runners.base import PHYSICS_STEPS, STEP_PREFIX, Backend, Intermediate, Runner, flat_step

if TYPE_CHECKING:
    from export.manifest import Manifest

__all__ = ["TfTwinRunner"]


class TfTwinRunner(Runner):
    """The twin on the CPU; ``twin`` is the Keras model while active."""

    backend = Backend.TF_TWIN
    stops_at_layers = True
    physics_steps = True

    def __init__(self, name: str, signature: Signature, path: Path) -> None:
        super().__init__(name, signature, "cpu")
        self.path = path
        self.twin: Any = None

    @classmethod
    def for_build(cls, artifacts: Path, manifest: Manifest, device: str) -> Runner:
        if device != "cpu":
            raise ParityError(f"{cls.backend} runs on the CPU only; use --device cpu")
        signature = Signature.from_dict(manifest.signature)
        return cls(cls.backend.runner_name(device), signature, manifest.weights_path(artifacts))

    def _activate(self) -> None:
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            raise EnvironmentUnavailable(
                f"{self.name} needs TensorFlow; install the 'tf' extra "
                "(pip install -c constraints.txt -e '.[tf]')"
            ) from None
        from parity.tf_twin.generate import make_twin
        from ptycho_torch.checkpoint import read_checkpoint

        config, state = read_checkpoint(self.path)
        self.twin = make_twin(config, state, self.signature.head)

    def _deactivate(self) -> None:
        self.twin = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        from parity.tf_twin.generate import run_twin

        return run_twin(self.twin, self.signature, feed)

    def _intermediates(
        self, feed: Mapping[str, np.ndarray], wanted: Sequence[Intermediate]
    ) -> dict[str, np.ndarray]:
        """One probe model over the wanted layers and the outputs; the physics steps from
        :func:`parity.tf_twin.model.intermediates`."""
        import tensorflow as tf

        from parity.tf_twin.generate import DEVICE, call_twin
        from parity.tf_twin.layers import load_keras
        from parity.tf_twin.model import intermediates

        outputs = {name: self.twin.output[name] for name in self.signature.output_names}
        for i in wanted:
            if i.post == "step":
                continue
            try:
                outputs[i.name] = self.twin.get_layer(i.name).output
            except ValueError:
                raise ParityError(f"the TensorFlow twin has no layer named {i.name}") from None
        values = call_twin(load_keras().Model(self.twin.inputs, outputs), self.signature.head, feed)
        if any(i.post == "step" for i in wanted):
            with tf.device(DEVICE):
                diffraction = tf.constant(np.transpose(feed["diffraction"], (0, 2, 3, 1)))
                steps = intermediates(self.twin, diffraction, feed["positions"])
            for step in PHYSICS_STEPS:
                values[STEP_PREFIX + step] = flat_step(steps[step].numpy())
        return values
