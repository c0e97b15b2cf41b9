"""The twin's own Keras layers: the intensity scale, the phase activation, a channel slice, the
border mask and the physics forward (``far_field``). Importing this module imports Keras on the
TensorFlow backend (:func:`load_keras`); every layer is pinned to float32 (:data:`FLOAT`).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from parity.tf_twin.canvas import canvas_margin
from parity.tf_twin.errors import TwinError
from parity.tf_twin.physics import forward_steps
from ptycho_torch.config import ModelConfig

__all__ = [
    "FLOAT",
    "BorderMask",
    "Channels",
    "FarField",
    "IntensityScale",
    "PiTanh",
    "load_keras",
]

FLOAT = "float32"


def load_keras() -> Any:
    """Keras on the TensorFlow backend, the twin's ops being TensorFlow ops (``TwinError`` if
    ``KERAS_BACKEND`` names another)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise TwinError(
            f"the TensorFlow twin needs Keras on the tensorflow backend, found "
            f"{keras.backend.backend()!r}; unset KERAS_BACKEND or set KERAS_BACKEND=tensorflow"
        )
    return keras


keras = load_keras()
import tensorflow as tf  # noqa: E402  (after Keras has chosen its backend)

_Layer: Any = keras.layers.Layer


class IntensityScale(_Layer):
    """``x / exp(log_scale)`` on the way in, ``x * exp(log_scale)`` on the way out."""

    def __init__(self, config: ModelConfig, **kwargs: Any) -> None:
        super().__init__(dtype=FLOAT, **kwargs)
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(config.intensity_scale)),
            trainable=config.intensity_scale_trainable,
        )

    def call(self, x: tf.Tensor, inverse: bool = False) -> tf.Tensor:
        scale = tf.exp(self.log_scale)
        return x * scale if inverse else x / scale


class PiTanh(_Layer):
    """Phase activation ``pi * tanh(x)``."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return math.pi * tf.tanh(x)


class Channels(_Layer):
    """Channels ``[start, stop)`` of an NHWC tensor."""

    def __init__(self, start: int, stop: int | None, **kwargs: Any) -> None:
        super().__init__(dtype=FLOAT, **kwargs)
        self.start, self.stop = start, stop

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x[..., self.start : self.stop]


class BorderMask(_Layer):
    """Zero inside the central N/2 x N/2 square, identity outside."""

    def __init__(self, n: int, **kwargs: Any) -> None:
        super().__init__(dtype=FLOAT, **kwargs)
        mask = np.ones((n, n, 1), np.float32)
        mask[n // 4 : n - n // 4, n // 4 : n - n // 4] = 0.0
        self.mask = mask

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return x * tf.constant(self.mask)


class FarField(_Layer):
    """The physics forward (:mod:`parity.tf_twin.physics`); holds the probe.

    ``call`` gives the unscaled predicted amplitude NHWC ``(B, N, N, C)``; ``steps`` every
    intermediate of the same computation. (The class keeps its name so that Keras weights files
    of the twin keep their layout.)
    """

    def __init__(self, config: ModelConfig, **kwargs: Any) -> None:
        super().__init__(dtype=FLOAT, **kwargs)
        canvas_margin(config)  # the original cannot run an odd or empty margin: fail now
        self.config = config
        shape = (config.N, config.N)
        self.probe_re = self.add_weight(
            name="probe_re", shape=shape, initializer="ones", trainable=False
        )
        self.probe_im = self.add_weight(
            name="probe_im", shape=shape, initializer="zeros", trainable=False
        )

    def steps(
        self, amplitude: tf.Tensor, phase: tf.Tensor, positions: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return forward_steps(amplitude, phase, positions, self.probe_re, self.probe_im, self.config)

    def call(self, amplitude: tf.Tensor, phase: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        pred = self.steps(amplitude, phase, positions)["pred_amplitude_unscaled"]
        return tf.transpose(pred, (0, 2, 3, 1))  # (B, C, N, N) -> NHWC
