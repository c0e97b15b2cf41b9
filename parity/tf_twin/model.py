"""The PtychoPINN network in TensorFlow/Keras idioms (ARCHITECTURE.md, "The network").

NHWC throughout: ``(B, N, N, C)`` with ``C = gridsize**2``. ``Conv2D(padding="same")``,
``MaxPool2D``, ``UpSampling2D`` (nearest) and ``ZeroPadding2D``; every layer is pinned to float32
so that a global mixed-precision policy cannot change the reference.

Layer names are the PyTorch module paths (``encoder.0.convs.conv1``,
``amplitude_decoder.head.centre_conv``, ...), so weights map between the frameworks by name
(:mod:`parity.tf_twin.weights`). Two small custom layers hold the non-convolution state:
``intensity_scale`` (variable ``log_scale``) and ``far_field`` (variables ``probe_re``,
``probe_im``: the probe as the model holds it, already normalised), which runs the physics
forward of :mod:`parity.tf_twin.physics`. :func:`intermediates` names every step of a forward.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE
from parity.tf_twin.errors import TwinError
from ptycho_torch.config import ModelConfig

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = [
    "C_OUTER",
    "build_twin",
    "decoder_filters",
    "encoder_filters",
    "intermediates",
    "object_head",
]

C_OUTER = 4  # channels the decoder head sends to the outer (border) path
_FLOAT = "float32"


def encoder_filters(config: ModelConfig) -> list[int]:
    """N=64: ``[32s, 64s, 128s]``; N=128: ``[16s, ..., 128s]``; N=256: ``[8s, ..., 128s]``."""
    s, blocks = config.n_filters_scale, int(math.log2(config.N)) - 3
    return [128 * s // 2 ** (blocks - 1 - i) for i in range(blocks)]


def decoder_filters(config: ModelConfig) -> list[int]:
    """N=64: ``[64s, 32s]``; N=128: ``[128s, 64s, 32s]``; N=256: ``[256s, ..., 32s]``."""
    s, blocks = config.n_filters_scale, int(math.log2(config.N)) - 4
    return [32 * s * 2 ** (blocks - 1 - i) for i in range(blocks)]


def _keras() -> Any:
    """Keras on the TensorFlow backend (the twin's ops are TensorFlow ops)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise TwinError(
            f"the TensorFlow twin needs Keras on the tensorflow backend, found "
            f"{keras.backend.backend()!r}; unset KERAS_BACKEND or set KERAS_BACKEND=tensorflow"
        )
    return keras


