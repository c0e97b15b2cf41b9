"""The exported ONNX model inside Ptychodus (issue 22): files Ptychodus writes, its Reconstructor
API, its subprocess model and ``python -m export predict --product``, all torch-free.

A scan is simulated, given a Ptychodus object geometry (pixel size, centre, a margin around the
ground-truth object) and written with Ptychodus's own writers; the tests hold what comes back to
``export predict`` on the same scan in our NPZ format and to the ground-truth object's place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

pytest.importorskip("ptychodus", reason="ptychodus not installed: pip install -e '.[ptychodus]'")

from ptychodus.api.diffraction import (  # noqa: E402
    DiffractionDatasetLayoutNode,
    DiffractionMetadata,
    SimpleDiffractionArray,
    SimpleDiffractionDataset,
)
from ptychodus.api.geometry import ImageExtent, PixelGeometry  # noqa: E402
from ptychodus.api.io import load_product, save_product, save_ptychopinn_training_data  # noqa: E402
from ptychodus.api.object import Object, ObjectCenter  # noqa: E402
from ptychodus.api.probe import ProbeSequence  # noqa: E402
from ptychodus.api.probe_positions import ProbePosition, ProbePositionSequence  # noqa: E402
from ptychodus.api.product import Product, ProductMetadata  # noqa: E402
from ptychodus.api.reconstruct import ReconstructInput, TrainableReconstructor  # noqa: E402
from ptychodus.api.settings import SettingsRegistry  # noqa: E402
from ptychodus.plugins.npz_diffraction_file import NPZDiffractionFileIO  # noqa: E402

from export.errors import ManifestError  # noqa: E402
from export.predict import Predictor  # noqa: E402
from export.ptychodus.adapter import PtychodusInputError  # noqa: E402
from export.ptychodus.library import PtychoPINNOnnxLibrary  # noqa: E402
from export.ptychodus.model_file import PROGRESS_GOAL  # noqa: E402
from export.ptychodus.reconstructor import OnnxReconstructor  # noqa: E402
from ptycho_torch.scan import PtychoData
from ptycho_torch.scan_reader import ScanReader  # noqa: E402
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz  # noqa: E402
from ptycho_torch.stitch import StitchedObject  # noqa: E402
from tests.conftest import export_cli  # noqa: E402

if TYPE_CHECKING:
    from export.build import BuildResult

PIXEL = 1e-8  # object (and probe) pixel, m
PAD = 7  # the product's object is the ground truth's plus PAD pixels on every side
CENTRE = (3e-6, -2e-6)  # the object geometry's centre, m
REPO = Path(__file__).resolve().parents[2]
ORIGINAL_CASE = REPO.parent / "shared" / "reference" / "ptychopinn-tf" / "n64-gs1"


# --- a simulated scan as Ptychodus holds it ----------------------------------------------------


def ptychodus_input(scan: PtychoData, modes: int = 1) -> ReconstructInput:
    """``scan`` on a Ptychodus object geometry: positions in metres from the pixel size, the
    ground truth's pixel (x, y) at the product's pixel (x + PAD, y + PAD), measured intensities."""
    side = scan.obj.shape[0] + 2 * PAD if scan.obj is not None else 0
    x_m = CENTRE[0] + PIXEL * (scan.xcoords + PAD - (side - 1) / 2)
    y_m = CENTRE[1] + PIXEL * (scan.ycoords + PAD - (side - 1) / 2)
    positions = [ProbePosition(i, float(x), float(y)) for i, (x, y) in enumerate(zip(x_m, y_m))]
    pixels = PixelGeometry(width_m=PIXEL, height_m=PIXEL)
    probe = np.stack([scan.probe * 0.5**k for k in range(modes)]).astype(np.complex64)
    product = Product(
        metadata=ProductMetadata(
            name="simulated",
            comments="",
            detector_distance_m=2.0,
            photon_energy_eV=10000.0,
            probe_photon_count=0.0,
            exposure_time_s=0.0,
            mass_attenuation_m2_per_kg=0.0,
            tomography_angle_deg=0.0,
        ),
        probe_positions=ProbePositionSequence(positions),
        probes=ProbeSequence(probe, None, pixels),
        object_=Object(np.ones((side, side), np.complex64), pixels, ObjectCenter(*CENTRE)),
        losses=[],
    )
    intensities = np.square(scan.diffraction.astype(np.float32))  # what a detector counts
    return ReconstructInput(intensities, np.zeros(intensities.shape[1:], bool), product)


def write_ptychodus_files(inp: ReconstructInput, folder: Path) -> tuple[Path, Path]:
    """``product.h5`` (``save_product``) and ``patterns.npz`` (Ptychodus's NPZ diffraction writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_product(folder / "product.h5", inp.product)
    patterns = inp.diffraction_patterns
    n, height, width = patterns.shape
    dataset = SimpleDiffractionDataset(
        DiffractionMetadata([n], patterns.dtype, ImageExtent(width, height)),
        DiffractionDatasetLayoutNode.create_root(),
        [SimpleDiffractionArray("scan", np.arange(n), patterns)],  # scan indexes 0..n-1
        bad_pixels=inp.bad_pixels,
    )
    NPZDiffractionFileIO().write(folder / "patterns.npz", dataset)
    return folder / "product.h5", folder / "patterns.npz"


def _wrapped(d: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * d.astype(np.float64))))


