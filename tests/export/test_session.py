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
