"""TensorFlow/Keras twin of PtychoPINN: the reference implementation the parity suite compares to.

TensorFlow is imported only when a twin is built or run, never by ``import parity.tf_twin``:
:mod:`~parity.tf_twin.model` (the network, NHWC), :mod:`~parity.tf_twin.layers` (its own layers),
:mod:`~parity.tf_twin.physics` and :mod:`~parity.tf_twin.canvas` (the original's physics forward),
:mod:`~parity.tf_twin.weights` (weight transfer) and :mod:`~parity.tf_twin.generate` (the live
twin and the reference writer).
"""

from __future__ import annotations

__all__ = ["TwinError", "WeightTransferError"]

from parity.tf_twin.errors import TwinError, WeightTransferError
