"""ONNX Runtime session settings in the manifest: optional, validated, applied by the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.errors import ManifestError
from export.host import OnnxHost
from export.manifest import Manifest, read_manifest
from export.session import SessionSettings, save_session_settings


def _raw(artifacts: Path) -> dict[str, object]:
    return json.loads((artifacts / "manifest.json").read_text())


def test_manifest_without_session_settings_reads_as_before(artifacts: Path) -> None:
    raw = _raw(artifacts)
    raw.pop("onnxruntime_session", None)  # a manifest written before the field existed
    manifest = Manifest.from_dict(raw)
    assert manifest.onnxruntime_session is None
    assert SessionSettings.from_manifest(manifest) is None
    assert "onnxruntime_session" not in manifest.extra


def test_manifest_with_session_settings_round_trips(artifacts: Path) -> None:
    raw = _raw(artifacts)
    raw["onnxruntime_session"] = {"intra_op_threads": 1, "graph_optimization": "basic", "new": 1}
    manifest = Manifest.from_dict(raw)
    settings = SessionSettings.from_manifest(manifest)
    assert settings == SessionSettings(intra_op_threads=1, graph_optimization="basic")
    assert Manifest.from_dict(manifest.to_dict()).onnxruntime_session == raw["onnxruntime_session"]


@pytest.mark.parametrize("bad", [{"intra_op_threads": -1}, {"graph_optimization": "fast"}, ["all"]])
def test_invalid_session_settings_are_a_manifest_error(artifacts: Path, bad: object) -> None:
    raw = _raw(artifacts)
    raw["onnxruntime_session"] = bad
    with pytest.raises(ManifestError, match="onnxruntime_session") as err:
        SessionSettings.from_manifest(Manifest.from_dict(raw))
    assert err.value.exit_code == 2


def test_saved_settings_keep_the_folder_verifying(artifacts: Path) -> None:
    settings = SessionSettings(intra_op_threads=1, graph_optimization="extended", measured_on="x")
    save_session_settings(artifacts, settings)
    manifest = read_manifest(artifacts)  # verify=True: every listed file still matches
    assert SessionSettings.from_manifest(manifest) == settings
    assert sorted(p.name for p in artifacts.iterdir() if p.name.startswith(".")) == []


def test_host_applies_recorded_settings(artifacts: Path) -> None:
    import onnxruntime as ort

    settings = SessionSettings(intra_op_threads=2, graph_optimization="basic", allow_spinning=False)
    host = OnnxHost(artifacts / "model.onnx", session=settings)
    options = host.session.get_session_options()
    assert options.intra_op_num_threads == 2
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    default = OnnxHost(artifacts / "model.onnx").session.get_session_options()
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_io_binding_gives_the_plain_runs_outputs_and_the_caller_owns_them(
    artifacts: Path,
) -> None:
    """IO binding reuses one set of buffers: outputs equal the plain run bit for bit, and an
    earlier result does not change when the next run writes the buffers again."""
    import numpy as np

    with np.load(artifacts / "inputs.npz", allow_pickle=False) as z:
        feed = {k: z[k] for k in z.files}
    plain = OnnxHost(artifacts / "model.onnx")
    bound = OnnxHost(artifacts / "model.onnx", session=SessionSettings(io_binding=True))
    assert bound._bound is not None and plain._bound is None
    want, first = plain.run(feed), bound.run(feed)
    for name in want:
        np.testing.assert_array_equal(first[name], want[name])
    kept = {k: v.copy() for k, v in first.items()}
    other = {k: (v[::-1].copy() if v.ndim else v) for k, v in feed.items()}
    second = bound.run(other)
    for name in want:
        np.testing.assert_array_equal(first[name], kept[name])  # not overwritten by run 2
        np.testing.assert_array_equal(second[name], plain.run(other)[name])


def test_cuda_graph_needs_io_binding_and_names_both_in_the_record() -> None:
    with pytest.raises(ValueError, match="cuda_graph needs io_binding"):
        SessionSettings(cuda_graph=True)
    s = SessionSettings(1, "all", "HEURISTIC", io_binding=True, cuda_graph=True)
    assert s.cuda_options() == {"cudnn_conv_algo_search": "HEURISTIC", "enable_cuda_graph": "1"}
    assert s.describe().endswith("cuDNN conv algo search HEURISTIC, IO binding, CUDA graph")
    assert SessionSettings.from_dict(s.to_dict()) == s
    assert SessionSettings(io_binding=True).cuda_options() == {}


@pytest.mark.parametrize("bad", [{"io_binding": "yes"}, {"cuda_graph": True}])
def test_invalid_binding_settings_are_a_manifest_error(artifacts: Path, bad: object) -> None:
    raw = _raw(artifacts)
    raw["onnxruntime_session"] = bad
    with pytest.raises(ManifestError, match="onnxruntime_session"):
        SessionSettings.from_manifest(Manifest.from_dict(raw))


def test_a_binding_onnx_runtime_cannot_make_falls_back_to_plain_runs(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    import export.host

    def refuse(*args: object) -> None:
        raise RuntimeError("no allocator for this device")

    monkeypatch.setattr(export.host, "_BoundRun", refuse)
    with np.load(artifacts / "inputs.npz", allow_pickle=False) as z:
        feed = {k: z[k] for k in z.files}
    host = OnnxHost(artifacts / "model.onnx", session=SessionSettings(io_binding=True))
    assert not host.io_bound and "IO binding unavailable" in caplog.text
    assert set(host.run(feed)) == set(host.output_names)
