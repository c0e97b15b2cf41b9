"""Where the artifacts' TensorFlow reference comes from: a given file (``--reference PATH``),
the demo's bundled one when weights and inputs are the demo's, the twin (``make_reference``), or
none (``--reference none``, or no TensorFlow): parity then runs pairwise only.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from export.errors import ExportError
from export.options import DEMO_DIR, BuildOptions
from export.signature import Head

__all__ = ["REFERENCE_FILES", "ReferenceMaker", "place_reference"]

log = logging.getLogger(__name__)

REFERENCE_FILES = ("reference.npz", "reference.json")

ReferenceMaker = Callable[[Path, Path, Path, Head], None]
"""(checkpoint, inputs.npz, out reference.npz, head) -> None; writes reference.npz + .json."""


def place_reference(
    options: BuildOptions,
    weights_sha: str,
    inputs_sha: str,
    tmp: Path,
    make_reference: ReferenceMaker | None,
) -> tuple[str, ...]:
    """Put reference.npz/.json into the build folder; return the names written."""
    choice = options.reference
    if choice == "none":
        log.info("reference: none requested (--reference none); parity runs pairwise only")
        return ()
    if choice != "auto":
        source = Path(choice)
        _copy_reference(source, tmp)
        return REFERENCE_FILES
    bundled = DEMO_DIR / f"reference-{options.head}.npz"
    if bundled.is_file():
        prov = json.loads(bundled.with_suffix(".json").read_text())
        if prov.get("weights_sha256") == weights_sha and prov.get("inputs_sha256") == inputs_sha:
            _copy_reference(bundled, tmp)
            log.info(
                "reference: bundled TensorFlow reference for the demo model (%s)", bundled.name
            )
            return REFERENCE_FILES
    if make_reference is None:
        log.warning(
            "reference: no TensorFlow reference for these weights/inputs and TensorFlow is not "
            "installed; install the 'tf' extra or pass --reference PATH"
        )
        return ()
    log.info("reference: generating with the TensorFlow twin")
    make_reference(options.checkpoint, tmp / "inputs.npz", tmp / "reference.npz", options.head)
    return REFERENCE_FILES


def _copy_reference(source: Path, tmp: Path) -> None:
    side = source.with_suffix(".json")
    if not source.is_file() or not side.is_file():
        raise ExportError(f"reference {source} (with {side.name} beside it) does not exist")
    shutil.copyfile(source, tmp / "reference.npz")
    shutil.copyfile(side, tmp / "reference.json")
