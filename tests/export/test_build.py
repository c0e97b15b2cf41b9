"""Atomic, deterministic builds; the float32 contract scan; CLI errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from export import build as build_module
from export.build import BuildResult, build
from export.contract import check_onnx_contract
from export.errors import BuildError, DtypeContractError, ExportError
from export.manifest import sha256_file
from export.options import BuildOptions
from tests.conftest import export_cli as _main


@pytest.mark.parametrize("failure", [BuildError("boom"), KeyboardInterrupt()])
def test_failed_or_interrupted_build_keeps_previous_artifacts(
    fast_export: None,
    model_file: Path,
    feed_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: BaseException,
) -> None:
    out = tmp_path / "artifacts"
    build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def explode(*args: object, **kwargs: object) -> None:
        (building,) = (tmp_path / ".artifacts.versions").glob(".building-*")
        (building / "model.ts").write_bytes(b"half written")  # failed mid-export
        raise failure

    monkeypatch.setattr(build_module, "_export_all", explode)
    with pytest.raises(type(failure)):
        build(
            BuildOptions(
                checkpoint=model_file, inputs=feed_file, out=out, batch=1, reference="none"
            )
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # no temporary folders or links left (the advisory lock file of --out stays, empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".artifacts.lock",
        ".artifacts.versions",
        "artifacts",
    ]
    assert [p.name for p in (tmp_path / ".artifacts.versions").iterdir()] == [out.resolve().name]


def test_refuses_to_replace_a_folder_that_is_not_artifacts(
    model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(ExportError, match="--force"):
        build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    assert (out / "thesis.tex").read_text() == "precious"


def test_user_files_beside_old_artifacts_are_not_deleted(
    built: BuildResult, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "artifacts"
    shutil.copytree(built.out, out)
    (out / "NOTES.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"NOTES\.txt.*--force"):
        build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    assert (out / "NOTES.txt").read_text() == "mine"


def test_a_checkpoint_inside_out_is_never_deleted_even_with_force(
    model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "dir"
    out.mkdir()
    shutil.copy(model_file, out / "my-model.pt")
    with pytest.raises(ExportError, match="--checkpoint .* lies inside --out"):
        build(
            BuildOptions(
                checkpoint=out / "my-model.pt",
                inputs=feed_file,
                out=out,
                reference="none",
                force=True,
            )
        )
    assert (out / "my-model.pt").is_file()


@pytest.mark.slow  # a second real export
def test_two_builds_of_the_same_checkpoint_give_byte_identical_onnx(
    built: BuildResult, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    again = build(
        BuildOptions(checkpoint=model_file, inputs=feed_file, out=tmp_path / "a", reference="none")
    )
    for name in ("model.onnx", "inputs.npz", "weights.pt"):
        assert sha256_file(again.out / name) == sha256_file(built.out / name), name


def test_a_previous_build_is_replaced_without_force(
    fast_export: None, built: BuildResult, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "artifacts"
    shutil.copytree(built.out, out)
    (out / "report").mkdir(exist_ok=True)
    (out / "report" / "report.md").write_text("the previous build's report")
    result = build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    assert (result.out / "manifest.json").is_file() and not (result.out / "report").exists()
    # the plain folder was swapped for the link in one step and kept as a previous version
    assert out.is_symlink()
    previous = [p for p in (tmp_path / ".artifacts.versions").iterdir() if p != out.resolve()]
    assert [(p / "report" / "report.md").read_text() for p in previous] == [
        "the previous build's report"
    ]
    assert (previous[0] / "manifest.json").read_bytes() == (
        built.out / "manifest.json"
    ).read_bytes()


def test_a_second_build_into_the_same_out_fails_clearly(
    model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import fcntl

    out = tmp_path / "artifacts"
    with (tmp_path / ".artifacts.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running build holds it
        with pytest.raises(ExportError, match="another build into .* is running"):
            build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    assert not out.exists()


def test_leftovers_of_killed_builds_are_removed(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import socket

    host = socket.gethostname()
    out = tmp_path / "artifacts"
    build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    versions = tmp_path / ".artifacts.versions"
    dead = versions / f".building-{host}-999999999-x"
    dead.mkdir()  # killed mid-build (no such pid)
    dead_link = tmp_path / f".artifacts.link-{host}-999999999"
    dead_link.symlink_to("nowhere")  # killed between making the link and switching it
    live = versions / f".building-{host}-{os.getpid()}-y"
    live.mkdir()  # a running build's folder is left alone
    build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    assert not dead.exists() and not dead_link.is_symlink() and live.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".artifacts.lock",
        ".artifacts.versions",
        "artifacts",
    ]


@pytest.mark.slow  # four builds; test_force_keeps_a_replaced_user_folder prunes too
def test_publish_keeps_the_newest_versions(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "artifacts"
    seen = []
    for _ in range(4):
        build(
            BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none", keep=1)
        )
        seen.append(out.resolve().name)
    kept = sorted(p.name for p in (tmp_path / ".artifacts.versions").iterdir())
    assert kept == sorted(seen[-2:])  # the published one and one previous
    assert os.readlink(out) == f".artifacts.versions/{seen[-1]}"  # relative: the parent can move


def test_force_keeps_a_replaced_user_folder(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for _ in range(3):  # later builds prune old versions, never one holding the user's file
        build(
            BuildOptions(
                checkpoint=model_file,
                inputs=feed_file,
                out=out,
                reference="none",
                force=True,
                keep=0,
            )
        )
    kept = list((tmp_path / ".mine.versions").glob("*/thesis.tex"))
    assert [p.read_text() for p in kept] == ["precious"]


def _with_double_cast(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    first = graph.node[0]
    source = first.input[0]
    graph.node.insert(
        0,
        helper.make_node(
            "Cast", [source], ["as_double"], to=onnx.TensorProto.DOUBLE, name="sneaky_cast"
        ),
    )
    graph.node.insert(
        1,
        helper.make_node(
            "Cast", ["as_double"], ["back_to_float"], to=onnx.TensorProto.FLOAT, name="cast_back"
        ),
    )
    for node in graph.node[2:]:
        for i, name in enumerate(node.input):
            if name == source:
                node.input[i] = "back_to_float"
    return model


def test_contract_scan_names_a_float64_cast(built: BuildResult) -> None:
    model = _with_double_cast(onnx.load(str(built.out / "model.onnx")))
    with pytest.raises(DtypeContractError, match="sneaky_cast.*float64|as_double.*double"):
        check_onnx_contract(model, built.signature)


def test_contract_scan_rejects_float64_graph_input(built: BuildResult) -> None:
    model = onnx.load(str(built.out / "model.onnx"))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    with pytest.raises(DtypeContractError, match="graph input 'diffraction' is double"):
        check_onnx_contract(model, built.signature)


def test_scan_npz_is_cut_into_a_batch(model_file: Path, tmp_path: Path) -> None:
    """The build's feed from a scan (whole build: test_cli_builds_a_scan_npz_without_parity)."""
    from export.inputs import load_feed
    from ptycho_torch.checkpoint import load_model
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    write_npz(simulate_scan(SimulationConfig(seed=3, n_images=16)), tmp_path / "scan.npz")
    config = load_model(model_file).config
    for head in ("object", "physics"):
        feed = load_feed(tmp_path / "scan.npz", config, 3, head)
        assert feed["diffraction"].shape == (3, 1, 64, 64)
        assert feed["diffraction"].dtype == np.float32
    assert feed["positions"].shape == (3, 1, 2) and feed["positions"].dtype == np.float32


