"""Run the twin: the live TF runner (:func:`make_twin` and :func:`run_twin`, or both at once with
:func:`twin_predict`) and the reference writer. TF32 is off, ops deterministic and pinned to the
CPU; ``TF_ENABLE_ONEDNN_OPTS`` is read when TensorFlow loads, so it is only recorded here.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.signature import HEADS, Head, Signature
from parity.reference import Reference, save_reference
from parity.tf_twin.errors import TwinError
from ptycho_torch.config import ModelConfig
from ptycho_torch.errors import DataError
from ptycho_torch.npz import read_npz

__all__ = [
    "GENERATOR",
    "ReferenceOptions",
    "apply_tf_precision_policy",
    "call_twin",
    "generate_reference",
    "make_twin",
    "run_twin",
    "twin_predict",
]

log = logging.getLogger(__name__)

GENERATOR = "tensorflow-twin"
DEVICE = "/CPU:0"
_cache: dict[str, Any] = {}  # one built twin, keyed by config and weights digest


def apply_tf_precision_policy() -> dict[str, Any]:
    """TF32 off and deterministic ops on in TensorFlow; returns the settings for provenance."""
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)
    tf.config.experimental.enable_op_determinism()
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")  # as TensorFlow read it when it loaded
    onednn = "unset (TensorFlow default: on)" if value is None else f"TF_ENABLE_ONEDNN_OPTS={value}"
    return {
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "determinism": True,
        "onednn": onednn,
    }


def make_twin(config: ModelConfig, state_dict: Mapping[str, Any], head: str) -> Any:
    """A twin (``head`` view) holding these weights, built on the CPU with the precision policy
    applied (``WeightTransferError`` if they do not fit the config); run it with :func:`run_twin`."""
    import tensorflow as tf

    from parity.tf_twin.model import build_twin, object_head
    from parity.tf_twin.weights import load_torch_state

    apply_tf_precision_policy()
    with tf.device(DEVICE):
        twin = build_twin(config)
        load_torch_state(twin, state_dict)
        return twin if head == "physics" else object_head(twin)


def _twin(config: ModelConfig, state_dict: Mapping[str, Any], head: str) -> Any:
    from parity.tf_twin.model import object_head
    from ptycho_torch.digest import arrays_sha256

    key = f"{sorted(config.to_dict().items())}:{arrays_sha256(state_dict)}"
    if _cache.get("key") != key:
        import tensorflow as tf

        twin = make_twin(config, state_dict, "physics")
        with tf.device(DEVICE):
            view = object_head(twin)
        _cache.clear()
        _cache.update(key=key, physics=twin, object=view)
    return _cache[head]


def twin_predict(
    model_config: ModelConfig,
    state_dict: Mapping[str, Any],
    feed: Mapping[str, np.ndarray],
    head: Head = "object",
) -> dict[str, np.ndarray]:
    """The twin's outputs (signature order, float32 NCHW) for a PyTorch ``PtychoPINN`` state dict
    of ``model_config`` and a feed in the signature layout; a twin is rebuilt only when the config
    or the weights change.

    Raises:
        SignatureError: the feed does not match the signature.
        WeightTransferError: the weights do not fit the config.
        TwinError: an output is not float32.
    """
    from export.signature import make_signature

    batch = int(np.shape(feed["diffraction"])[0]) if "diffraction" in feed else 1
    signature = make_signature(model_config, batch, head)
    signature.check_feed(feed)
    return run_twin(_twin(model_config, state_dict, head), signature, feed)


def call_twin(model: Any, head: str, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``model`` (a twin, or a probe over its layers) on an NCHW feed, on the CPU with the
    precision policy applied; every output as it came out, NHWC turned into NCHW."""
    import tensorflow as tf

    apply_tf_precision_policy()
    with tf.device(DEVICE):
        inputs = {"diffraction": tf.constant(np.transpose(feed["diffraction"], (0, 2, 3, 1)))}
        if head == "physics":
            inputs["positions"] = tf.constant(feed["positions"])
        result = model(inputs, training=False)
    return {
        k: np.ascontiguousarray(np.transpose(v.numpy(), (0, 3, 1, 2))) for k, v in result.items()
    }


def run_twin(
    twin: Any, signature: Signature, feed: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Outputs of a twin from :func:`make_twin` for a feed already checked against ``signature``
    (NCHW float32 in, NCHW float32 out; ``TwinError`` for an output of another dtype)."""
    result = call_twin(twin, signature.head, feed)
    outputs = {name: result[name] for name in signature.output_names}
    for name, value in outputs.items():
        if value.dtype != np.float32:
            raise TwinError(
                f"twin output {name!r} came out {value.dtype}, expected float32; a Keras "
                "dtype policy other than float32 is active (keras.config.set_dtype_policy)"
            )
    signature.check_outputs(outputs)
    return outputs


def _read_feed(inputs_npz: Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(inputs_npz, "inputs")
    except DataError as exc:
        raise TwinError(f"{exc}; pass the feed NPZ (e.g. ARTIFACTS/inputs.npz)") from None


@dataclass(frozen=True)
class ReferenceOptions:
    """What ``reference`` writes: the twin's outputs for a checkpoint's weights on a feed."""

    checkpoint: Path = field(metadata={"help": "Lightning .ckpt or model file"})
    inputs: Path = field(metadata={"help": "feed NPZ (e.g. ARTIFACTS/inputs.npz)"})
    out: Path = field(
        metadata={"help": "reference.npz to write (provenance goes beside it as .json)"}
    )
    head: Head = field(default="object", metadata={"help": "head to run", "choices": HEADS})


_HEAD_INPUTS = ("diffraction", "positions")  # inputs some head reads; other keys stay errors


def generate_reference(
    checkpoint: str | Path,
    inputs_npz: str | Path,
    out_npz: str | Path,
    head: Head = "object",
) -> Reference:
    """Run the twin with a checkpoint's weights on a feed NPZ (the signature's inputs, NCHW
    float32) and write ``out_npz`` with its ``.json`` provenance beside it."""
    import keras
    import tensorflow as tf

    from export.signature import make_signature
    from ptycho_torch.checkpoint import load_model, model_state_sha256
    from ptycho_torch.digest import arrays_sha256

    policy = apply_tf_precision_policy()
    model = load_model(checkpoint)
    feed = _read_feed(Path(inputs_npz))
    batch = int(np.shape(feed["diffraction"])[0]) if "diffraction" in feed else 1
    signature = make_signature(model.config, batch, head)
    # a feed NPZ may serve both heads (diffraction + positions): keep this head's inputs
    feed = {k: v for k, v in feed.items() if k in signature.input_names or k not in _HEAD_INPUTS}
    signature.check_feed(feed)
    outputs = run_twin(_twin(model.config, model.state_dict(), head), signature, feed)
    provenance = {
        "generator": GENERATOR,
        "head": head,
        "signature": signature.to_dict(),
        "weights_sha256": model_state_sha256(model),
        "inputs_sha256": arrays_sha256(feed),
        "model_config": model.config.to_dict(),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "device": f"tensorflow {DEVICE}",
        **policy,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    reference = save_reference(out_npz, outputs, provenance)
    log.info("wrote TensorFlow twin reference %s (%s head, batch %d)", out_npz, head, batch)
    return reference
