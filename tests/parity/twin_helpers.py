"""Helpers of the twin's tests (they import TensorFlow when called): the twin's convolution
parameter count and every named step of its physics forward."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ptycho_torch.config import ModelConfig


def twin_conv_parameter_count(twin: Any) -> int:
    """Number of Conv2D kernel and bias values (the intensity scale and probe excluded)."""
    import keras

    return sum(
        int(math.prod(v.shape))
        for layer in twin.layers
        if isinstance(layer, keras.layers.Conv2D)
        for v in layer.weights
    )


def twin_intermediates(
    model_config: ModelConfig, state_dict: Mapping[str, Any], feed: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every named step of the twin's physics forward for a physics-head feed, as numpy arrays
    (:func:`parity.tf_twin.model.intermediates`): ``amplitude``, ``phase``, the steps of
    :data:`parity.tf_twin.physics.STEP_NAMES` and ``pred_amplitude``; patch-major
    ``(B, C, N, N)`` (canvases ``(B, 1, M, M)``), complex steps as complex64.

    ``feed``: ``diffraction`` ``(B, C, N, N)`` and ``positions`` ``(B, C, 2)``, float32.
    """
    import tensorflow as tf

    from export.signature import make_signature
    from parity.tf_twin.generate import DEVICE, apply_tf_precision_policy, make_twin
    from parity.tf_twin.model import intermediates

    batch = int(np.shape(feed["diffraction"])[0]) if "diffraction" in feed else 1
    make_signature(model_config, batch, "physics").check_feed(feed)
    apply_tf_precision_policy()
    with tf.device(DEVICE):
        twin = make_twin(model_config, state_dict, "physics")
        diffraction = np.transpose(feed["diffraction"], (0, 2, 3, 1))  # NCHW -> NHWC
        steps = intermediates(twin, diffraction, feed["positions"])
    return {name: np.asarray(value) for name, value in steps.items()}
