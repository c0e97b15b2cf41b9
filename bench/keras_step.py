"""The same training step in Keras: the stand-in for the original TensorFlow PtychoPINN's.

The TensorFlow twin (:func:`parity.tf_twin.model.build_twin`: the same network and physics in
Keras idioms, NHWC) holding the same initial weights as the PyTorch model, the original's Poisson
NLL on the predicted amplitude, and Keras' Adam; forward, ``tf.GradientTape`` gradient and
``apply_gradients`` in one ``tf.function``, as ``model.fit`` runs a step (no XLA, as the
original's ``model.compile`` leaves it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ptycho_torch.config import ModelConfig

__all__ = ["keras_train_step", "set_tensorflow_threads"]

logger = logging.getLogger(__name__)


def set_tensorflow_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op pools at ``threads`` each (TensorFlow's own default on a
    machine with that many cores). Only before TensorFlow's first operation; later, a warning."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # TensorFlow has already started its pools
        logger.warning("TensorFlow threads not set (%s); it keeps its pools", exc)


def keras_train_step(
    config: ModelConfig,
    state_dict: Mapping[str, Any],
    diffraction: np.ndarray,
    positions: np.ndarray,
    learning_rate: float,
) -> Callable[[], float]:
    """One Keras training step on a fixed batch, as a call that returns the step's loss.

    Args:
        config: the model configuration (the twin is built from it).
        state_dict: the PyTorch model's initial weights (loaded into the twin).
        diffraction: ``(B, C, N, N)`` float32 network input and target (PyTorch layout).
        positions: ``(B, C, 2)`` float32 offsets.
        learning_rate: Adam's rate.
    """
    import tensorflow as tf

    from parity.tf_twin.layers import load_keras
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import load_torch_state

    keras = load_keras()
    twin = build_twin(config)
    load_torch_state(twin, state_dict)
    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    x = tf.constant(np.ascontiguousarray(np.transpose(diffraction, (0, 2, 3, 1))))  # NHWC
    offsets = tf.constant(positions)
    weights = twin.trainable_variables

    @tf.function(jit_compile=False)
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            pred = twin({"diffraction": x, "positions": offsets}, training=True)["pred_amplitude"]
            pred_i, target_i = tf.square(pred), tf.square(x)
            loss = tf.reduce_mean(pred_i - target_i * tf.math.log(pred_i))  # Poisson NLL
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    return lambda: float(step().numpy())
