"""Write a Triton Inference Server model repository from built artifacts.

Layout: ``REPO/NAME/config.pbtxt`` and ``REPO/NAME/1/model.onnx`` (ONNX Runtime backend).
The fixed signature becomes the tensor config verbatim (``max_batch_size: 0``: the batch
dimension is part of the dims, as it is fixed in the artifact). Standard library only.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.manifest import read_manifest

__all__ = ["render_config", "write_triton_repository"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no leading dot: never "." or ".."


def _tensors(kind: str, specs: list[dict[str, Any]]) -> str:
    blocks = []
    for spec in specs:
        if spec["dtype"] != "float32":
            raise ExportError(
                f"{kind} {spec['name']!r} is {spec['dtype']}; the signature must be float32"
            )
        dims = ", ".join(str(d) for d in spec["shape"])
        blocks.append(
            f'  {{\n    name: "{spec["name"]}"\n    data_type: TYPE_FP32\n    dims: [ {dims} ]\n  }}'
        )
    return f"{kind} [\n" + ",\n".join(blocks) + "\n]"


def render_config(name: str, signature: dict[str, Any]) -> str:
    """``config.pbtxt`` text for the ONNX Runtime backend with the fixed float32 signature."""
    return "\n".join(
        [
            f'name: "{name}"',
            'backend: "onnxruntime"',
            "max_batch_size: 0",
            _tensors("input", signature["inputs"]),
            _tensors("output", signature["outputs"]),
            "",
        ]
    )


def write_triton_repository(
    artifacts: Path, repository: Path, name: str = "ptychopinn", force: bool = False
) -> Path:
    """Copy ``model.onnx`` into a Triton model repository with its ``config.pbtxt``.

    The artifacts are verified against their manifest first; an existing model folder of that
    name is replaced only with ``force``. Returns the model folder.
    """
    if not _NAME.match(name):
        raise ExportError(
            f"--name {name!r}: use letters, digits, '_', '-' or '.', not starting with '.'"
        )
    manifest = read_manifest(artifacts)  # every file checked: missing or changed is exit 4
    model_dir = repository / name
    if model_dir.exists() and not force:
        raise ExportError(
            f"{model_dir} already exists; pass --force to overwrite its config.pbtxt and "
            "1/model.onnx, or choose another --name"
        )
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifacts / "model.onnx", version / "model.onnx")
    (model_dir / "config.pbtxt").write_text(render_config(name, manifest.signature))
    return model_dir
