from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ptycho_torch.checkpoint import load_model, save_model
from ptycho_torch.config import DataConfig, ModelConfig, TrainConfig
from ptycho_torch.infer import evaluate, reconstruct
from ptycho_torch.lightning_module import PtychoLightning
from ptycho_torch.physics import probe_disk_mask
from ptycho_torch.prepare import intensity_scale
from ptycho_torch.scan import load_npz
from ptycho_torch.train import train


def _configs(data_path: Path) -> tuple[ModelConfig, DataConfig, TrainConfig]:
    data = load_npz(data_path)
    model = ModelConfig(N=64, n_filters_scale=1, intensity_scale=intensity_scale(data.diffraction))
    return model, DataConfig(batch_size=4, val_fraction=0.25), TrainConfig(epochs=1)


def test_a_few_training_steps_lower_the_loss(scan_npz: Path) -> None:
    data = load_npz(scan_npz)
    model_config, data_config, train_config = _configs(scan_npz)
    torch.manual_seed(0)
    module = PtychoLightning(
        model_config.to_dict(), data_config.to_dict(), train_config.to_dict(), probe=data.probe
    )
    module.log = lambda *a, **k: None  # type: ignore[method-assign]  # no Trainer attached
    optimizer = module.configure_optimizers()
    batch = (torch.from_numpy(data.diffraction[:4, None]), torch.zeros(4, 1, 2))
    losses = []
    for _ in range(12):
        loss = module.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0], losses


def test_lightning_checkpoint_round_trip_with_weights_only(scan_npz: Path, tmp_path: Path) -> None:
    data = load_npz(scan_npz)
    result = train(
        data, tmp_path, *_configs(scan_npz), {"max_steps": 2, "enable_progress_bar": False}
    )
    raw = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert type(raw["hyper_parameters"]) is dict
    assert type(raw["hyper_parameters"]["model_config"]) is dict
    from_ckpt = load_model(result.checkpoint)
    from_slim = load_model(result.model_file)
    a, b = from_ckpt.state_dict(), from_slim.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    probe = torch.complex(a["probe_re"], a["probe_im"]).numpy()
    # the probe travels in the weights, normalised as the original does
    disk = probe_disk_mask(64).numpy()
    norm = np.float32(4.0) * np.mean(np.abs(disk * data.probe))  # default probe_scale
    np.testing.assert_allclose(probe, data.probe / norm, rtol=1e-6, atol=1e-7)
    resaved = tmp_path / "again.pt"
    save_model(from_ckpt, resaved)
    c = load_model(resaved).state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert result.model_file.stat().st_size < 4_000_000  # slim: weights only


def test_float64_npz_trains_saves_loads_and_infers_in_float32(
    scan64_npz: Path, tmp_path: Path
) -> None:
    """Regression: float64 data used to reach Conv2d ('Input type (double) and bias type (float)')."""
    data = load_npz(scan64_npz)
    result = train(
        data, tmp_path, *_configs(scan64_npz), {"max_steps": 2, "enable_progress_bar": False}
    )
    model = load_model(result.checkpoint)
    seen: list[torch.dtype] = []
    model.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0].dtype))
    recon = reconstruct(model, load_npz(scan64_npz), batch_size=5)
    assert seen and set(seen) == {torch.float32}
    assert recon.stitched.obj.dtype == np.complex64 and recon.patches.dtype == np.complex64
    metrics = evaluate(recon, data)
    assert metrics is not None and np.isfinite(metrics.phase_rms_rad)
