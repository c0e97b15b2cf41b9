"""The dtype trace names the first module that received a non-float32 tensor and the user's line
that fed it (the seed's bug: ``torch.from_numpy`` on a float64 batch)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from parity.trace import dtype_trace
from ptycho_torch.config import ModelConfig
from ptycho_torch.model import PtychoPINN


def _model() -> PtychoPINN:
    torch.manual_seed(0)
    return PtychoPINN(ModelConfig(n_filters_scale=1, intensity_scale=20.0)).eval()


def seed_bug_inference(model: PtychoPINN, batch: np.ndarray) -> object:
    x = torch.from_numpy(batch)  # float64 stays float64: the seed's bug
    return model.predict(x)  # FEEDS-THE-MODEL


def test_trace_names_the_first_module_and_the_user_line() -> None:
    model = _model()
    batch = np.random.default_rng(0).random((2, 1, 64, 64))  # float64
    with dtype_trace(model) as trace, pytest.raises(RuntimeError):
        seed_bug_inference(model, batch)
    first = trace.first_violation()
    assert first is not None and first.index == 0
    assert first.inputs[0].dtype == "float64"
    source = Path(__file__).read_text().splitlines()
    file, line = trace.user_line().rsplit(":", 1)  # type: ignore[union-attr]
    assert Path(file).resolve() == Path(__file__).resolve()
    assert "FEEDS-THE-MODEL" in source[int(line) - 1]
    table = trace.table()
    assert "<-- first non-float32" in table and "test_trace.py" in table
    assert json.loads(json.dumps(trace.to_dict()))["first_violation"] == 0


def test_a_float32_run_has_no_violation_and_the_hooks_go_away() -> None:
    model = _model()
    x = torch.rand(2, 1, 64, 64)
    with dtype_trace(model) as trace, torch.inference_mode():
        model.predict(x)
    assert trace.calls and trace.first_violation() is None
    assert "every tensor at every module boundary is float32" in trace.table()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_trace_overhead_is_measured() -> None:
    """A figure, not an assertion on time: the ratio traced/untraced on one batch."""
    model = _model()
    x = torch.rand(4, 1, 64, 64)
    with torch.inference_mode():
        model.predict(x)
        start = time.perf_counter()
        model.predict(x)
        plain = time.perf_counter() - start
        with dtype_trace(model) as trace:
            start = time.perf_counter()
            model.predict(x)
            traced = time.perf_counter() - start
    print(f"dtype trace overhead: {traced / plain:.2f}x ({len(trace.calls)} module calls)")
    assert len(trace.calls) > 10


def test_trace_command_exit_codes_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptycho_torch.checkpoint import save_model
    from ptychopinn.main import main

    ckpt = tmp_path / "m.pt"
    save_model(_model(), ckpt)
    batch = np.random.default_rng(1).random((2, 1, 64, 64))
    np.savez(tmp_path / "f64.npz", diffraction=batch)
    np.savez(tmp_path / "f32.npz", diffraction=batch.astype(np.float32))
    out = tmp_path / "trace.json"
    argv = ["trace", "--checkpoint", str(ckpt), "--json", str(out), "--inputs"]
    assert main([*argv, str(tmp_path / "f64.npz")]) == 1
    text = capsys.readouterr().out
    assert "first float64 at call 0" in text and "the model raised" in text
    assert json.loads(out.read_text())["first_violation"] == 0
    assert main([*argv, str(tmp_path / "f32.npz")]) == 0
    assert json.loads(out.read_text())["first_violation"] is None
