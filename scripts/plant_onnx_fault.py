"""Plant a fault in built artifacts, for a fire drill of the parity tools (README, "When parity fails").

    python scripts/plant_onnx_fault.py ARTIFACTS LAYER [FACTOR]

scales one conv layer's weights in ``ARTIFACTS/model.onnx`` by FACTOR (default 1.01), as an
exporter bug would, and records the changed file in ``manifest.json`` as the build would have
(otherwise every command refuses the folder as tampered with, exit 4). LAYER is a module path
such as ``encoder.1.convs.conv2``. Use it on a copy: the artifacts no longer match the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def scale_onnx_conv(artifacts: Path, layer: str, factor: float = 1.01) -> None:
    """Scale ``model.{layer}.weight`` in ``artifacts/model.onnx`` and re-record its digest."""
    import onnx
    from onnx import numpy_helper

    from export.manifest import file_entry, read_manifest

    path = artifacts / "model.onnx"
    model = onnx.load(str(path))
    name = f"model.{layer}.weight"
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            scaled = numpy_helper.to_array(init) * np.float32(factor)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(scaled, init.name))
            break
    else:
        known = sorted(i.name[6:-7] for i in model.graph.initializer if i.name.endswith(".weight"))
        raise SystemExit(f"error: {path} has no initializer {name}; layers: {', '.join(known)}")
    path.write_bytes(model.SerializeToString())
    manifest = read_manifest(artifacts, verify=False)
    manifest.files["model.onnx"] = file_entry(path)
    manifest.write(artifacts)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    scale_onnx_conv(
        Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]) if len(sys.argv) == 4 else 1.01
    )
    print(f"scaled {sys.argv[2]} in {sys.argv[1]}/model.onnx")
