"""What Ptychodus's model dialogs deal in, without ONNX Runtime: the file filter, the paths an
artifacts folder may be given by, and saving the loaded model as one archive."""

from __future__ import annotations

import shutil
from pathlib import Path

from export.archive import pack_artifacts

__all__ = [
    "MODEL_FILE_EXTENSION",
    "MODEL_FILE_FILTER",
    "PROGRESS_GOAL",
    "TRAINING_DATA_FILE_FILTER",
    "TRAINING_HINT",
    "artifacts_path",
    "save_model_file",
]

MODEL_FILE_FILTER = "PtychoPINN ONNX artifacts (manifest.json *.tar.gz)"
MODEL_FILE_EXTENSION = ".tar.gz"  # what save_model writes: python -m export pack's archive
TRAINING_DATA_FILE_FILTER = "NumPy Zipped Archive (*.npz)"
PROGRESS_GOAL = 100  # percent: the scan's length is not known before reconstruct()
TRAINING_HINT = (
    "train with `python -m export train --data TRAINING.npz` (the file Ptychodus's "
    "'Export training data' writes), export with `python -m export build`, then load the artifacts"
)


def artifacts_path(file_path: str | Path) -> Path:
    """What Ptychodus's model file dialog returned, as ``--artifacts`` takes it: a folder or an
    archive as it is, a ``manifest.json`` as its folder."""
    path = Path(file_path)
    return path.parent if path.name == "manifest.json" else path


def save_model_file(source: Path, file_path: Path) -> None:
    """The loaded artifacts as one archive (``python -m export pack``'s format): an archive is
    copied, a folder packed (its files checked against the manifest first)."""
    if source.is_file():
        shutil.copyfile(source, file_path)
    else:
        pack_artifacts(source, file_path, force=True)
