"""The physics forward reproduces the original TensorFlow PtychoPINN's own arrays, step by step.

Fed the original's object-head outputs (``amplitude``, ``phase``) and positions, every
intermediate of :meth:`PtychoPINN.physics_steps` must match the tensor the original computed
(``../shared/reference/ptychopinn-tf/<case>/outputs.npz``) within float32 round-off: max abs
error <= 2e-6 of the array's peak magnitude. A regression names the step that broke.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ptycho_torch.config import ModelConfig
from ptycho_torch.fast_step import poisson_nll
from ptycho_torch.model import PtychoPINN

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "ptychopinn-tf"
CASES = {"n64-gs1": 1, "n64-gs2": 2}
REL = 2e-6

pytestmark = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"original TensorFlow PtychoPINN fixtures not found at {FIXTURES}",
)


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _complex(outputs: dict[str, np.ndarray], key: str) -> np.ndarray:
    return outputs[f"{key}_real"] + 1j * outputs[f"{key}_imag"]


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> dict:
    name = request.param
    folder = FIXTURES / name
    with np.load(folder / "inputs.npz", allow_pickle=False) as f:
        inputs = {k: f[k] for k in f.files}
    with np.load(folder / "outputs.npz", allow_pickle=False) as f:
        outputs = {k: f[k] for k in f.files}
    with np.load(folder / "probe.npz", allow_pickle=False) as f:
        probe = {k: f[k] for k in f.files}
    scale = float(inputs["input_scale"])
    model = PtychoPINN(
        ModelConfig(N=64, gridsize=CASES[name], n_filters_scale=2, intensity_scale=scale)
    )
    model.set_probe(probe["probe_guess"])
    amplitude = torch.from_numpy(_nchw(outputs["amplitude"]))
    phase = torch.from_numpy(_nchw(outputs["phase"]))
    # the original's positions (B, 1, 2, C) are minus our offsets (B, C, 2)
    offsets = torch.from_numpy(np.ascontiguousarray(-inputs["positions"][:, 0].transpose(0, 2, 1)))
    with torch.no_grad():
        steps = {k: v.numpy() for k, v in model.physics_steps(amplitude, phase, offsets).items()}
    return {
        "name": name,
        "model": model,
        "inputs": inputs,
        "outputs": outputs,
        "probe": probe,
        "steps": steps,
    }


def _assert_close(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} != original {ref.shape}"
    peak = float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max())
    print(f"{name}: max_abs={err:.3g} peak={peak:.4g} rel={err / peak:.2g}")  # pytest -s
    assert err <= REL * peak, f"{name}: max abs error {err:.3g} > {REL:g} x peak {peak:.4g}"


def test_probe_normalisation_is_bit_identical(case: dict) -> None:
    model, probe = case["model"], case["probe"]
    ours = model.probe_re.numpy() + 1j * model.probe_im.numpy()
    assert np.array_equal(ours.astype(np.complex64), probe["probe"])


def test_log_scale_is_ln_of_the_untrained_intensity_scale(case: dict) -> None:
    assert float(case["model"].log_scale) == pytest.approx(6.895896911621094, abs=0)


@pytest.mark.parametrize(
    ("step", "key", "flat"),
    [
        ("obj", "obj", False),
        ("padded_obj", "padded_obj", False),
        ("trimmed_obj", "d2o_object", False),
        ("extracted", "extracted_patches", True),
        ("illuminated", "illuminated", True),
    ],
)
def test_complex_intermediates_match_the_original(
    case: dict, step: str, key: str, flat: bool
) -> None:
    steps, outputs = case["steps"], case["outputs"]
    ours = steps[f"{step}_re"] + 1j * steps[f"{step}_im"]
    ref = _complex(outputs, key)
    if flat:  # (B*C, N, N, 1), index b*C + c
        ref = ref[..., 0].reshape(ours.shape)
    elif ref.shape[-1] == 1 and ours.ndim == 3:  # canvas (B, M, M, 1)
        ref = ref[..., 0]
    else:
        ref = _nchw(ref)
    _assert_close(f"{case['name']} {step}", ours, ref)


@pytest.mark.parametrize("key", ["pred_amplitude_unscaled", "pred_amplitude"])
def test_predicted_amplitude_matches_the_original(case: dict, key: str) -> None:
    _assert_close(f"{case['name']} {key}", case["steps"][key], _nchw(case["outputs"][key]))


def test_poisson_nll_matches_the_originals_negloglik(case: dict) -> None:
    pred = torch.from_numpy(case["steps"]["pred_amplitude"])
    target = torch.from_numpy(_nchw(case["inputs"]["diffraction"]))
    ours = float(poisson_nll(pred, target))
    ref = float(case["outputs"]["negloglik_mean"])
    assert ours == pytest.approx(ref, rel=2e-6)


def test_gridsize_two_canvas_loses_what_falls_off() -> None:
    # the original's canvas leaves (padded_size - N)/2 = 7 px of margin, less than the offsets
    assert ModelConfig(N=64, gridsize=2).padded_size == 78
    with np.load(FIXTURES / "n64-gs2" / "inputs.npz", allow_pickle=False) as f:
        assert float(np.abs(f["positions"]).max()) > (78 - 64) / 2


# Steps linear in the object patches inherit the object head's float32 rounding: gs1's phase
# border path (unbounded swish) is ~3e-6 rad from float64 in both the original and here,
# times amplitudes of ~600, so these steps get the amplitude + phase budget (2e-6 + 4e-6).
OBJECT_STEPS = {"obj": "obj", "padded_obj": "padded_obj", "trimmed_obj": "d2o_object"}
OBJECT_REL = 6e-6


def test_imported_model_forward_matches_the_original_end_to_end(case: dict, capsys) -> None:
    from ptycho_torch.import_tf import import_archive, import_weights

    folder = FIXTURES / case["name"]
    if (folder / "wts.h5.zip").is_file():
        model = import_archive(folder / "wts.h5.zip").model
    else:
        model = import_weights(
            folder / "model.weights.h5", config=folder / "config.json", probe=folder / "probe.npz"
        ).model
    inputs, outputs = case["inputs"], case["outputs"]
    x = torch.from_numpy(_nchw(inputs["diffraction"]))
    offsets = torch.from_numpy(np.ascontiguousarray(-inputs["positions"][:, 0].transpose(0, 2, 1)))
    with torch.no_grad():
        amplitude, phase = model.predict(x)
        steps = {k: v.numpy() for k, v in model.physics_steps(amplitude, phase, offsets).items()}
    b, c = offsets.shape[:2]
    rows = []
    for step, key in OBJECT_STEPS.items():
        ours = steps[f"{step}_re"] + 1j * steps[f"{step}_im"]
        ref = _complex(outputs, key)
        ref = ref[..., 0] if ours.ndim == 3 else _nchw(ref)
        rows.append((step, ours, ref, OBJECT_REL))
    for step, key in (("extracted", "extracted_patches"), ("illuminated", "illuminated")):
        ours = steps[f"{step}_re"] + 1j * steps[f"{step}_im"]
        ref = _complex(outputs, key)[..., 0].reshape(b, c, 64, 64)
        rows.append((step, ours, ref, OBJECT_REL if step == "extracted" else REL))
    for key in ("pred_amplitude_unscaled", "pred_amplitude"):
        rows.append((key, steps[key], _nchw(outputs[key]), REL))
    rows.append(("amplitude", amplitude.numpy(), _nchw(outputs["amplitude"]), REL))
    failures = []
    for step, ours, ref, rel in rows:
        peak = float(np.abs(ref).max())
        err = float(np.abs(ours - ref).max())
        print(
            f"{case['name']} eager {step:24s} max_abs={err:.3g} peak={peak:.4g} rel={err / peak:.2g}"
        )
        if not err <= rel * peak:
            failures.append(f"{step}: {err / peak:.3g} of peak > {rel:g}")
    phase_err = float(np.abs(phase.numpy() - _nchw(outputs["phase"])).max())
    print(f"{case['name']} eager phase max_abs={phase_err:.3g} rad")
    assert phase_err <= 4e-6 + 1e-6 * float(np.abs(outputs["phase"]).max())
    assert not failures, failures
