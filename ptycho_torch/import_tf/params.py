"""The original's parameters (``params.cfg`` names) -> :class:`ModelConfig`.

Sources, later ones winning key by key: ``params.dill`` of the archive (read as plain data),
``--config`` (the fixtures' ``config.json`` with ``params_cfg`` / ``network_and_physics``,
a flat JSON dict of the original's names, or a ``params.dill`` taken out of the archive), then ``--intensity-scale``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.config import AMP_ACTIVATIONS, SUPPORTED_N, ModelConfig
from ptycho_torch.import_tf.errors import ImportTFError, UnsupportedModelError
from ptycho_torch.import_tf.originals import ARCHIVE, WEIGHTS_H5, identify, import_command
from ptycho_torch.import_tf.unpickle import loads_plain_data

__all__ = [
    "NETWORK_KEYS",
    "PHYSICS_KEYS",
    "as_intensity_scale",
    "model_config_from_params",
    "read_config_file",
]

logger = logging.getLogger(__name__)

#: Original names that decide which convs exist and how the object head computes: required.
NETWORK_KEYS = (
    "N", "gridsize", "n_filters_scale", "amp_activation", "object.big", "probe.big", "pad_object",
)  # fmt: skip
#: Original names used only by the physics forward; ModelConfig's defaults (the original's
#: values in the fixtures) stand in for absent ones, with a warning.
PHYSICS_KEYS = (
    "probe_scale",
    "offset",
    "max_position_jitter",
    "probe.mask",
    "gaussian_smoothing_sigma",
)
# dataclass-style spellings (the original's ModelConfig) accepted in a flat --config dict
_ALIASES = {"object_big": "object.big", "probe_big": "probe.big", "probe_mask": "probe.mask"}
# what this port implements; a present key with another value is refused
_REQUIRED_VALUES = {
    "architecture": "cnn",
    "model_type": "pinn",
    "generator_output_mode": "real_imag",
}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The original's parameters, under their original names, from a JSON file or from a
    ``params.dill`` taken out of ``wts.h5.zip`` (read as plain data: nothing of it runs)."""
    path = Path(path)
    if not path.is_file():
        raise ImportTFError(
            f"config {path} does not exist; pass --config PATH to a JSON file or params.dill"
        )
    found = identify(path)
    if found is not None and found.kind in (ARCHIVE, WEIGHTS_H5):
        raise ImportTFError(
            f"--config {path} is {found.describe()}, not its parameters; import it with "
            f"`{import_command(found)}`"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportTFError(f"cannot read config {path}: {exc}") from None
    doc: Any
    if data.startswith(b"\x80"):  # a pickle (protocol 2+): the original's params.dill
        doc = loads_plain_data(data, str(path))
    else:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise ImportTFError(
                f"config {path} is neither JSON nor the original's params.dill: {exc}"
            ) from None
    if not isinstance(doc, dict):
        raise ImportTFError(f"config {path} holds a {type(doc).__name__}, expected a JSON object")
    params: dict[str, Any] = {}
    if "params_cfg" in doc or "network_and_physics" in doc:  # the fixtures' config.json
        params.update(doc.get("network_and_physics") or {})
        params.update(doc.get("params_cfg") or {})
    else:
        params.update(doc)
    for alias, name in _ALIASES.items():
        if alias in params and name not in params:
            params[name] = params.pop(alias)
    return params


def model_config_from_params(params: dict[str, Any], intensity_scale: float) -> ModelConfig:
    """Build the port's config from the original's parameters (all present; see importer).

    ``intensity_scale_trainable`` is always False: the original keeps ``log_scale`` in a plain
    ``tf.Variable`` that Keras 3 does not track, so it never trained, whatever
    ``intensity_scale.trainable`` says (the fixtures confirm log_scale == ln(intensity_scale)).
    """
    for key, value in _REQUIRED_VALUES.items():
        if key in params and params[key] != value:
            raise UnsupportedModelError(
                f"the original was trained with {key}={params[key]!r}; only {key}={value!r} "
                "is implemented by ptycho_torch"
            )
    n = _as_int(params, "N")
    if n not in SUPPORTED_N:
        raise UnsupportedModelError(
            f"the original's N={n} is not supported; expected one of {SUPPORTED_N}"
        )
    amp = params["amp_activation"]
    if amp not in AMP_ACTIVATIONS:
        raise UnsupportedModelError(
            f"the original's amp_activation={amp!r} is not supported; expected one of {AMP_ACTIVATIONS}"
        )
    defaults = ModelConfig()
    absent = [k for k in PHYSICS_KEYS if k not in params]
    if absent:
        logger.warning(
            "not in the original's params: %s; using the defaults of ModelConfig (physics only)",
            ", ".join(absent),
        )
    try:
        return ModelConfig(
            N=n,
            gridsize=_as_int(params, "gridsize"),
            n_filters_scale=_as_int(params, "n_filters_scale"),
            amp_activation=str(amp),
            object_big=_as_bool(params, "object.big"),
            probe_big=_as_bool(params, "probe.big"),
            pad_object=_as_bool(params, "pad_object"),
            intensity_scale=float(intensity_scale),
            intensity_scale_trainable=False,
            probe_scale=_as_float(params, "probe_scale", defaults.probe_scale),
            offset=_as_int(params, "offset", defaults.offset),
            max_position_jitter=_as_int(
                params, "max_position_jitter", defaults.max_position_jitter
            ),
            probe_mask=_as_bool(params, "probe.mask", defaults.probe_mask),
            gaussian_smoothing_sigma=_as_float(
                params, "gaussian_smoothing_sigma", defaults.gaussian_smoothing_sigma
            ),
        )
    except ValueError as exc:
        raise UnsupportedModelError(
            f"the original's parameters do not make a valid ModelConfig: {exc}"
        ) from None


def _as_int(params: dict[str, Any], key: str, default: int | None = None) -> int:
    value = params.get(key, default)
    if isinstance(value, (bool, np.bool_)):
        raise ImportTFError(f"the original's {key} is {value!r}, expected an integer")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ImportTFError(f"the original's {key} is {value!r}, expected an integer")


def _as_bool(params: dict[str, Any], key: str, default: bool | None = None) -> bool:
    value = params.get(key, default)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    raise ImportTFError(f"the original's {key} is {value!r}, expected true or false")


def _as_float(params: dict[str, Any], key: str, default: float | None = None) -> float:
    value = params.get(key, default)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ImportTFError(f"the original's {key} is {value!r}, expected a number")
    if not math.isfinite(float(value)):
        raise ImportTFError(f"the original's {key} is {value!r}, expected a finite number")
    return float(value)


def as_intensity_scale(value: Any, where: str) -> float:
    """A positive, finite float32-representable intensity scale."""
    try:
        scale = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ImportTFError(
            f"intensity_scale from {where} is {value!r}, expected a number"
        ) from None
    if not math.isfinite(scale) or scale <= 0:
        raise ImportTFError(
            f"intensity_scale from {where} is {scale!r}, expected a finite value > 0"
        )
    return scale
