from __future__ import annotations

import numpy as np
import pytest
import torch

from ptycho_torch.config import ModelConfig
from ptycho_torch.model import PtychoPINN, conv_parameter_count
from ptycho_torch.physics import overlap_constraint, shift_matrix


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
    amplitude, phase = model.predict(x)
    assert amplitude.shape == phase.shape == (2, c, n, n)
    assert amplitude.dtype == phase.dtype == torch.float32
    assert float(phase.abs().max()) <= np.pi
    _, _, pred = model(x, torch.zeros(2, c, 2))
    assert pred.shape == (2, c, n, n) and pred.dtype == torch.float32


def test_border_mask_zero_in_centre_one_outside() -> None:
    model = PtychoPINN(ModelConfig(N=64))
    mask = model.amplitude_decoder.head.border_mask
    assert float(mask[16:48, 16:48].sum()) == 0.0
    assert float(mask.sum()) == 64 * 64 - 32 * 32


def test_shift_matrix_integer_shift_is_exact_translation() -> None:
    m = shift_matrix(8, 4, torch.tensor(1.0))
    signal = torch.arange(1.0, 5.0)
    assert (m @ signal).tolist() == [0, 0, 0, 1, 2, 3, 4, 0]


def test_overlap_constraint_is_identity_for_consistent_patches() -> None:
    obj = torch.rand(1, 1, 96, 96)
    offsets = torch.tensor([[[-3.0, 0.0], [3.0, 0.0], [0.0, -3.0], [0.0, 3.0]]])
    from ptycho_torch.physics import extract_patches

    re, im = extract_patches(obj[0], torch.zeros_like(obj[0]), offsets, 64)
    re2, im2 = overlap_constraint(re, im, offsets, 128)
    assert torch.allclose(re2[..., 8:-8, 8:-8], re[..., 8:-8, 8:-8], atol=1e-5)


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
