from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from export.build import BuildOptions, BuildResult, build
from ptycho_torch.checkpoint import save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.model import PtychoPINN


def make_model_file(path: Path, seed: int = 0, gridsize: int = 1) -> Path:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    probe = np.exp(1j * rng.random((64, 64))) * rng.random((64, 64))
    model = PtychoPINN(
        ModelConfig(n_filters_scale=1, gridsize=gridsize, intensity_scale=20.0), probe=probe
    )
    save_model(model, path)
    return path


def make_feed_file(path: Path, batch: int = 2, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        diffraction=(rng.random((batch, channels, 64, 64)) * 30).astype(np.float32),
        positions=(rng.normal(size=(batch, channels, 2)) * 3).astype(np.float32),
    )
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def feed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_feed_file(tmp_path_factory.mktemp("feed") / "feed.npz")


@pytest.fixture(scope="session")
def built(
    tmp_path_factory: pytest.TempPathFactory, model_file: Path, feed_file: Path
) -> BuildResult:
    out = tmp_path_factory.mktemp("build") / "artifacts"
    return build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))


@pytest.fixture(scope="session")
def built_physics(tmp_path_factory: pytest.TempPathFactory, feed_file: Path) -> BuildResult:
    model = make_model_file(tmp_path_factory.mktemp("model2") / "model.pt", seed=1)
    out = tmp_path_factory.mktemp("build2") / "artifacts"
    return build(
        BuildOptions(checkpoint=model, inputs=feed_file, out=out, head="physics", reference="none")
    )