def _assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    """Amplitude and (wrapped) phase within float32 round-off."""
    assert got.shape == expected.shape
    assert np.abs(np.abs(got) - np.abs(expected)).max() <= 1e-6
    assert _wrapped(np.angle(got) - np.angle(expected)).max() <= 4e-6


def _correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The bundled demo model (trained on simulated scans) exported with its reference: its
    reconstructions resemble the ground truth, so their place can be checked against it."""
    from export.build import build
    from export.options import BuildOptions

    return build(BuildOptions(out=tmp_path_factory.mktemp("demo") / "artifacts"))


@pytest.fixture(scope="module")
def small() -> PtychoData:
    """25 patterns with objectGuess: for the fast tests on ``built``."""
    return simulate_scan(SimulationConfig(seed=6, n_images=25))


# --- done when ---------------------------------------------------------------------------------


@pytest.mark.slow  # exports the demo model for real, spawns Ptychodus's child (~8 s CPU)
def test_reconstructor_subprocess_and_cli_agree_with_predict_and_sit_on_the_ground_truth(
    demo: BuildResult, tmp_path: Path
) -> None:
    scan = simulate_scan(SimulationConfig(seed=11, n_images=64))
    inp = ptychodus_input(scan)
    product_file, patterns_file = write_ptychodus_files(inp, tmp_path / "in")

    # 1. our Reconstructor, called as Ptychodus calls it, with a real ReconstructInput
    reconstructor = OnnxReconstructor()
    assert isinstance(reconstructor, TrainableReconstructor)
    reconstructor.load_model_from_file(demo.out / "manifest.json")
    assert reconstructor.verify_report is not None and reconstructor.verify_report.passed
    outputs = list(reconstructor.reconstruct(inp))
    assert [o.progress for o in outputs] == [PROGRESS_GOAL] == [reconstructor.get_progress_goal()]
    in_process = outputs[0].product

    # 2. the subprocess entry, through Ptychodus's own SubprocessReconstructor
    (child,) = PtychoPINNOnnxLibrary()
    child.load_model_from_file(demo.out)
    (spawned,) = [o.product for o in child.reconstruct(inp)]

    # 3. the CLI, on the files Ptychodus's writers wrote; OUT.h5 read back by load_product
    out = tmp_path / "out" / "recon.h5"
    run = export_cli(
        "predict", "--artifacts", str(demo.out), "--product", str(product_file),
        "--data", str(patterns_file), "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert f"wrote {out} (Ptychodus product 'simulated'" in run.stdout
    from_cli = load_product(out)

    # export predict on the same scan in our own NPZ format: the ground truth's frame
    with ScanReader(write_npz(scan, tmp_path / "scan.npz")) as reader:
        expected: StitchedObject = Predictor(demo.out).predict(reader).stitched
    m = expected.obj.shape[0]
    for product in (in_process, spawned, from_cli):
        geometry = product.object_.get_geometry()
        assert geometry == inp.product.object_.get_geometry()  # pixel size, centre, shape
        assert product.probe_positions.get_indexes().tolist() == list(range(64))
        for axis in ("x", "y"):
            got = getattr(product.probe_positions, f"get_coordinates_{axis}_m")()
            assert np.array_equal(
                got, getattr(inp.product.probe_positions, f"get_coordinates_{axis}_m")()
            )
        obj = product.object_.get_array()[0]
        _assert_same(obj, in_process.object_.get_array()[0])
        _assert_same(obj[PAD : PAD + m, PAD : PAD + m], expected.obj)
        assert not np.any(obj[:PAD]) and not np.any(obj[:, :PAD])  # nothing off the scan
    assert np.array_equal(from_cli.probes.get_array(), inp.product.probes.get_array())

    # where it lies: the ground-truth object placed on the product's geometry (PAD pixels in)
    # correlates with the reconstruction at zero shift, the peak of shifts up to 8 pixels (the
    # demo model recovers the object's smooth part, so the peak is a pixel wide; a misplaced
    # object peaks PAD, N/2 or the whole scan away)
    truth = np.zeros(in_process.object_.get_array()[0].shape, np.complex64)
    assert scan.obj is not None
    truth[PAD : PAD + m, PAD : PAD + m] = scan.obj
    covered = np.zeros(truth.shape, bool)
    covered[PAD : PAD + m, PAD : PAD + m] = expected.weight > 0.5
    recon = from_cli.object_.get_array()[0]
    shifts = [(dy, dx) for dy in range(-8, 9) for dx in range(-8, 9)]
    for part in (np.abs, np.angle):
        score = {
            s: _correlation(part(recon), np.roll(part(truth), s, (0, 1)), covered) for s in shifts
        }
        peak = max(score, key=score.__getitem__)
        far = max(v for (dy, dx), v in score.items() if max(abs(dy), abs(dx)) == 8)
        assert max(abs(peak[0]), abs(peak[1])) <= 1, (part.__name__, peak)
        assert score[(0, 0)] >= score[peak] - 0.01 and score[(0, 0)] > far + 0.05, score


# --- the files PtychoPINN users already have (item 1) ------------------------------------------


def _original_diff3d(path: Path) -> Path:
    """The original's n64-gs1 test patterns as its ``RawData.to_file`` writes them."""
    with np.load(ORIGINAL_CASE / "inputs.npz") as f:
        amplitudes = f["diffraction_normalized"][..., 0]
        coords = f["coords_nn"][:, 0, :, 0].astype(np.float64)
    with np.load(ORIGINAL_CASE / "probe.npz") as f:
        probe = f["probe_guess"]
    coords = coords - coords.min(axis=0) + 40  # on an object with room for every patch
    np.savez(
        path,
        xcoords=coords[:, 0],
        ycoords=coords[:, 1],
        xcoords_start=coords[:, 0],
        ycoords_start=coords[:, 1],
        diff3d=amplitudes,
        probeGuess=probe,
        scan_index=np.zeros(len(coords), dtype=np.int64),
    )
    return path


