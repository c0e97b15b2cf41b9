from __future__ import annotations

import numpy as np
import pytest
import torch

from ptycho_torch.config import ModelConfig
from ptycho_torch.model import PtychoPINN
from ptycho_torch.physics import extract_patches, reassemble_patches, translation_weights
from tests.conftest import conv_parameter_count


def test_parameter_count_matches_tensorflow_original() -> None:
    model = PtychoPINN(ModelConfig(N=64, gridsize=1, n_filters_scale=2))
    assert conv_parameter_count(model) == 2_331_772


def test_intensity_scale_is_saved_in_state_dict() -> None:
    model = PtychoPINN(ModelConfig(intensity_scale=3.5))
    state = model.state_dict()
    assert "log_scale" in state
    assert float(state["log_scale"].exp()) == pytest.approx(3.5)
    assert not model.log_scale.requires_grad


@pytest.mark.parametrize("n", [64, 128])
@pytest.mark.parametrize("gridsize", [1, 2])
def test_predict_and_physics_shapes_and_dtypes(n: int, gridsize: int) -> None:
    model = PtychoPINN(ModelConfig(N=n, gridsize=gridsize, n_filters_scale=1)).eval()
    c = gridsize * gridsize
    x = torch.rand(2, c, n, n)
    with torch.no_grad():
        amplitude, phase = model.predict(x)
        _, _, pred = model(x, torch.zeros(2, c, 2))
    assert amplitude.shape == phase.shape == (2, c, n, n)
    assert amplitude.dtype == phase.dtype == torch.float32
    assert float(phase.abs().max()) <= np.pi
    assert pred.shape == (2, c, n, n) and pred.dtype == torch.float32


def test_border_mask_zero_in_centre_one_outside() -> None:
    model = PtychoPINN(ModelConfig(N=64))
    mask = model.amplitude_decoder.head.border_mask
    assert float(mask[16:48, 16:48].sum()) == 0.0
    assert float(mask.sum()) == 64 * 64 - 32 * 32


def test_translation_weights_integer_shift_is_exact_translation() -> None:
    # source coordinate u - 1: content moves by +1 pixel, zero fill
    m = translation_weights(torch.arange(8.0) - 1.0, first=2, n_in=4)
    signal = torch.arange(1.0, 5.0)
    assert (m @ signal).tolist() == [0, 0, 0, 1, 2, 3, 4, 0]


def test_translation_weights_fractional_shift_interpolates_linearly() -> None:
    m = translation_weights(torch.tensor([0.25, 1.5]), first=0, n_in=3)
    assert m.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5]]


def test_reassembly_divides_by_centre_masks_plus_eps() -> None:
    # one patch of ones at gridsize 1: centre / 1.001, border x 1000 (the original's quirk)
    n, canvas = 64, 74
    ones = torch.ones(1, 1, n, n)
    re, im = reassemble_patches(ones, torch.zeros_like(ones), torch.zeros(1, 1, 2), canvas)
    assert re.shape == (1, canvas, canvas)
    assert float(re[0, 37, 37]) == pytest.approx(1 / 1.001, rel=1e-6)
    assert float(re[0, 6, 6]) == pytest.approx(1000.0, rel=1e-6)
    assert float(re[0, 0, 0]) == 0.0 and float(im.abs().max()) == 0.0


def test_extraction_inverts_placement_for_integer_offsets() -> None:
    n, canvas = 8, 20
    patch = torch.rand(1, 1, n, n)
    offsets = torch.tensor([[[3.0, -2.0]]])
    # place by hand at +offset, then cut out at +offset
    board = torch.zeros(1, canvas, canvas)
    a = (canvas - n) // 2
    board[0, a - 2 : a - 2 + n, a + 3 : a + 3 + n] = patch[0, 0]
    re, _ = extract_patches(board, torch.zeros_like(board), offsets, n)
    assert torch.equal(re, patch)


def test_unknown_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match="amp_activation"):
        ModelConfig(amp_activation="gelu")


@pytest.mark.parametrize("bad", [dict(N=32), dict(gridsize=0), dict(n_filters_scale=0)])
def test_config_rejects_invalid_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        ModelConfig(**bad)


def test_model_is_scriptable() -> None:
    model = PtychoPINN(ModelConfig(N=64, gridsize=2, n_filters_scale=1)).eval()
    scripted = torch.jit.script(model)
    x, offsets = torch.rand(1, 4, 64, 64), torch.randn(1, 4, 2)
    for a, b in zip(model(x, offsets), scripted(x, offsets)):
        assert torch.equal(a, b)


def test_gaussian_kernel_is_the_originals_3x3_softmax() -> None:
    from ptycho_torch.physics import gaussian_kernel

    k = gaussian_kernel(1.0)
    k1 = torch.softmax(-torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / 2.0, dim=0)
    assert torch.allclose(k, torch.outer(k1, k1).float())
    assert float(k.sum()) == pytest.approx(1.0)
    assert float(k1[0]) == pytest.approx(0.274, abs=1e-3)


def test_smoothing_then_mask_apply_to_the_exit_wave() -> None:
    from ptycho_torch.physics import diffraction_amplitude, gaussian_kernel, gaussian_smooth

    config = ModelConfig(N=64, n_filters_scale=1, gaussian_smoothing_sigma=0.8, probe_mask=True)
    model = PtychoPINN(config).eval()
    amp, phase = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        steps = model.physics_steps(amp, phase, torch.zeros(1, 1, 2))
        plain = PtychoPINN(ModelConfig(N=64, n_filters_scale=1)).eval()
        raw = plain.physics_steps(amp, phase, torch.zeros(1, 1, 2))
    k = gaussian_kernel(0.8)
    expect_re = gaussian_smooth(raw["illuminated_re"], k) * model.disk_mask
    expect_im = gaussian_smooth(raw["illuminated_im"], k) * model.disk_mask
    assert torch.allclose(steps["illuminated_re"], expect_re)
    assert torch.allclose(steps["illuminated_im"], expect_im)
    assert float(steps["illuminated_re"][..., 0, 0].abs()) == 0.0  # outside the disk
    assert torch.allclose(
        steps["pred_amplitude_unscaled"], diffraction_amplitude(expect_re, expect_im)
    )


def test_reflect_padding_does_not_repeat_the_edge() -> None:
    from ptycho_torch.physics import gaussian_smooth

    x = torch.zeros(1, 5, 5)
    x[0, 0, 2] = 1.0  # on the top edge: reflect mirrors row 1 above it, not row 0
    k = torch.zeros(3, 3)
    k[0, 1] = 1.0  # output[r] = input[r - 1]
    out = gaussian_smooth(x, k)
    assert float(out[0, 1, 2]) == 1.0 and float(out[0, 0, 2]) == 0.0


def test_object_big_off_pads_one_patch_without_mask_division() -> None:
    config = ModelConfig(N=64, gridsize=2, n_filters_scale=1, object_big=False)
    model = PtychoPINN(config).eval()
    amp, phase = torch.rand(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    offsets = torch.tensor([[[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]])
    with torch.no_grad():
        steps = model.physics_steps(amp, phase, offsets)
    assert torch.equal(steps["trimmed_obj_re"][0], amp[0, 0])  # no x1000, no /1.001
    assert steps["extracted_re"].shape == (1, 4, 64, 64)
    # channel 0 is cut 2 px to the right: column j holds the patch's column j + 2
    assert torch.equal(steps["extracted_re"][0, 0, :, :60], amp[0, 0, :, 2:62])
