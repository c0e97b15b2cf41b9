"""ONNX files from untrusted hands: truncated, not ONNX, data outside the folder, a format the
installed onnxruntime cannot run. Each is one clear error (exit 2), never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.build import BuildResult
from export.host import HostError, OnnxHost


def _external_outside(folder: Path) -> Path:
    (folder.parent / "secret.bin").write_bytes(np.full(4, 7, np.float32).tobytes())
    w = numpy_helper.from_array(np.ones(4, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in {"location": "../secret.bin", "offset": "0", "length": "16"}.items():
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _future_ir(folder: Path, built: BuildResult) -> Path:
    model = onnx.load(str(built.out / "model.onnx"))
    model.ir_version = 99
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("case", ["truncated", "not-onnx", "external-outside", "future-ir"])
def test_hostile_onnx_is_one_clear_error(built: BuildResult, tmp_path: Path, case: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    path = folder / "model.onnx"
    if case == "truncated":
        raw = (built.out / "model.onnx").read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif case == "not-onnx":
        shutil.copy(built.out / "inputs.npz", path)
    elif case == "external-outside":
        _external_outside(folder)
    else:
        _future_ir(folder, built)
    with pytest.raises(HostError) as info:
        OnnxHost(path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert f"cannot load {path}" in message and "rebuild with `python -m export build`" in message
    assert "onnxruntime_src" not in message
    if case == "external-outside":
        assert "escapes model directory" in message
    if case == "future-ir":
        assert "IR version" in message
