"""Every artifact loads back, runs on the fixed batch, matches eager and rejects bad feeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from export.artifacts import load_program, load_torchscript
from export.build import BuildResult
from export.errors import SignatureError
from export.host import OnnxHost
from export.wrapper import wrap
from ptycho_torch.checkpoint import load_model

BAD_FEEDS = {
    "float64": lambda x: x.astype(np.float64),
    "float16": lambda x: x.astype(np.float16),
    "int64": lambda x: x.astype(np.int64),
    "wrong-shape": lambda x: np.concatenate([x, x]),
}


def _feed(result: BuildResult) -> dict[str, np.ndarray]:
    with np.load(result.out / "inputs.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _eager(result: BuildResult, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model = load_model(result.manifest.checkpoint.path)
    module = wrap(model, result.signature)
    with torch.inference_mode():
        outs = module(*(torch.from_numpy(feed[n]) for n in result.signature.input_names))
    return {n: t.numpy() for n, t in zip(result.signature.output_names, outs)}


@pytest.mark.parametrize("head", ["object", "physics"])
def test_every_artifact_loads_back_and_matches_eager(
    head: str, built: BuildResult, built_physics: BuildResult
) -> None:
    result = built if head == "object" else built_physics
    feed = _feed(result)
    eager = _eager(result, feed)
    names = result.signature.output_names
    args = [torch.from_numpy(feed[n]) for n in result.signature.input_names]
    scripted = torch.jit.load(str(result.out / "model.ts"))
    program = torch.export.load(result.out / "model.pt2").module()
    session = ort.InferenceSession(
        str(result.out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    runs = {
        "torchscript": [t.detach().numpy() for t in scripted(*args)],
        "pt2": [t.detach().numpy() for t in program(*args)],
        "onnx": session.run(names, feed),
    }
    for backend, outputs in runs.items():
        for name, value in zip(names, outputs, strict=True):
            assert value.dtype == np.float32, (backend, name)
            assert value.shape == eager[name].shape
            scale = max(1.0, float(np.abs(eager[name]).max()))
            assert np.max(np.abs(value - eager[name])) <= 1e-6 * scale, (backend, name)


def test_onnx_carries_signature_and_provenance(built: BuildResult) -> None:
    host = OnnxHost(built.out / "model.onnx")
    assert host.signature == built.signature  # read from the file's metadata_props
    assert host.metadata["ptychopinn.weights_sha256"] == built.manifest.checkpoint.weights_sha256
    assert json.loads(host.metadata["ptychopinn.model_config"])["N"] == 64


@pytest.mark.parametrize("bad", sorted(BAD_FEEDS))
def test_torchscript_rejects_bad_input_with_clear_error(built: BuildResult, bad: str) -> None:
    x = BAD_FEEDS[bad](_feed(built)["diffraction"])
    scripted = torch.jit.load(str(built.out / "model.ts"))
    with pytest.raises(Exception, match=r"input 'diffraction': expected float32\[2, 1, 64, 64\]"):
        scripted(torch.from_numpy(x))
    with pytest.raises(SignatureError, match="expected float32"):
        load_torchscript(built.out / "model.ts")({"diffraction": x})


@pytest.mark.parametrize("bad", sorted(BAD_FEEDS))
def test_exported_program_rejects_bad_input_with_clear_error(built: BuildResult, bad: str) -> None:
    x = BAD_FEEDS[bad](_feed(built)["diffraction"])
    with pytest.raises(SignatureError, match=r"'diffraction': expected float32\[2, 1, 64, 64\]"):
        load_program(built.out / "model.pt2")({"diffraction": x})


@pytest.mark.parametrize("bad", sorted(BAD_FEEDS))
def test_onnx_rejects_bad_input_with_clear_error(built: BuildResult, bad: str) -> None:
    x = BAD_FEEDS[bad](_feed(built)["diffraction"])
    host = OnnxHost(built.out / "model.onnx")
    with pytest.raises(SignatureError, match=r"'diffraction': expected float32\[2, 1, 64, 64\]"):
        host.run({"diffraction": x})
    session = ort.InferenceSession(
        str(built.out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    with pytest.raises(Exception, match="(?i)(type|dimension|shape)"):
        session.run(None, {"diffraction": x})


def test_feed_check_reports_missing_and_extra_inputs(built_physics: BuildResult) -> None:
    feed = _feed(built_physics)
    with pytest.raises(
        SignatureError,
        match=r"missing input\(s\) \['positions'\].*unexpected input\(s\) \['extra'\]",
    ):
        built_physics.signature.check_feed(
            {"diffraction": feed["diffraction"], "extra": feed["positions"]}
        )


def test_manifest_lists_sha256_of_every_file(built: BuildResult) -> None:
    from export.manifest import sha256_file

    manifest = json.loads((built.out / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "model.ts",
        "model.onnx",
        "model.pt2",
        "inputs.npz",
        "weights.pt",
    }
    for name, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(built.out / name)
        assert entry["size"] == (built.out / name).stat().st_size
    import importlib.metadata

    # the installed distribution's version (a local build may carry a "+cpu" suffix)
    assert manifest["versions"]["torch"] == importlib.metadata.version("torch")
    assert manifest["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    # `built` was given --checkpoint ../model.pt: the record holds it resolved
    assert Path(manifest["checkpoint"]["path"]).is_absolute()
    assert manifest["checkpoint"]["path"] == str(built.out.parent / "model.pt")
    assert manifest["signature"] == built.signature.to_dict()


# slow: test_every_artifact_loads_back_and_matches_eager[physics] compares the same artifacts with
# eager at the same bound in the default run; this one goes through the product's loaders
@pytest.mark.slow
def test_physics_head_with_overlap_constraint_exports_faithfully(
    built_physics: BuildResult,
) -> None:
    """gridsize 2: the overlap constraint (shift-matrix matmuls) and DFT survive every exporter."""
    result = built_physics
    assert result.signature.inputs[1].shape == (2, 4, 2)
    fed = _feed(result)
    eager = _eager(result, fed)
    outputs = {
        "onnx": OnnxHost(result.out / "model.onnx").run(fed),
        "torchscript": load_torchscript(result.out / "model.ts")(fed),
        "pt2": load_program(result.out / "model.pt2")(fed),
    }
    for backend, out in outputs.items():
        for name, value in out.items():
            scale = max(1.0, float(np.abs(eager[name]).max()))
            assert np.max(np.abs(value - eager[name])) <= 1e-6 * scale, (backend, name)


def test_manifest_round_trips_through_its_type(built: BuildResult) -> None:
    from export.manifest import Manifest, read_manifest

    raw = json.loads((built.out / "manifest.json").read_text())
    manifest = read_manifest(built.out)
    assert manifest == built.manifest
    assert manifest.to_dict() == raw
    raw["a_future_field"] = {"kept": True}
    assert Manifest.from_dict(raw).to_dict() == raw  # unknown fields survive a rewrite


def test_weights_copy_in_the_folder_is_the_built_model(built: BuildResult) -> None:
    from ptycho_torch.checkpoint import load_model, model_state_sha256

    path = built.manifest.weights_path(built.out)
    assert path == built.out / "weights.pt"
    assert model_state_sha256(load_model(path)) == built.manifest.checkpoint.weights_sha256
