"""TensorFlow/Keras twin of PtychoPINN: the reference implementation the parity suite compares to.

TensorFlow is imported only inside this subpackage's modules (never by ``import parity``); the
submodules import it at call time (:mod:`parity.tf_twin.layers` when a twin is built), so
``import parity.tf_twin`` works without TensorFlow too.

- :mod:`parity.tf_twin.model`: the network in Keras idioms (NHWC), built from a ModelConfig;
- :mod:`parity.tf_twin.layers`: its own Keras layers (intensity scale, phase activation, border
  mask, the physics forward as the ``far_field`` layer);
- :mod:`parity.tf_twin.physics`: the original's physics forward (illumination, far field) in
  TensorFlow, every step named; :mod:`parity.tf_twin.canvas`: its reassembly on the padded canvas
  and extraction;
- :mod:`parity.tf_twin.weights`: PyTorch state dict <-> twin weights, Keras weights -> model file;
- :mod:`parity.tf_twin.generate`: the live twin (:func:`twin_predict`)
  and the reference writer.
"""

from __future__ import annotations

__all__ = ["TwinError", "WeightTransferError"]

from parity.tf_twin.errors import TwinError, WeightTransferError
