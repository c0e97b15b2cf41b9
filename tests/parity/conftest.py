from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from export.build import BuildOptions, BuildResult, build
from export.wrapper import wrap
from parity.reference import save_reference
from ptycho_torch.checkpoint import load_model, model_state_sha256, save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.digest import arrays_sha256
from ptycho_torch.model import PtychoPINN


def eager_reference(result: BuildResult, path: Path, seed_noise: float = 0.0) -> Path:
    """A reference made with eager PyTorch (stands in for the TF twin in fast tests)."""
    model = load_model(result.manifest.checkpoint.path)
    with np.load(result.out / "inputs.npz", allow_pickle=False) as data:
        feed = {k: data[k] for k in data.files}
    with torch.inference_mode():
        outs = wrap(model, result.signature)(
            *(torch.from_numpy(feed[n]) for n in result.signature.input_names)
        )
    outputs = {n: t.numpy() for n, t in zip(result.signature.output_names, outs)}
    save_reference(
        path,
        outputs,
        {
            "generator": "eager-pytorch (test)",
            "head": result.signature.head,
            "signature": result.signature.to_dict(),
            "weights_sha256": model_state_sha256(model),
            "inputs_sha256": arrays_sha256(feed),
        },
    )
    return path


@pytest.fixture(scope="session")
def parity_build(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    root = tmp_path_factory.mktemp("parity")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = PtychoPINN(ModelConfig(n_filters_scale=1, intensity_scale=20.0))
    save_model(model, root / "model.pt")
    np.savez(root / "feed.npz", diffraction=(rng.random((2, 1, 64, 64)) * 30).astype(np.float32))
    result = build(
        BuildOptions(
            checkpoint=root / "model.pt",
            inputs=root / "feed.npz",
            out=root / "artifacts",
            reference="none",
        )
    )
    eager_reference(result, result.out / "reference.npz")
    return result


@pytest.fixture()
def artifacts(parity_build: BuildResult, tmp_path: Path) -> Path:
    """A private copy of the artifacts that a test may tamper with."""
    copy = tmp_path / "artifacts"
    shutil.copytree(parity_build.out, copy)
    return copy