def _command(name: str) -> Callable[[list[str]], int]:
    """``python -m export NAME``'s ``main(argv)``, in-process."""
    from tests.conftest import command_main

    return command_main(name)


@pytest.mark.slow  # trains an epoch, infers, builds and predicts per file kind (~5 s CPU each)
@pytest.mark.parametrize("kind", ["ptychodus", "original"])
def test_train_infer_build_and_predict_read_ptychodus_and_original_training_files(
    kind: str,
    small: PtychoData,
    built: BuildResult,
    model_file: Path,
    fast_export: None,
    tmp_path: Path,
) -> None:
    from export.build import build
    from export.options import BuildOptions

    train, infer = _command("train"), _command("infer")

    if kind == "ptychodus":  # Ptychodus's own writer, with a bad pixel it inpaints
        inp = ptychodus_input(small, modes=2)
        bad = inp.bad_pixels.copy()
        bad[40, 41] = True
        data = tmp_path / "train.npz"
        save_ptychopinn_training_data(
            data, ReconstructInput(inp.diffraction_patterns, bad, inp.product)
        )
        with np.load(data) as f:
            assert {"diff3d", "bad_pixels", "probeGuess"} <= set(f.files)
            assert f["probeGuess"].shape == (2, 64, 64)
    else:
        if not ORIGINAL_CASE.is_dir():
            pytest.skip(f"fixtures of the original PtychoPINN not found at {ORIGINAL_CASE}")
        data = _original_diff3d(tmp_path / "test_data.npz")

    code = train(
        ["--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
         "--n-filters-scale", "1", "--batch-size", "8", "--threads", "2", "--no-progress"]
    )  # fmt: skip
    assert code == 0 and (tmp_path / "run" / "model.pt").is_file()
    code = infer(
        ["--checkpoint", str(model_file), "--data", str(data), "--out", str(tmp_path / "inf")]
    )
    assert code == 0 and (tmp_path / "inf" / "reconstruction.npz").is_file()
    result = build(
        BuildOptions(
            checkpoint=model_file, inputs=data, out=tmp_path / "art", batch=2, reference="none"
        )
    )
    assert result.out.is_dir()
    run = export_cli(
        "predict", "--artifacts", str(built.out), "--data", str(data), "--out", str(tmp_path / "p")
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "p" / "reconstruction.npz").is_file()


