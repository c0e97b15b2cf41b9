"""The PtychoPINN network in TensorFlow/Keras idioms (ARCHITECTURE.md, "The network").

NHWC throughout: ``(B, N, N, C)`` with ``C = gridsize**2``; every layer is pinned to float32 so
that a global mixed-precision policy cannot change the reference. Layer names are the PyTorch
module paths (``encoder.0.convs.conv1``, ...), so weights map between the frameworks by name
(:mod:`parity.tf_twin.weights`). The twin's own layers (:mod:`parity.tf_twin.layers`, imported
when a twin is built, so that importing this module needs no TensorFlow) hold the
non-convolution state: ``intensity_scale`` and ``far_field`` (the probe, and the physics forward).
"""

from __future__ import annotations

import math
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
_FLOAT = "float32"  # parity.tf_twin.layers.FLOAT, without importing TensorFlow


def encoder_filters(config: ModelConfig) -> list[int]:
    """N=64: ``[32s, 64s, 128s]``; N=128: ``[16s, ..., 128s]``; N=256: ``[8s, ..., 128s]``."""
    s, blocks = config.n_filters_scale, int(math.log2(config.N)) - 3
    return [128 * s // 2 ** (blocks - 1 - i) for i in range(blocks)]


def decoder_filters(config: ModelConfig) -> list[int]:
    """N=64: ``[64s, 32s]``; N=128: ``[128s, 64s, 32s]``; N=256: ``[256s, ..., 32s]``."""
    s, blocks = config.n_filters_scale, int(math.log2(config.N)) - 4
    return [32 * s * 2 ** (blocks - 1 - i) for i in range(blocks)]


class _Builder:
    """Builds the functional graph; every layer gets its PyTorch module path as name."""

    def __init__(self, config: ModelConfig) -> None:
        from parity.tf_twin import layers

        self.config = config
        self.keras = layers.keras
        self.layers = layers  # the twin's own (parity.tf_twin.layers)

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
            return self.layers.PiTanh(dtype=_FLOAT)(x)
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
        centre = self.layers.Channels(0, k - C_OUTER)(x)
        centre = self.activation(self.conv(centre, out, f"{name}.centre_conv"), activation)
        centre = layers.ZeroPadding2D(cfg.N // 4, dtype=_FLOAT)(centre)  # (B, N, N, out)
        if not cfg.probe_big:
            return centre
        outer = self.layers.Channels(k - C_OUTER, None)(x)
        outer = self.up_block(outer, outer_filters, f"{name}.outer.up")
        outer = self.conv(outer, out, f"{name}.outer.conv", "swish")
        return layers.Add(dtype=_FLOAT)([centre, self.layers.BorderMask(cfg.N)(outer)])


def build_twin(config: ModelConfig) -> keras.Model:
    """The twin with the physics head: ``{diffraction, positions} -> {amplitude, phase,
    pred_amplitude}``, all NHWC float32 except ``positions`` ``(B, C, 2)``; Keras' initial weights
    (load real ones with :func:`parity.tf_twin.weights.load_torch_state`)."""
    b = _Builder(config)
    keras, n, c = b.keras, config.N, config.C
    diffraction = keras.Input((n, n, c), dtype=_FLOAT, name="diffraction")
    positions = keras.Input((c, 2), dtype=_FLOAT, name="positions")
    scale = b.layers.IntensityScale(config, name="intensity_scale")
    z = b.encoder(scale(diffraction))
    amplitude = b.decoder(z, "amplitude_decoder", config.amp_activation)
    phase = b.decoder(z, "phase_decoder", "pi_tanh")
    pred = b.layers.FarField(config, name="far_field")(amplitude, phase, positions)
    pred = scale(pred, inverse=True)
    outputs = {AMPLITUDE: amplitude, PHASE: phase, PRED_AMPLITUDE: pred}
    return keras.Model({"diffraction": diffraction, "positions": positions}, outputs, name="twin")


def object_head(twin: keras.Model) -> keras.Model:
    """``diffraction -> {amplitude, phase}``: the object head, sharing the twin's layers."""
    from parity.tf_twin.layers import load_keras

    keras = load_keras()
    diffraction = twin.get_layer("diffraction").output
    outputs = {k: twin.output[k] for k in (AMPLITUDE, PHASE)}
    return keras.Model({"diffraction": diffraction}, outputs, name="twin_object")


def intermediates(twin: keras.Model, diffraction: Any, positions: Any) -> dict[str, tf.Tensor]:
    """Every named step of the twin's physics forward, for locating a disagreement: the object
    head on NHWC ``diffraction``, the ``far_field`` layer's steps
    (:data:`parity.tf_twin.physics.STEP_NAMES`) at ``(B, C, 2)`` ``positions``, then the
    intensity scale; ``amplitude`` and ``phase`` come back NCHW."""
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