def _layers() -> dict[str, type]:
    """Custom layers, defined on first use so that importing this module needs no TensorFlow."""
    if _CUSTOM:
        return _CUSTOM
    keras = _keras()
    import numpy as np
    import tensorflow as tf

    from parity.tf_twin.physics import canvas_margin, forward_steps

    layer_base: Any = keras.layers.Layer

    class IntensityScale(layer_base):
        """``x / exp(log_scale)`` on the way in, ``x * exp(log_scale)`` on the way out."""

        def __init__(self, config: ModelConfig, **kwargs: Any) -> None:
            super().__init__(dtype=_FLOAT, **kwargs)
            self.log_scale = self.add_weight(
                name="log_scale",
                shape=(),
                initializer=keras.initializers.Constant(math.log(config.intensity_scale)),
                trainable=config.intensity_scale_trainable,
            )

        def call(self, x: tf.Tensor, inverse: bool = False) -> tf.Tensor:
            scale = tf.exp(self.log_scale)
            return x * scale if inverse else x / scale

    class PiTanh(layer_base):
        """Phase activation ``pi * tanh(x)``."""

        def call(self, x: tf.Tensor) -> tf.Tensor:
            return math.pi * tf.tanh(x)

    class Channels(layer_base):
        """Channels ``[start, stop)`` of an NHWC tensor."""

        def __init__(self, start: int, stop: int | None, **kwargs: Any) -> None:
            super().__init__(dtype=_FLOAT, **kwargs)
            self.start, self.stop = start, stop

        def call(self, x: tf.Tensor) -> tf.Tensor:
            return x[..., self.start : self.stop]

    class BorderMask(layer_base):
        """Zero inside the central N/2 x N/2 square, identity outside."""

        def __init__(self, n: int, **kwargs: Any) -> None:
            super().__init__(dtype=_FLOAT, **kwargs)
            mask = np.ones((n, n, 1), np.float32)
            mask[n // 4 : n - n // 4, n // 4 : n - n // 4] = 0.0
            self.mask = mask

        def call(self, x: tf.Tensor) -> tf.Tensor:
            return x * tf.constant(self.mask)

    class FarField(layer_base):
        """The physics forward (:mod:`parity.tf_twin.physics`); holds the probe.

        ``call`` gives the unscaled predicted amplitude NHWC ``(B, N, N, C)``; ``steps`` every
        intermediate of the same computation. (The class keeps its name so that Keras weights
        files of the twin keep their layout.)
        """

        def __init__(self, config: ModelConfig, **kwargs: Any) -> None:
            super().__init__(dtype=_FLOAT, **kwargs)
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
            return forward_steps(
                amplitude, phase, positions, self.probe_re, self.probe_im, self.config
            )

        def call(self, amplitude: tf.Tensor, phase: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
            pred = self.steps(amplitude, phase, positions)["pred_amplitude_unscaled"]
            return tf.transpose(pred, (0, 2, 3, 1))  # (B, C, N, N) -> NHWC

    _CUSTOM.update(
        IntensityScale=IntensityScale,
        PiTanh=PiTanh,
        Channels=Channels,
        BorderMask=BorderMask,
        FarField=FarField,
    )
    return _CUSTOM


_CUSTOM: dict[str, type] = {}


class _Builder:
    """Builds the functional graph; every layer gets its PyTorch module path as name."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.keras = _keras()
        self.custom = _layers()

    def conv(self, x: Any, filters: int, name: str, activation: str | None = None) -> Any:
        return self.keras.layers.Conv2D(
            filters, 3, padding="same", activation=activation, dtype=_FLOAT, name=name
        )(x)

    def conv_pair(self, x: Any, filters: int, name: str) -> Any:
        x = self.conv(x, filters, f"{name}.conv1", "relu")
        return self.conv(x, filters, f"{name}.conv2", "relu")

    def up_block(self, x: Any, filters: int, name: str) -> Any:
        x = self.conv_pair(x, filters, f"{name}.convs")
        return self.keras.layers.UpSampling2D(2, interpolation="nearest", dtype=_FLOAT)(x)

    def activation(self, x: Any, name: str) -> Any:
        if name == "pi_tanh":
            return self.custom["PiTanh"](dtype=_FLOAT)(x)
        if name not in ("sigmoid", "swish", "softplus", "relu"):
            raise TwinError(
                f"unknown amplitude activation {name!r}; expected sigmoid, swish, softplus or relu"
            )
        return self.keras.layers.Activation(name, dtype=_FLOAT)(x)

    def encoder(self, x: Any) -> Any:  # (B, N, N, C) -> (B, N/2**k, N/2**k, F)
        for i, filters in enumerate(encoder_filters(self.config)):
            x = self.conv_pair(x, filters, f"encoder.{i}.convs")
            x = self.keras.layers.MaxPool2D(2, dtype=_FLOAT)(x)
        return x

    def decoder(self, x: Any, name: str, activation: str) -> Any:  # -> (B, N, N, out)
        for i, filters in enumerate(decoder_filters(self.config)):
            x = self.up_block(x, filters, f"{name}.blocks.{i}")
        return self.head(x, f"{name}.head", activation)  # from (B, N/2, N/2, K)

    def head(self, x: Any, name: str, activation: str) -> Any:
        cfg, layers = self.config, self.keras.layers
        out, outer_filters = cfg.out_channels, cfg.n_filters_scale * (2048 // cfg.N)
        if not cfg.pad_object:
            x = self.up_block(x, outer_filters, f"{name}.outer.0")
            return self.activation(self.conv(x, out, f"{name}.outer.1"), activation)
        k = x.shape[-1]
        centre = self.custom["Channels"](0, k - C_OUTER)(x)
        centre = self.activation(self.conv(centre, out, f"{name}.centre_conv"), activation)
        centre = layers.ZeroPadding2D(cfg.N // 4, dtype=_FLOAT)(centre)  # (B, N, N, out)
        if not cfg.probe_big:
            return centre
        outer = self.custom["Channels"](k - C_OUTER, None)(x)
        outer = self.up_block(outer, outer_filters, f"{name}.outer.up")
        outer = self.conv(outer, out, f"{name}.outer.conv", "swish")
        return layers.Add(dtype=_FLOAT)([centre, self.custom["BorderMask"](cfg.N)(outer)])


def build_twin(config: ModelConfig) -> keras.Model:
    """The twin with the physics head: ``{diffraction, positions} -> {amplitude, phase,
    pred_amplitude}``, all NHWC float32 except ``positions`` ``(B, C, 2)``.

    Weights are Keras' initialisers; load real ones with
    :func:`parity.tf_twin.weights.load_torch_state`.
    """
    b = _Builder(config)
    keras, n, c = b.keras, config.N, config.C
    diffraction = keras.Input((n, n, c), dtype=_FLOAT, name="diffraction")
    positions = keras.Input((c, 2), dtype=_FLOAT, name="positions")
    scale = b.custom["IntensityScale"](config, name="intensity_scale")
    z = b.encoder(scale(diffraction))
    amplitude = b.decoder(z, "amplitude_decoder", config.amp_activation)
    phase = b.decoder(z, "phase_decoder", "pi_tanh")
    pred = b.custom["FarField"](config, name="far_field")(amplitude, phase, positions)
    pred = scale(pred, inverse=True)
    outputs = {AMPLITUDE: amplitude, PHASE: phase, PRED_AMPLITUDE: pred}
    return keras.Model({"diffraction": diffraction, "positions": positions}, outputs, name="twin")


def object_head(twin: keras.Model) -> keras.Model:
    """``diffraction -> {amplitude, phase}``: the object head, sharing the twin's layers."""
    keras = _keras()
    diffraction = twin.get_layer("diffraction").output
    outputs = {k: twin.output[k] for k in (AMPLITUDE, PHASE)}
    return keras.Model({"diffraction": diffraction}, outputs, name="twin_object")


def intermediates(twin: keras.Model, diffraction: Any, positions: Any) -> dict[str, tf.Tensor]:
    """Every named step of the twin's physics forward, for locating a disagreement.

    Runs the same layers as the physics head: the object head, then the ``far_field`` layer's
    :func:`parity.tf_twin.physics.forward_steps`, then the intensity scale.

    Args:
        twin: from :func:`build_twin`, weights loaded.
        diffraction: ``(B, N, N, C)`` float32 (NHWC, as the twin's input).
        positions: ``(B, C, 2)`` float32 offsets ``(x, y)``: scan position minus group centre.

    Returns:
        ``amplitude``, ``phase`` ``(B, out, N, N)``; the steps of
        :data:`parity.tf_twin.physics.STEP_NAMES` (patch-major, canvases ``(B, 1, M, M)``,
        complex ones complex64); ``pred_amplitude`` ``(B, C, N, N)``.
    """
    import tensorflow as tf

    heads = object_head(twin)({"diffraction": diffraction}, training=False)
    far_field, scale = twin.get_layer("far_field"), twin.get_layer("intensity_scale")
    steps = far_field.steps(heads[AMPLITUDE], heads[PHASE], tf.convert_to_tensor(positions))
    pred = scale(steps["pred_amplitude_unscaled"], inverse=True)
    return {
        AMPLITUDE: tf.transpose(heads[AMPLITUDE], (0, 3, 1, 2)),
        PHASE: tf.transpose(heads[PHASE], (0, 3, 1, 2)),
        **steps,
        PRED_AMPLITUDE: pred,
    }