def test_a_ptychodus_training_file_predicts_as_its_measured_scan(
    small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    """``save_ptychopinn_training_data``'s intensities read as amplitudes equal the scan's own."""
    data = tmp_path / "train.npz"
    save_ptychopinn_training_data(data, ptychodus_input(small))
    contract = write_npz(small, tmp_path / "scan.npz")
    with ScanReader(data) as a, ScanReader(contract) as b:
        got = Predictor(built.out).predict(a).stitched  # on the product's object: PAD wider
        want = Predictor(built.out).predict(b).stitched
    m = want.obj.shape[0]
    assert got.obj.shape == (m + 2 * PAD, m + 2 * PAD)
    _assert_same(got.obj[PAD : PAD + m, PAD : PAD + m], want.obj)


def test_the_cli_pairs_a_training_file_row_by_row_like_the_diffraction_file_by_index(
    small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    inp = ptychodus_input(small)
    product, patterns = write_ptychodus_files(inp, tmp_path / "in")
    training = tmp_path / "in" / "train.npz"
    save_ptychopinn_training_data(training, inp)
    objects = []
    for data in (patterns, training):
        out = tmp_path / f"{data.stem}.h5"
        run = export_cli(
            "predict", "--artifacts", str(built.out), "--product", str(product),
            "--data", str(data), "--out", str(out),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        objects.append(load_product(out).object_.get_array()[0])
    _assert_same(objects[1], objects[0])


# --- bad input (item 5): one line, exit 2, nothing written -------------------------------------


def _replace(
    inp: ReconstructInput, patterns: np.ndarray | None = None, **product: Any
) -> ReconstructInput:
    values = inp.diffraction_patterns if patterns is None else patterns
    bad = np.zeros(values.shape[1:], bool)
    return ReconstructInput(values, bad, dataclasses.replace(inp.product, **product))


def _positions(
    inp: ReconstructInput, keep: slice = slice(None), move: float = 0.0
) -> ProbePositionSequence:
    points = list(inp.product.probe_positions)[keep]
    if move:
        points[3] = ProbePosition(points[3].index, points[3].x_m + move, points[3].y_m)
    return ProbePositionSequence(points)


def _nan(inp: ReconstructInput) -> np.ndarray:
    patterns = inp.diffraction_patterns.copy()
    patterns[4, 10, 10] = np.nan
    return patterns


BAD_INPUTS: dict[str, tuple[Callable[[ReconstructInput], ReconstructInput], str, str]] = {
    # case: (the bad input, what the reconstructor says, what the CLI says)
    "pattern size not N": (
        lambda i: _replace(i, i.diffraction_patterns[:, 16:48, 16:48]),
        "are 32x32 but the model was exported for N=64",
        "are 32x32 but the model was exported for N=64",
    ),
    "position outside the geometry": (
        lambda i: _replace(i, probe_positions=_positions(i, move=1e-6)),
        "1 of 25 probe positions put their 64x64 patch outside the object geometry",
        "scan index 3 at object pixel",
    ),
    "product without positions": (
        lambda i: _replace(i, probe_positions=ProbePositionSequence()),
        "the product has no probe positions",
        "has no probe positions",
    ),
    "more patterns than positions": (
        lambda i: _replace(i, probe_positions=_positions(i, keep=slice(0, 23))),
        "25 diffraction patterns but 23 probe positions; a ReconstructInput pairs them row by row",
        "they are paired by scan index, one position per pattern: 2 pattern(s) have no position "
        "(first: [23, 24])",
    ),
    "NaN pattern": (
        lambda i: _replace(i, _nan(i)),
        "1 diffraction pattern(s) hold NaN or Inf values (first: row 4, scan index 4)",
        "(first: row 4, scan index 4)",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_error_and_nothing_is_written(
    case: str, small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    make, says, cli_says = BAD_INPUTS[case]
    good = ptychodus_input(small)
    bad = make(good)
    reconstructor = OnnxReconstructor()
    reconstructor.load_model_from_file(built.out)
    with pytest.raises(PtychodusInputError) as info:
        list(reconstructor.reconstruct(bad))
    assert says in str(info.value)
    if case == "more patterns than positions":  # the files pair by scan index
        bad = ReconstructInput(good.diffraction_patterns, good.bad_pixels, bad.product)
    product, patterns = write_ptychodus_files(bad, tmp_path / "in")
    out = tmp_path / "out.h5"
    run = export_cli(
        "predict", "--artifacts", str(built.out), "--product", str(product),
        "--data", str(patterns), "--out", str(out),
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and cli_says in errors[0], run.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.h5*"))


def test_a_multi_mode_probe_says_that_no_mode_is_used_and_is_kept(
    small: PtychoData, built: BuildResult, caplog: pytest.LogCaptureFixture
) -> None:
    inp = ptychodus_input(small, modes=3)
    reconstructor = OnnxReconstructor()
    reconstructor.load_model_from_file(built.out)
    with caplog.at_level(logging.WARNING):
        (output,) = reconstructor.reconstruct(inp)
    assert "the product's probe has 3 incoherent mode(s)" in caplog.text
    assert "no mode of the product's probe is used" in caplog.text
    assert np.array_equal(output.product.probes.get_array(), inp.product.probes.get_array())


def test_an_h5_out_without_a_product_is_a_usage_error(built: BuildResult, tmp_path: Path) -> None:
    scan = write_npz(simulate_scan(SimulationConfig(seed=1, n_images=4)), tmp_path / "s.npz")
    out = tmp_path / "o.h5"
    run = export_cli(
        "predict", "--artifacts", str(built.out), "--data", str(scan), "--out", str(out)
    )
    assert run.returncode == 2 and "written only with --product PRODUCT.h5" in run.stderr
    assert not out.exists()


# --- model files, registration ------------------------------------------------------------------


def test_a_packed_archive_loads_and_save_model_writes_one(
    small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    folder = OnnxReconstructor()
    folder.load_model_from_file(built.out / "manifest.json")
    archive = tmp_path / "model.tar.gz"
    folder.save_model(archive)  # python -m export pack's archive
    packed = OnnxReconstructor()
    packed.load_model_from_file(archive)
    assert packed.is_model_loaded() and packed.get_model_file_extension() == ".tar.gz"
    inp = ptychodus_input(small)
    (a,) = folder.reconstruct(inp)
    (b,) = packed.reconstruct(inp)
    assert np.array_equal(a.product.object_.get_array(), b.product.object_.get_array())


def test_the_library_registers_one_subprocess_reconstructor_with_a_device_setting() -> None:
    registry = SettingsRegistry()
    library = PtychoPINNOnnxLibrary(registry, False)
    (reconstructor,) = library
    assert library.name == "PtychoPINN ONNX" and reconstructor.name == "ONNX"
    assert isinstance(reconstructor, TrainableReconstructor)
    assert reconstructor.get_model_file_filter().startswith("PtychoPINN ONNX artifacts")
    assert not reconstructor.is_model_loaded()
    with pytest.raises(NotImplementedError, match="--data TRAINING.npz"):
        next(iter(reconstructor.train(Path("in"), Path("out"))))


def test_a_bad_device_setting_is_one_error_naming_the_devices_before_a_child_starts(
    small: PtychoData, built: BuildResult
) -> None:
    registry = SettingsRegistry()
    (reconstructor,) = PtychoPINNOnnxLibrary(registry, False)
    registry["PtychoPINNOnnx"].parameters()["Device"].set_value("gpu")
    reconstructor.load_model_from_file(built.out)
    expected = r"the PtychoPINNOnnx Device setting must be one of cpu, cuda, got 'gpu'"
    with pytest.raises(ManifestError, match=expected):
        next(iter(reconstructor.reconstruct(ptychodus_input(small))))


# --- torch-free, and without ptychodus ---------------------------------------------------------

# Installed as sitecustomize in every process of the run (the spawned Ptychodus child included):
# importing any of BLOCKED fails as a package that is not installed does.
BLOCKER = """
import sys
BLOCKED = {blocked!r}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""

TORCH_FREE_RUN = """
import sys
from pathlib import Path
import numpy as np
from ptychodus.api.io import load_product
from ptychodus.api.reconstruct import ReconstructInput

artifacts, product, data, out = map(Path, sys.argv[1:5])
with np.load(data) as f:
    inp = ReconstructInput(f["patterns"], f["bad_pixels"], load_product(product))

# Ptychodus's process: the library runs the model in a child, never loading ONNX Runtime here
from export.ptychodus.library import PtychoPINNOnnxLibrary
(child,) = PtychoPINNOnnxLibrary()
child.load_model_from_file(artifacts)
(output,) = child.reconstruct(inp)
assert "onnxruntime" not in sys.modules, "the parent loaded ONNX Runtime"

from export.ptychodus.reconstructor import OnnxReconstructor
here = OnnxReconstructor()
here.load_model_from_file(artifacts)
(same,) = here.reconstruct(inp)
assert (same.product.object_.get_array() == output.product.object_.get_array()).all()

loaded = [m for m in ("torch", "lightning", "tensorflow", "keras", "onnx") if m in sys.modules]
assert not loaded, loaded
print("torch-free OK")
"""


def _blocked_run(
    blocked: set[str], code: str | None, *args: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` (or ``python -m export ARGS``) where importing ``blocked`` fails."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(blocked)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run(
        [sys.executable, *(["-m", "export"] if code is None else ["-c", code]), *map(str, args)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.slow  # three fresh interpreters (the spawned child too), ~8 s CPU
def test_the_ptychodus_path_runs_with_torch_lightning_and_tensorflow_blocked(
    small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    product, patterns = write_ptychodus_files(ptychodus_input(small), tmp_path / "in")
    out = tmp_path / "out.h5"
    proc = _blocked_run(
        {"torch", "lightning", "tensorflow", "keras", "onnx", "onnxscript"},
        TORCH_FREE_RUN, built.out, product, patterns, out, tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and "torch-free OK" in proc.stdout, proc.stderr
    proc = _blocked_run(
        {"torch", "lightning", "tensorflow", "keras", "onnx", "onnxscript"}, None,
        Path("predict"), Path("--artifacts"), built.out, Path("--product"), product,
        Path("--data"), patterns, Path("--out"), out, tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "predicted 25 patterns in" in proc.stdout and out.is_file()


def test_without_ptychodus_the_ptychodus_path_is_exit_3_with_the_install_line(
    small: PtychoData, built: BuildResult, tmp_path: Path
) -> None:
    product, patterns = write_ptychodus_files(ptychodus_input(small), tmp_path / "in")
    out = tmp_path / "out.h5"
    proc = _blocked_run(
        {"ptychodus"}, None, Path("predict"), Path("--artifacts"), built.out,
        Path("--product"), product, Path("--data"), patterns, Path("--out"), out,
        tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "pip install -c constraints.txt -e '.[ptychodus]'" in proc.stderr
    assert not out.exists()
