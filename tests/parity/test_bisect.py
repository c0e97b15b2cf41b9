"""`python -m export bisect`: planted faults are found at the layer they were planted in, and a
healthy model names nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.manifest import read_manifest
from export.signature import Signature
from parity.bisect import bisect, parse_pair
from parity.boundaries import boundaries
from parity.errors import BisectError
from parity.jump_rule import FLOOR
from parity.runners import Backend, make_runner
from ptycho_torch.checkpoint import load_model
from ptychopinn.main import main as parity_main
from scripts.plant_onnx_fault import scale_onnx_conv


def test_boundaries_follow_the_dataflow(parity_build) -> None:
    signature = Signature.from_dict(read_manifest(parity_build.out).signature)
    bounds = {b.name: b for b in boundaries(load_model(parity_build.out / "weights.pt"), signature)}
    assert bounds["encoder.0.convs.conv1"].upstream == ()
    assert bounds["encoder.1.convs.conv1"].upstream == ("encoder.0.convs.conv2",)
    # the phase decoder starts from the encoder, not from the amplitude decoder before it
    assert bounds["phase_decoder.blocks.0.convs.conv1"].upstream == ("encoder.2.convs.conv2",)
    last_block = "amplitude_decoder.blocks.1.convs.conv2"
    assert bounds["amplitude_decoder.head.centre_conv"].upstream == (last_block,)
    assert bounds["amplitude_decoder.head.outer.up.convs.conv1"].upstream == (last_block,)
    assert bounds["amplitude_decoder.head.outer.conv"].post == "silu"
    assert bounds["amplitude_decoder.head.centre_conv"].post == "none"
    assert bounds["amplitude"].upstream == (
        "amplitude_decoder.head.centre_conv",
        "amplitude_decoder.head.outer.conv",
    )
    assert bounds["encoder.1.convs.conv2"].block == "encoder.1"


def test_healthy_model_names_nothing_and_prints_its_noise_floor(artifacts: Path) -> None:
    result = bisect(artifacts, ("eager", "onnxruntime"))
    assert result.first_jump is None
    assert len(result.rows) == 24  # 22 conv layers and the two outputs
    assert all(r.rel < FLOOR for r in result.rows)
    assert any(r.rel > 0 for r in result.rows)  # the floor is measured, not assumed
    table = result.table()
    assert "no jump" in table and "noise floor" in table
    assert "encoder.0.convs.conv1" in table


@pytest.mark.parametrize(
    ("layer", "block"),
    [
        ("encoder.1.convs.conv2", "encoder.1"),
        ("phase_decoder.blocks.0.convs.conv1", "phase_decoder.blocks.0"),
        ("amplitude_decoder.head.outer.conv", "amplitude_decoder.head (outer path)"),
    ],
)
def test_onnx_conv_scaled_by_1_01_is_named(artifacts: Path, layer: str, block: str) -> None:
    scale_onnx_conv(artifacts, layer, 1.01)
    result = bisect(artifacts, ("eager", "onnxruntime"))
    jump = result.first_jump
    assert jump is not None, result.table()
    assert (jump.name, jump.block) == (layer, block)
    before = result.rows[: result.rows.index(jump)]
    assert not any(r.jump for r in before)
    if layer.startswith("phase_decoder"):  # the other decoder is untouched
        assert all(r.rel < FLOOR for r in result.rows if r.name.startswith("amplitude"))


def test_cli_exit_codes_and_json(artifacts: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bisect.json"
    assert parity_main(["bisect", "--artifacts", str(artifacts), "--json", str(out)]) == 0
    assert "no jump" in capsys.readouterr().out
    scale_onnx_conv(artifacts, "encoder.0.convs.conv1", 1.01)
    assert parity_main(["bisect", "--artifacts", str(artifacts), "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "first jump: encoder.0.convs.conv1 in encoder.0" in printed
    record = json.loads(out.read_text())
    assert record["first_jump"] == {"boundary": "encoder.0.convs.conv1", "block": "encoder.0"}
    assert {"name", "block", "max_abs", "rel", "allowed", "jump"} <= set(record["boundaries"][0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pair", "eager:torchscript"], "compiled program"),
        (["--pair", "eager:nope"], "unknown side"),
        (["--pair", "eager"], "LEFT:RIGHT"),
        (["--pair", "onnxruntime:ONNXRuntime"], "both sides are onnxruntime"),
        (["--pair", "eager:tf-reference"], "stored outputs only"),
        (["--pair", "onnx:eager"], "unknown side 'onnx'; sides are eager, exported-program (pt2)"),
        (["--sample", "99"], "holds samples 0..1"),
    ],
)
def test_cli_bad_requests_exit_2(artifacts: Path, capsys, argv: list[str], message: str) -> None:
    assert parity_main(["bisect", "--artifacts", str(artifacts), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_parse_pair_takes_the_documented_names_in_any_case() -> None:
    assert parse_pair("EAGER:OnnxRuntime") == (Backend.EAGER, Backend.ONNXRUNTIME)
    assert parse_pair("onnxruntime:tf-twin") == ("onnxruntime", "tf-twin")
    assert parse_pair("eager:pt2") == ("eager", "exported-program")
    assert parse_pair("eager:exported-program") == ("eager", "exported-program")
    with pytest.raises(BisectError, match="compiled program"):
        parse_pair("eager:torchscript")


@pytest.mark.parametrize("alias", ["onnx", "ort", "tf", "tf-live", "twin", "torch", "torch.export"])
def test_parse_pair_refuses_the_removed_aliases_naming_the_sides(alias: str) -> None:
    with pytest.raises(BisectError) as caught:
        parse_pair(f"{alias}:eager")
    assert f"unknown side {alias!r}" in str(caught.value)
    assert "sides are eager, exported-program (pt2), onnxruntime, tf-twin" in str(caught.value)


def test_physics_head_includes_pred_amplitude(built_physics, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "physics"
    shutil.copytree(built_physics.out, copy)
    result = bisect(copy, ("eager", "onnxruntime"))
    assert result.rows[-1].name == "pred_amplitude"
    assert result.first_jump is None, result.table()


def test_exported_program_side_maps_every_conv(artifacts: Path) -> None:
    """eager vs .pt2 (run node by node) is healthy; with one eager conv scaled by 1.01 the
    bisection names that conv, so the program's nodes were matched to the right layers."""
    import torch

    pair = parse_pair("eager:pt2")
    healthy = bisect(artifacts, pair)
    assert healthy.first_jump is None and all(r.rel < FLOOR for r in healthy.rows)
    manifest = read_manifest(artifacts)
    eager = make_runner(Backend.EAGER, artifacts, manifest, "cpu")
    eager.activate()
    with torch.no_grad():
        eager.model.get_submodule("phase_decoder.head.centre_conv").weight.mul_(1.01)  # type: ignore[attr-defined]
    program = make_runner(Backend.EXPORTED_PROGRAM, artifacts, manifest, "cpu")
    jump = bisect(artifacts, pair, sides=(eager, program)).first_jump
    assert jump is not None
    assert (jump.name, jump.block) == (
        "phase_decoder.head.centre_conv",
        "phase_decoder.head (centre path)",
    )