def test_compressed_and_version_2_feed_files_are_read_like_plain_ones(
    model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    import zipfile

    from export.inputs import load_feed
    from ptycho_torch.checkpoint import load_model

    with np.load(feed_file, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "v2.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for name, array in arrays.items():
            with z.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array, version=(2, 0))
    config = load_model(model_file).config
    for name in ("compressed.npz", "v2.npz"):
        for head, keys in (("object", ["diffraction"]), ("physics", ["diffraction", "positions"])):
            feed = load_feed(tmp_path / name, config, None, head)
            assert sorted(feed) == keys, (name, head)
            for key, value in feed.items():
                np.testing.assert_array_equal(value, arrays[key])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_builds_a_scan_npz_without_parity(model_file: Path, tmp_path: Path) -> None:
    """Subprocess smoke test of a whole build: a scan NPZ in, the physics head out."""
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    write_npz(simulate_scan(SimulationConfig(seed=3, n_images=16)), tmp_path / "scan.npz")
    proc = _cli(
        "build", "--checkpoint", str(model_file), "--inputs", "scan.npz", "--batch", "3",
        "--head", "physics", "--out", "arts", "--no-parity", "--reference", "none",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "build OK" in proc.stdout
    assert re.search(r"\[(\d+)/\1\] publish", proc.stderr)  # the last step, whatever the count
    assert json.loads((tmp_path / "arts" / "manifest.json").read_text())["head"] == "physics"
    with np.load(tmp_path / "arts" / "inputs.npz") as data:
        assert data["diffraction"].shape == (3, 1, 64, 64) and data["positions"].shape == (3, 1, 2)


def test_host_verify_checks_hashes(built: BuildResult, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built.out, copy)
    ok = subprocess.run(
        [sys.executable, "-m", "export", "verify", str(copy)], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert f"verified {copy}" in ok.stdout
    data = (copy / "inputs.npz").read_bytes()
    (copy / "inputs.npz").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    bad = _main("verify", str(copy))
    assert bad.returncode == 4, bad.stderr  # a changed artifact is exit 4 on every CLI
    assert "changed since the build (sha256 differs) inputs.npz" in bad.stderr


def test_host_verify_of_outputs_that_differ_from_the_reference_exits_1(artifacts: Path) -> None:
    """A replay that disagrees with reference.npz is a parity failure (1), not a fault."""
    with np.load(artifacts / "reference.npz", allow_pickle=False) as data:
        reference = {k: data[k] for k in data.files}
    assert _main("verify", str(artifacts)).returncode == 0  # the eager reference agrees
    reference["phase"] = reference["phase"] + np.float32(1e-3)  # not hashed: from elsewhere
    np.savez(artifacts / "reference.npz", **reference)
    proc = _main("verify", str(artifacts))
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert "differs from reference.npz" in errors[0] and "phase" in errors[0], errors[0]


def _conv_weights(module: object) -> list[object]:
    """The 4-D weights with more than one input channel (a 1-channel one is both layouts)."""
    return [p for p in module.parameters() if p.dim() == 4 and p.shape[1] > 1]  # type: ignore[attr-defined]


def test_torch_artifacts_store_channels_last_weights_by_default(built: BuildResult) -> None:
    """TorchScript and .pt2 keep NHWC weight strides through save and load, so their convs run
    channels-last; the outputs stay within float32 round-off of contiguous eager."""
    import torch

    from export.artifacts import load_program, load_torchscript, safe_export_load
    from export.ts_safety import check_torchscript_archive

    manifest = built.manifest
    for name in ("model.ts", "model.pt2"):
        assert manifest.exporters[name].endswith(", channels-last weights")
        assert manifest.loadback_max_abs_vs_eager[name] < 1e-5
    check_torchscript_archive(built.out / "model.ts")  # nothing in it runs Python
    scripted = torch.jit.load(str(built.out / "model.ts"))
    program = safe_export_load(built.out / "model.pt2").module()
    for module in (scripted, program):
        weights = _conv_weights(module)
        assert weights and all(
            w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
            for w in weights
        )
    with np.load(built.out / "inputs.npz", allow_pickle=False) as z:
        feed = {k: z[k] for k in z.files}
    for loader, path in ((load_torchscript, "model.ts"), (load_program, "model.pt2")):
        outputs = loader(built.out / path)(feed)
        built.signature.check_outputs(outputs)  # float32, the signature's shapes


@pytest.mark.slow  # a second real export (TorchScript, torch.export, ONNX), ~4 s CPU
def test_contiguous_memory_format_gives_artifacts_bit_identical_to_eager(
    model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    options = BuildOptions(
        checkpoint=model_file, inputs=feed_file, out=tmp_path / "arts",
        reference="none", memory_format="contiguous",
    )  # fmt: skip
    result = build(options)
    assert result.manifest.exporters["model.ts"] == "torch.jit.script"
    assert result.manifest.loadback_max_abs_vs_eager["model.ts"] == 0.0
    assert result.manifest.loadback_max_abs_vs_eager["model.pt2"] == 0.0


def test_a_bad_memory_format_is_a_usage_error(tmp_path: Path) -> None:
    proc = _main("build", "--memory-format", "nhwc", "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "--memory-format" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "a").exists()
