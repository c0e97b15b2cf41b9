"""The exported ONNX model inside Ptychodus (issue 22): files Ptychodus writes, its Reconstructor
API, its subprocess model and ``python -m export predict --product``, all torch-free.

A scan is simulated, given a Ptychodus object geometry (pixel size, centre, a margin around the
ground-truth object) and written with Ptychodus's own writers; the tests hold what comes back to
``export predict`` on the same scan in our NPZ format and to the ground-truth object's place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
from ptychodus.plugins.npz_diffraction_file import NPZDiffractionFileIO  # noqa: E402

from export.predict import Predictor  # noqa: E402
from export.ptychodus.library import PtychoPINNOnnxLibrary  # noqa: E402
from export.ptychodus.model_file import PROGRESS_GOAL  # noqa: E402
from export.ptychodus.reconstructor import OnnxReconstructor  # noqa: E402
from ptycho_torch.scan import PtychoData, ScanReader  # noqa: E402
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
        [SimpleDiffractionArray("scan", inp.product.probe_positions.get_indexes(), patterns)],
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
    from export.build import BuildOptions, build

    return build(BuildOptions(out=tmp_path_factory.mktemp("demo") / "artifacts"))


@pytest.fixture(scope="module")
def small() -> PtychoData:
    """25 patterns with objectGuess: for the fast tests on ``built``."""
    return simulate_scan(SimulationConfig(seed=6, n_images=25))


# --- done when ---------------------------------------------------------------------------------


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


@pytest.mark.parametrize("kind", ["ptychodus", "original"])
def test_train_infer_build_and_predict_read_ptychodus_and_original_training_files(
    kind: str,
    small: PtychoData,
    built: BuildResult,
    model_file: Path,
    fast_export: None,
    tmp_path: Path,
) -> None:
    from export.build import BuildOptions, build
    from ptycho_torch.commands import infer, train

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

    code = train.main(
        ["--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1",
         "--n-filters-scale", "1", "--batch-size", "8", "--threads", "2", "--no-progress"]
    )  # fmt: skip
    assert code == 0 and (tmp_path / "run" / "model.pt").is_file()
    code = infer.main(
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
