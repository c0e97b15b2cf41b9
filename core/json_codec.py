"""Strict JSON for comparison records: non-finite floats and free-form trees survive a round trip.

Non-finite floats are not valid JSON, so metric fields store them as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"`` (:func:`encode_float`), and free-form dicts (environment,
details) store them as ``{"$float": "NaN"}`` (:func:`encode_tree`); both decode back to the same
float. Tuples in free-form dicts come back as lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "FLOAT_NAMES",
    "decode_float",
    "decode_tree",
    "encode_float",
    "encode_tree",
]

FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode_float(value: float) -> float | str:
    """``value``, or its name in :data:`FLOAT_NAMES` when it is not finite."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_float(value: Any) -> Any:
    """Inverse of :func:`encode_float` (anything else comes back unchanged)."""
    return FLOAT_NAMES.get(value, value) if isinstance(value, str) else value


def encode_tree(value: Any) -> Any:
    """A JSON-ready copy of a free-form tree: numpy scalars as Python ones, paths as strings,
    non-finite floats as ``{"$float": name}``."""
    if isinstance(value, Mapping):
        return {str(k): encode_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_tree(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy scalar -> Python scalar
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": encode_float(value)}
    if isinstance(value, Path):
        return str(value)
    return value


def decode_tree(value: Any) -> Any:
    """Inverse of :func:`encode_tree` (tuples come back as lists)."""
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return FLOAT_NAMES[value["$float"]]
        return {k: decode_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_tree(v) for v in value]
    return value
