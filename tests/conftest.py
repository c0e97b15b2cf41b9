"""Shared pytest options: slow tests run only with --runslow; tf and gpu tests skip with a reason."""

from __future__ import annotations

import importlib.util

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_tf = importlib.util.find_spec("tensorflow") is not None
    has_cuda = _has_cuda()
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(pytest.mark.skip(reason="slow: run with --runslow (CI does)"))
        if "tf" in item.keywords and not has_tf:
            item.add_marker(
                pytest.mark.skip(reason="TensorFlow not installed: pip install -e '.[tf]'")
            )
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA device on this machine"))
