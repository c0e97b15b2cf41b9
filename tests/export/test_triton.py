from __future__ import annotations

from pathlib import Path

import pytest

from export.build import BuildResult
from export.errors import ArtifactsChangedError, ExportError
from export.manifest import sha256_file
from export.triton import write_triton_repository


def test_triton_repository_holds_the_onnx_model_and_the_fixed_signature(
    built: BuildResult, tmp_path: Path
) -> None:
    model_dir = write_triton_repository(built.out, tmp_path / "repo", "pinn")
    assert sha256_file(model_dir / "1" / "model.onnx") == built.manifest.files["model.onnx"].sha256
    config = (model_dir / "config.pbtxt").read_text()
    assert (
        'name: "pinn"' in config
        and 'backend: "onnxruntime"' in config
        and "max_batch_size: 0" in config
    )
    assert config.count("TYPE_FP32") == 3
    assert 'name: "diffraction"\n    data_type: TYPE_FP32\n    dims: [ 2, 1, 64, 64 ]' in config


def test_triton_refuses_artifacts_changed_since_the_build(
    built: BuildResult, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "a"
    shutil.copytree(built.out, copy)
    (copy / "model.onnx").write_bytes(b"not the model")
    with pytest.raises(ArtifactsChangedError, match=r"changed since the build.*model.onnx"):
        write_triton_repository(copy, tmp_path / "repo")


def test_existing_model_folder_is_not_overwritten_without_force(
    built: BuildResult, tmp_path: Path
) -> None:
    first = write_triton_repository(built.out, tmp_path / "repo")
    (first / "config.pbtxt").write_text("hand-tuned")
    with pytest.raises(ExportError, match="already exists; pass --force"):
        write_triton_repository(built.out, tmp_path / "repo")
    assert (first / "config.pbtxt").read_text() == "hand-tuned"
    write_triton_repository(built.out, tmp_path / "repo", force=True)
    assert "hand-tuned" not in (first / "config.pbtxt").read_text()
