"""Write a Triton Inference Server model repository from built artifacts.

Layout: ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/1/model.onnx`` (ONNX Runtime backend). The
config is :meth:`export.triton_model.TritonModel.config_pbtxt` of the artifacts' signature, the
description ``python -m export serve`` binds too: the fixed batch is part of the dims
(``max_batch_size: 0``). Standard library only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from export.errors import ExportError
from export.manifest import read_manifest
from export.signature import Signature
from export.triton_model import DEFAULT_MODEL_NAME, TritonModel, check_model_name

__all__ = ["write_triton_repository"]


def write_triton_repository(
    artifacts: Path, repository: Path, name: str = DEFAULT_MODEL_NAME, force: bool = False
) -> Path:
    """Copy ``model.onnx`` into a Triton model repository with its ``config.pbtxt``.

    The artifacts are verified against their manifest first; an existing model folder of that
    name is replaced only with ``force``. Returns the model folder.
    """
    check_model_name(name)
    manifest = read_manifest(artifacts)  # every file checked: missing or changed is exit 4
    model = TritonModel.from_signature(name, Signature.from_dict(manifest.signature))
    model_dir = repository / name
    if model_dir.exists() and not force:
        raise ExportError(
            f"{model_dir} already exists; pass --force to overwrite its config.pbtxt and "
            "1/model.onnx, or choose another --name"
        )
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifacts / "model.onnx", version / "model.onnx")
    (model_dir / "config.pbtxt").write_text(model.config_pbtxt())
    return model_dir
