"""The TensorFlow twin against eager PyTorch, weight transfer both ways, and the reference writer.

Tolerances are measured, not guessed (``pytest tests/parity/test_tf_twin.py -s`` prints them).
On CPU (TF 2.21, torch 2.13, oneDNN on or off alike) the object head differs by at most
1.8e-7 (two float32 ulps of a sigmoid output near 0.5), so ``OBJECT_ATOL = 1e-6``. The physics
head (the original's forward: reassembly on the padded canvas over centre masks + 0.001,
extraction, probe, far field) differs by at most 4.6e-7 relative to the peak of the diffraction
amplitude over the configurations below (probe mask, exit-wave smoothing and object_big off
included), the size of either framework's distance from a float64 FFT (float32 FFT round-off
grows with the magnitude), so ``pred_amplitude`` and every intermediate step are held to
``PHYSICS_RTOL = 1e-6`` of their peak. Agreement with the ORIGINAL TensorFlow PtychoPINN's own
arrays is tested in ``test_tf_twin_original.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.errors import SignatureError
from parity.reference import load_reference
from ptycho_torch.checkpoint import load_model, model_state_sha256, save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.digest import arrays_sha256
from ptycho_torch.model import PtychoPINN
from tests.conftest import conv_parameter_count as torch_conv_parameter_count
from tests.parity.twin_helpers import twin_conv_parameter_count, twin_intermediates

pytestmark = pytest.mark.tf

OBJECT_ATOL = 1e-6
PHYSICS_RTOL = 1e-6


def _model(config: ModelConfig, seed: int = 0) -> PtychoPINN:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = rng.normal(size=(config.N, config.N)) + 1j * rng.normal(size=(config.N, config.N))
    return PtychoPINN(config, probe=probe.astype(np.complex64)).eval()


def _feed(config: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    n, c = config.N, config.C
    return {
        "diffraction": (rng.random((batch, c, n, n)) * 30).astype(np.float32),
        "positions": rng.uniform(-6.5, 6.5, size=(batch, c, 2)).astype(np.float32),  # non-integer
    }


def _eager(model: PtychoPINN, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with torch.inference_mode():
        outs = model(torch.from_numpy(feed["diffraction"]), torch.from_numpy(feed["positions"]))
    return {k: t.numpy() for k, t in zip(("amplitude", "phase", "pred_amplitude"), outs)}


def _id(config: ModelConfig) -> str:
    flags = [f for f in ("probe_big", "pad_object", "object_big") if not getattr(config, f)]
    name = f"N{config.N}-g{config.gridsize}-s{config.n_filters_scale}-{config.amp_activation}"
    return "-".join([name] + [f"no_{f}" for f in flags])


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _sweep(configs: list[ModelConfig], fast: int = 0) -> list[object]:
    """One configuration of a sweep runs by default (``configs[fast]``), all with --runslow."""
    return [
        c if i == fast else pytest.param(c, marks=pytest.mark.slow) for i, c in enumerate(configs)
    ]


PARAMETER_CONFIGS = [
    ModelConfig(N=n, gridsize=g, n_filters_scale=s)
    for n in (64, 128)
    for g in (1, 2)
    for s in (1, 2)
] + [
    ModelConfig(N=256, n_filters_scale=1),
    ModelConfig(probe_big=False, n_filters_scale=1),
    ModelConfig(pad_object=False, n_filters_scale=1),
    ModelConfig(gridsize=2, object_big=False, n_filters_scale=1),
]


@pytest.mark.parametrize("config", _sweep(PARAMETER_CONFIGS), ids=_id)
def test_twin_parameter_count_equals_pytorch(config: ModelConfig) -> None:
    from parity.tf_twin.model import build_twin

    assert twin_conv_parameter_count(build_twin(config)) == torch_conv_parameter_count(
        PtychoPINN(config)
    )


def test_twin_parameter_count_matches_tensorflow_original() -> None:
    from parity.tf_twin.model import build_twin

    assert twin_conv_parameter_count(build_twin(ModelConfig(N=64, gridsize=1))) == 2_331_772


AGREEMENT_CONFIGS = [
    ModelConfig(n_filters_scale=1, intensity_scale=20.0),
    ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0),
    ModelConfig(N=128, n_filters_scale=1, intensity_scale=5.0),
    ModelConfig(probe_big=False, n_filters_scale=1, amp_activation="relu"),
    ModelConfig(pad_object=False, n_filters_scale=1, amp_activation="swish"),
    ModelConfig(gridsize=2, object_big=False, n_filters_scale=1, amp_activation="softplus"),
]


@pytest.mark.parametrize("config", _sweep(AGREEMENT_CONFIGS, fast=1), ids=_id)  # gridsize 2
def test_twin_object_head_matches_eager_pytorch(config: ModelConfig) -> None:
    from parity.tf_twin.generate import twin_predict

    model, feed = _model(config), _feed(config)
    expected = _eager(model, feed)
    got = twin_predict(config, model.state_dict(), {"diffraction": feed["diffraction"]}, "object")
    assert list(got) == ["amplitude", "phase"]
    for name, value in got.items():
        assert value.dtype == np.float32 and value.shape == expected[name].shape
        err = _max_abs(value, expected[name])
        print(f"object  {name:9s} N={config.N} g={config.gridsize} max_abs={err:.2e}")
        assert err <= OBJECT_ATOL, name


PHYSICS_CONFIGS = [
    ModelConfig(n_filters_scale=1, intensity_scale=20.0),
    ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0),
    ModelConfig(N=256, n_filters_scale=1, intensity_scale=20.0),
    # not covered by the original's fixtures: the twin and eager PyTorch, each written from the
    # original's behaviour, must agree
    ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0, probe_mask=True),
    ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0, gaussian_smoothing_sigma=0.7),
    ModelConfig(
        n_filters_scale=1, intensity_scale=20.0, probe_mask=True, gaussian_smoothing_sigma=1.5
    ),
    ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0, object_big=False),
    ModelConfig(gridsize=3, n_filters_scale=1, intensity_scale=20.0, max_position_jitter=6),
]


def _physics_id(config: ModelConfig) -> str:
    extras = [("mask", config.probe_mask), ("smooth", config.gaussian_smoothing_sigma)]
    return "-".join([_id(config)] + [f"{name}{value}" for name, value in extras if value])


@pytest.mark.parametrize("config", _sweep(PHYSICS_CONFIGS, fast=1), ids=_physics_id)
def test_twin_physics_head_matches_eager_pytorch(config: ModelConfig) -> None:
    from parity.tf_twin.generate import twin_predict

    n, gridsize = config.N, config.gridsize
    model, feed = _model(config, seed=3), _feed(config, batch=1 if n > 128 else 2, seed=3)
    expected = _eager(model, feed)
    got = twin_predict(config, model.state_dict(), feed, "physics")
    assert list(got) == ["amplitude", "phase", "pred_amplitude"]
    for name, value in got.items():
        assert value.dtype == np.float32 and value.shape == expected[name].shape
        err = _max_abs(value, expected[name])
        peak = float(np.abs(expected[name]).max())
        print(f"physics {name:14s} N={n} g={gridsize} max_abs={err:.2e} peak={peak:.3g}")
        limit = PHYSICS_RTOL * peak if name == "pred_amplitude" else OBJECT_ATOL
        assert err <= limit, name


# twin step -> eager PyTorch ``physics_steps`` key (complex steps as ``_re``/``_im`` pairs there)
EAGER_STEPS = {
    "obj": "obj",
    "padded_obj": "padded_obj",
    "trimmed_obj": "trimmed_obj",
    "extracted_patches": "extracted",
    "illuminated": "illuminated",
    "pred_amplitude_unscaled": "pred_amplitude_unscaled",
    "pred_amplitude": "pred_amplitude",
}


@pytest.mark.slow  # the step-by-step diagnosis of what the physics-head test checks at the end
def test_twin_intermediates_match_eager_pytorch_step_by_step() -> None:
    config = ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0)
    model, feed = _model(config, seed=5), _feed(config, seed=5)
    steps = twin_intermediates(config, model.state_dict(), feed)
    with torch.inference_mode():
        x, offsets = (torch.from_numpy(feed[k]) for k in ("diffraction", "positions"))
        eager = model.physics_steps(*model.predict(x), offsets)
    failures = []
    for step, key in EAGER_STEPS.items():
        if f"{key}_re" in eager:
            expected = eager[f"{key}_re"].numpy() + 1j * eager[f"{key}_im"].numpy()
        else:
            expected = eager[key].numpy()
        got = steps[step].reshape(expected.shape)  # canvases: (B, 1, M, M) here, (B, M, M) there
        parts = (np.real, np.imag) if np.iscomplexobj(expected) else (np.real,)
        err = max(_max_abs(part(got), part(expected)) for part in parts)
        peak = float(np.abs(expected).max())
        print(f"step {step:24s} max_abs={err:.2e} peak={peak:.3g}")
        if err > PHYSICS_RTOL * peak:
            failures.append(step)
    assert not failures, f"twin and eager PyTorch part at {failures}"


def test_a_canvas_the_original_cannot_build_is_rejected_before_the_twin() -> None:
    with pytest.raises(ValueError, match="must be even"):  # 64 + 3 + 10: odd margin
        ModelConfig(gridsize=2, offset=3, n_filters_scale=1)


def test_reassembly_moves_each_patch_by_plus_its_offset() -> None:
    import tensorflow as tf

    from parity.tf_twin.canvas import extract, reassemble

    n, canvas = 64, 78
    patches = np.zeros((1, 2, n, n), np.float32)
    patches[0, :, 32, 32] = 1.0  # where both centre masks land: divided by 2 + 0.001
    offsets = np.array([[[3.0, -2.0], [-3.0, 2.0]]], np.float32)  # (x, y), mean zero
    re, _ = reassemble(tf.constant(patches), tf.zeros_like(patches), tf.constant(offsets), canvas)
    field = np.asarray(re)[0]
    margin = (canvas - n) // 2
    assert field[margin + 32 - 2, margin + 32 + 3] == pytest.approx(1 / 2.001, rel=1e-6)  # (y, x)
    assert field[margin + 32 + 2, margin + 32 - 3] == pytest.approx(1 / 2.001, rel=1e-6)
    back, _ = extract(re, tf.zeros_like(re), tf.constant(offsets), n)
    np.testing.assert_allclose(np.asarray(back)[0, :, 32, 32], 1 / 2.001, rtol=1e-6)


def test_gridsize_one_divides_the_centre_by_1_001_and_multiplies_the_border_by_1000() -> None:
    import tensorflow as tf

    from parity.tf_twin.canvas import reassemble

    ones = tf.ones((1, 1, 64, 64))
    re, im = reassemble(ones, ones, tf.zeros((1, 1, 2)), 74)
    field = np.asarray(re)[0, 5:69, 5:69]
    np.testing.assert_allclose(field[16:48, 16:48], 1 / 1.001, rtol=1e-6)
    np.testing.assert_allclose(field[:16], 1000.0, rtol=1e-6)
    assert np.array_equal(np.asarray(re), np.asarray(im))
    assert np.asarray(re)[0, :5].max() == 0.0  # the margin outside the patch stays empty


def test_smoothing_is_a_reflect_padded_3x3_gaussian_of_the_exit_wave() -> None:
    import tensorflow as tf

    from parity.tf_twin.physics import illuminate

    rng = np.random.default_rng(0)
    re, im, probe_re, probe_im = (rng.normal(size=(8, 8)).astype(np.float32) for _ in range(4))
    sigma = 0.9
    got_re, got_im = illuminate(
        *(tf.constant(a[None, None]) for a in (re, im)),
        tf.constant(probe_re),
        tf.constant(probe_im),
        smoothing_sigma=sigma,
    )
    exit_wave = (re + 1j * im).astype(np.complex128) * (probe_re + 1j * probe_im)
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * sigma**2))
    taps /= taps.sum()
    padded = np.pad(exit_wave, 1, mode="reflect")  # mirror without repeating the edge
    expected = sum(
        taps[i] * taps[j] * padded[i : i + 8, j : j + 8] for i in range(3) for j in range(3)
    )
    np.testing.assert_allclose(np.asarray(got_re)[0, 0], expected.real, atol=1e-5)
    np.testing.assert_allclose(np.asarray(got_im)[0, 0], expected.imag, atol=1e-5)


def test_twin_rejects_float64_feed() -> None:
    from parity.tf_twin.generate import twin_predict

    config = ModelConfig(n_filters_scale=1)
    feed = {"diffraction": _feed(config)["diffraction"].astype(np.float64)}
    with pytest.raises(SignatureError, match="float64"):
        twin_predict(config, _model(config).state_dict(), feed, "object")


def test_keras_weights_round_trip_through_pytorch_is_bitwise(tmp_path: Path) -> None:
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import (
        keras_weights_to_model_file,
        load_torch_state,
        twin_state_dict,
    )

    config = ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=7.0)
    original = build_twin(config)  # Keras initialisers: weights no PyTorch code has touched
    original.save_weights(tmp_path / "twin.weights.h5")
    keras_weights_to_model_file(tmp_path / "twin.weights.h5", config, tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt")
    back = build_twin(config)
    load_torch_state(back, model.state_dict())
    for a, b in zip(original.weights, back.weights, strict=True):
        assert a.path == b.path
        assert np.asarray(a.numpy()).tobytes() == np.asarray(b.numpy()).tobytes(), a.path
    assert arrays_sha256(twin_state_dict(back)) == model_state_sha256(model)


def test_pytorch_to_twin_and_back_is_bitwise() -> None:
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import load_torch_state, twin_to_torch_model

    config = ModelConfig(pad_object=False, n_filters_scale=1)
    model = _model(config)
    twin = build_twin(config)
    load_torch_state(twin, model.state_dict())
    again = twin_to_torch_model(twin, config)
    assert model_state_sha256(again) == model_state_sha256(model)


def test_mismatched_weights_name_every_problem() -> None:
    from parity.tf_twin.errors import WeightTransferError
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import load_torch_state

    config = ModelConfig(n_filters_scale=1)
    state = dict(_model(config).state_dict())
    state["encoder.0.convs.conv1.weight"] = torch.zeros(3, 1, 3, 3)
    del state["phase_decoder.head.centre_conv.bias"]
    state["extra.weight"] = torch.zeros(1)
    twin = build_twin(config)
    before = [np.asarray(v.numpy()).copy() for v in twin.weights]
    with pytest.raises(WeightTransferError) as info:
        load_torch_state(twin, state)
    message = str(info.value)
    assert "missing ['phase_decoder.head.centre_conv.bias']" in message
    assert "unexpected ['extra.weight']" in message
    assert (
        "encoder.0.convs.conv1.weight: expected shape [32, 1, 3, 3], found [3, 1, 3, 3]" in message
    )
    assert all(np.array_equal(b, v.numpy()) for b, v in zip(before, twin.weights))  # untouched


def test_weights_of_another_config_are_rejected() -> None:
    from parity.tf_twin.errors import WeightTransferError
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import load_torch_state

    state = _model(ModelConfig(n_filters_scale=1)).state_dict()
    with pytest.raises(WeightTransferError, match="n_filters_scale"):
        load_torch_state(build_twin(ModelConfig(n_filters_scale=1, probe_big=False)), state)


@pytest.mark.slow
def test_keras_weights_file_of_another_config_is_rejected(tmp_path: Path) -> None:
    from parity.tf_twin.errors import WeightTransferError
    from parity.tf_twin.model import build_twin
    from parity.tf_twin.weights import keras_weights_to_model_file

    build_twin(ModelConfig(n_filters_scale=1)).save_weights(tmp_path / "twin.weights.h5")
    with (
        pytest.warns(UserWarning),
        pytest.raises(WeightTransferError, match="could not be loaded"),
    ):
        keras_weights_to_model_file(
            tmp_path / "twin.weights.h5", ModelConfig(n_filters_scale=2), tmp_path / "m.pt"
        )
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("head", ["object", pytest.param("physics", marks=pytest.mark.slow)])
def test_generate_reference_round_trips_through_load_reference(tmp_path: Path, head: str) -> None:
    from parity.tf_twin.generate import GENERATOR, generate_reference

    config = ModelConfig(gridsize=2, n_filters_scale=1, intensity_scale=20.0)
    model = _model(config)
    save_model(model, tmp_path / "model.pt")
    feed = _feed(config, batch=1)
    if head == "object":
        del feed["positions"]
    np.savez(tmp_path / "inputs.npz", **feed)

    written = generate_reference(
        tmp_path / "model.pt", tmp_path / "inputs.npz", tmp_path / "ref.npz", head
    )
    loaded = load_reference(tmp_path / "ref.npz")
    with np.load(loaded.path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}

    assert sorted(arrays) == sorted(loaded.shapes) == sorted(written.outputs)
    for name, value in arrays.items():
        assert value.dtype == np.float32
        assert np.array_equal(value, written.outputs[name])
    prov = loaded.provenance
    assert prov["generator"] == GENERATOR and prov["head"] == head
    assert prov["weights_sha256"] == model_state_sha256(model)
    assert prov["inputs_sha256"] == arrays_sha256(feed)
    assert prov["tf32"] is False and prov["determinism"] is True
    assert "TF_ENABLE_ONEDNN_OPTS" in prov["onednn"] or "unset" in prov["onednn"]
    assert {"tensorflow_version", "keras_version", "device", "created"} <= set(prov)
    expected = _eager(model, _feed(config, batch=1))
    assert _max_abs(arrays["amplitude"], expected["amplitude"]) <= OBJECT_ATOL


def test_generate_reference_rejects_a_feed_that_breaks_the_signature(tmp_path: Path) -> None:
    from parity.tf_twin.generate import generate_reference

    config = ModelConfig(n_filters_scale=1)
    save_model(_model(config), tmp_path / "model.pt")
    np.savez(tmp_path / "inputs.npz", diffraction=np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(SignatureError, match=r"expected float32\[1, 1, 64, 64\]"):
        generate_reference(tmp_path / "model.pt", tmp_path / "inputs.npz", tmp_path / "r.npz")
    assert not (tmp_path / "r.npz").exists()
