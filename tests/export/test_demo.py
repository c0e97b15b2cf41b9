"""The README's main command on the bundled demo model, and the bundled references' freshness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export.options import DEMO_DIR
from parity.reference import load_reference
from ptycho_torch.checkpoint import load_model, model_state_sha256
from ptycho_torch.digest import arrays_sha256


@pytest.mark.parametrize("head", ["object", "physics"])
def test_bundled_reference_matches_demo_weights_and_inputs(head: str) -> None:
    reference = load_reference(DEMO_DIR / f"reference-{head}.npz")
    assert reference.provenance["generator"] == "tensorflow-twin"
    assert reference.provenance["weights_sha256"] == model_state_sha256(
        load_model(DEMO_DIR / "model.pt")
    )
    names = ["diffraction"] + (["positions"] if head == "physics" else [])
    with np.load(DEMO_DIR / "inputs.npz", allow_pickle=False) as data:
        assert reference.provenance["inputs_sha256"] == arrays_sha256({n: data[n] for n in names})
    with np.load(reference.path, allow_pickle=False) as outputs:
        assert all(outputs[k].dtype == np.float32 for k in outputs.files)


@pytest.mark.slow  # a full demo build and parity check in a subprocess, per head
@pytest.mark.parametrize("head", ["object", "physics"])
def test_export_build_with_no_arguments_passes_parity_against_tensorflow(
    tmp_path: Path, head: str
) -> None:
    args = [] if head == "object" else ["--head", "physics"]
    proc = subprocess.run(
        [sys.executable, "-m", "export", "build", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parity PASS" in proc.stdout
    assert "bundled TensorFlow reference" in proc.stderr
    report = json.loads((tmp_path / "artifacts" / "report" / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["reference_provenance"]["generator"] == "tensorflow-twin"
    rights = {c["right"] for c in report["comparisons"]}
    assert "tf-reference" in rights
    markdown = (tmp_path / "artifacts" / "report" / "report.md").read_text()
    assert "**Reference (`tf-reference`):** generator `tensorflow-twin`, TensorFlow" in markdown


@pytest.mark.slow  # the demo model through TensorFlow (test_bundled_reference_... checks digests)
@pytest.mark.tf
@pytest.mark.parametrize("head", ["object", "physics"])
def test_regenerated_demo_reference_matches_the_bundled_one(tmp_path: Path, head: str) -> None:
    from parity.tf_twin.generate import generate_reference

    names = ["diffraction"] + (["positions"] if head == "physics" else [])
    with np.load(DEMO_DIR / "inputs.npz", allow_pickle=False) as data:
        np.savez(tmp_path / "inputs.npz", **{n: data[n] for n in names})
    fresh = generate_reference(
        DEMO_DIR / "model.pt", tmp_path / "inputs.npz", tmp_path / "ref.npz", head=head
    )
    bundled = load_reference(DEMO_DIR / f"reference-{head}.npz")
    for key in ("weights_sha256", "inputs_sha256", "head"):
        assert fresh.provenance[key] == bundled.provenance[key]
    with np.load(bundled.path, allow_pickle=False) as data:
        bundled_outputs = {k: data[k] for k in data.files}
    for name, value in bundled_outputs.items():
        # same TensorFlow build and CPU kind: bitwise in practice; 1e-6 allows another CPU ISA
        scale = max(1.0, float(np.abs(value).max()))
        assert np.max(np.abs(fresh.outputs[name] - value)) <= 1e-6 * scale, name


@pytest.mark.slow  # a TensorFlow reference, then a full build in a subprocess
@pytest.mark.tf
def test_reference_from_other_weights_is_reported_stale(tmp_path: Path) -> None:
    """A twin reference made from other weights: `export build --reference PATH` then exit 4."""
    import torch

    from parity.tf_twin.generate import generate_reference
    from ptycho_torch.checkpoint import save_model

    other = load_model(DEMO_DIR / "model.pt")
    with torch.no_grad():
        other.encoder[0].convs.conv1.bias.add_(1e-3)
    save_model(other, tmp_path / "other.pt")
    with np.load(DEMO_DIR / "inputs.npz", allow_pickle=False) as data:
        np.savez(tmp_path / "inputs.npz", diffraction=data["diffraction"])
    generate_reference(tmp_path / "other.pt", tmp_path / "inputs.npz", tmp_path / "stale.npz")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "build",
            "--reference",
            str(tmp_path / "stale.npz"),
            "--out",
            "a",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "stale" in proc.stderr and "weights_sha256" in proc.stderr


@pytest.mark.slow  # a full demo build with the live TensorFlow twin in a subprocess
@pytest.mark.tf
def test_live_tensorflow_twin_reproduces_the_bundled_reference(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "export", "build", "--tf-twin"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "artifacts" / "report" / "report.json").read_text())
    live = [c for c in report["comparisons"] if c["left"] == "tf-twin[cpu]"]
    assert {c["output"] for c in live} == {"amplitude", "phase"}
    assert all(c["status"] == "pass" for c in live)
    assert any(r["kind"] == "tf-live" for r in report["runners"])