@pytest.mark.tf
@pytest.mark.slow  # TensorFlow's start and a twin reference: 6 s of the default run
def test_tf_twin_healthy_names_nothing(artifacts: Path) -> None:
    result = bisect(artifacts, ("eager", "tf-twin"))
    assert result.first_jump is None, result.table()


@pytest.mark.tf
def test_tf_twin_with_a_transposed_kernel_is_named(artifacts: Path) -> None:
    """One twin layer's kernel with its HWIO spatial axes swapped (H <-> W), as a wrong weight
    transfer would leave it."""
    layer = "amplitude_decoder.blocks.1.convs.conv1"
    manifest = read_manifest(artifacts)
    eager = make_runner(Backend.EAGER, artifacts, manifest, "cpu")
    twin = make_runner(Backend.TF_TWIN, artifacts, manifest, "cpu")
    twin.activate()
    kernel = twin.twin.get_layer(layer).kernel  # type: ignore[attr-defined]
    kernel.assign(np.swapaxes(kernel.numpy(), 0, 1))
    result = bisect(artifacts, ("eager", "tf-twin"), sides=(eager, twin))
    jump = result.first_jump
    assert jump is not None, result.table()
    assert (jump.name, jump.block) == (layer, "amplitude_decoder.blocks.1")


@pytest.mark.tf
@pytest.mark.slow  # a physics-head build: 4.5 s of the default run
def test_physics_steps_are_bisected_and_a_conjugated_twin_probe_is_named(
    built_physics, tmp_path: Path
) -> None:
    """eager vs the twin stops inside the physics forward too; a twin whose probe is the
    complex conjugate of the model's parts at the exit wave (`physics.illuminated`)."""
    import shutil

    copy = tmp_path / "physics"
    shutil.copytree(built_physics.out, copy)
    healthy = bisect(copy, ("eager", "tf-twin"))
    names = [r.name for r in healthy.rows]
    assert names[-7:] == [
        "physics.obj",
        "physics.padded_obj",
        "physics.trimmed_obj",
        "physics.extracted_patches",
        "physics.illuminated",
        "physics.pred_amplitude_unscaled",
        "pred_amplitude",
    ]
    assert healthy.first_jump is None, healthy.table()
    manifest = read_manifest(copy)
    twin = make_runner(Backend.TF_TWIN, copy, manifest, "cpu")
    twin.activate()
    probe_im = twin.twin.get_layer("far_field").probe_im  # type: ignore[attr-defined]
    probe_im.assign(-probe_im.numpy())
    eager = make_runner(Backend.EAGER, copy, manifest, "cpu")
    jump = bisect(copy, ("eager", "tf-twin"), sides=(eager, twin)).first_jump
    assert jump is not None
    assert (jump.name, jump.block) == ("physics.illuminated", "physics forward")
