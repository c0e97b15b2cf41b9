"""The original's values a model is built from: its params (``params.dill`` or ``--config``),
``intensity_scale`` and the probe, from flags, files and fallbacks, each with where it came from.
Flags win over files; every missing value is named at once, with the flag that supplies it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptycho_torch.import_tf.errors import ImportTFError, MissingValueError, UnsafePickleError
from ptycho_torch.import_tf.params import (
    NETWORK_KEYS,
    as_intensity_scale,
    model_config_from_params,
    read_config_file,
)
from ptycho_torch.model import PtychoPINN

__all__ = ["ImportValues", "prepare_model", "read_probe_npz"]

logger = logging.getLogger(__name__)

_PROBE_KEYS_NORMALISED = ("probe",)  # as the model holds it (the fixtures' probe.npz)
_PROBE_KEYS_RAW = ("probeGuess", "probe_guess")  # before the original's normalisation


@dataclass
class ImportValues:
    """The original's params and where intensity_scale and the probe come from."""

    params: dict[str, Any]
    params_problem: str | None = None
    params_refused: bool = False
    sources: dict[str, str] = field(default_factory=dict)


def prepare_model(
    values: ImportValues,
    config: str | Path | None,
    intensity_scale: float | None,
    probe: str | Path | None,
    fallback_scale: tuple[float, str] | None,
) -> tuple[PtychoPINN, np.ndarray, bool]:
    """Merge params, flags and fallbacks; refuse with every missing value named at once."""
    if config is not None:
        overrides = read_config_file(config)
        changed = sorted(
            k for k, v in overrides.items() if k in values.params and _differs(values.params[k], v)
        )
        if changed:
            logger.warning("--config %s overrides params.dill for %s", config, ", ".join(changed))
        values.params.update(overrides)
        values.sources["params"] = str(config)
    scale = _intensity_scale(values, intensity_scale, fallback_scale)
    probe_array, probe_raw = _probe(values, probe)
    missing = [k for k in NETWORK_KEYS if k not in values.params]
    wanted = []
    if missing:
        wanted.append(
            f"{', '.join(missing)} (pass --config config.json: the original's params, e.g. the "
            "config.json saved with the run, or a JSON object of the original's parameter names)"
        )
    if scale is None:
        wanted.append(
            "intensity_scale (pass --intensity-scale X: the original's params['intensity_scale'], "
            "also in the run's config.json; exp(log_scale))"
        )
    if probe_array is None:
        wanted.append(
            "probe (pass --probe FILE.npz holding 'probe', the normalised probe the model holds, "
            "or 'probeGuess', which is normalised like the original does)"
        )
    if wanted:
        message = "missing " + "; ".join(wanted)
        if values.params_refused:
            raise UnsafePickleError(
                f"{values.params_problem}. Pass the values as flags instead: {message}"
            )
        if values.params_problem is not None:
            message = f"{values.params_problem}; {message}"
        raise MissingValueError(message)
    if values.params_problem is not None:
        logger.warning(
            "params.dill not used (%s); values from flags and --config instead",
            values.params_problem,
        )
    assert scale is not None and probe_array is not None
    model_config = model_config_from_params(values.params, scale)
    if values.params.get("probe.trainable"):
        logger.warning(
            "the original had probe.trainable=True, but its probe variable is not saved; the "
            "imported probe is %s", values.sources["probe"],
        )  # fmt: skip
    logger.info("config (from %s): %s", values.sources.get("params", "?"), model_config)
    return PtychoPINN(model_config), probe_array, probe_raw


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(np.any(np.asarray(a) != np.asarray(b)))
    except (TypeError, ValueError):
        return True


def _intensity_scale(
    values: ImportValues, flag: float | None, fallback: tuple[float, str] | None
) -> float | None:
    candidates: list[tuple[Any, str]] = []
    if flag is not None:
        candidates.append((flag, "--intensity-scale"))
    if "intensity_scale" in values.params:
        candidates.append(
            (values.params["intensity_scale"], values.sources.get("params", "params"))
        )
    if fallback is not None:
        candidates.append(fallback)
    if not candidates:
        return None
    scale = as_intensity_scale(*candidates[0])
    values.sources["intensity_scale"] = candidates[0][1]
    for other, where in candidates[1:]:
        if as_intensity_scale(other, where) != scale:
            logger.warning("intensity_scale %r from %s differs from %s's %r",
                           scale, candidates[0][1], where, other)  # fmt: skip
    return scale


def _probe(values: ImportValues, flag: str | Path | None) -> tuple[np.ndarray | None, bool]:
    """``(probe, is_raw_guess)``: --probe wins over params.dill's normalised probe."""
    if flag is not None:
        array, key = read_probe_npz(flag)
        values.sources["probe"] = f"{flag}['{key}']"
        return array, key in _PROBE_KEYS_RAW
    if "probe" in values.params:
        values.sources["probe"] = f"{values.sources.get('params', 'params')}['probe'] (normalised)"
        return np.asarray(values.params["probe"]), False
    return None, False


def read_probe_npz(path: str | Path) -> tuple[np.ndarray, str]:
    """The probe array of an NPZ (no pickles) and the key it was found under."""
    path = Path(path)
    if not path.is_file():
        raise ImportTFError(f"probe file {path} does not exist; pass --probe PATH to an .npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            for key in _PROBE_KEYS_NORMALISED + _PROBE_KEYS_RAW:
                if key in f.files:
                    return np.asarray(f[key]), key
            keys = list(f.files)
    except (OSError, ValueError) as exc:
        raise ImportTFError(
            f"cannot read probe file {path} as NPZ without pickles: {exc}"
        ) from None
    raise ImportTFError(
        f"probe file {path} has none of {list(_PROBE_KEYS_NORMALISED + _PROBE_KEYS_RAW)} "
        f"(found {keys})"
    )
