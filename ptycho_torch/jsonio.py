"""Reading a JSON file that a user handed over or a tool wrote (one error, the caller's class),
and writing a report as JSON (whole or not at all).

Torch-free (the inference host reads its manifest with it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptycho_torch.atomic import atomic_write
from ptycho_torch.errors import ToolError, writing

__all__ = ["read_json", "read_json_object", "write_json"]


def read_json(path: Path, error: type[ToolError], advice: str = "") -> Any:
    """The JSON value in ``path``.

    Raises:
        error: the file cannot be read, is not UTF-8 or is not JSON; the message names the file,
            the parser's reason and ``advice`` (what to do), e.g. ``"rebuild the artifacts"``.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise error(
            f"cannot read {path} as JSON: {exc}" + (f"; {advice}" if advice else "")
        ) from None


def read_json_object(path: Path, error: type[ToolError], advice: str = "") -> dict[str, Any]:
    """:func:`read_json`, and the value must be an object (``{...}``)."""
    value = read_json(path, error, advice)
    if not isinstance(value, dict):
        raise error(
            f"{path} must hold a JSON object, found {type(value).__name__}"
            + (f"; {advice}" if advice else "")
        )
    return value


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented JSON in ``path``, whole or not at all: an earlier file stays if the
    write fails, and a refused write is one :class:`~ptycho_torch.errors.WriteError` naming
    ``path`` (exit 2)."""
    text = (json.dumps(value, indent=2) + "\n").encode()
    with writing(path):
        atomic_write(Path(path), lambda f: f.write(text))
