"""The runner contract: activate/deactivate, is_active, infer only while active, ExitStack use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import parity.check as check_module
import parity.pairs as pairs_module
from export.build import BuildResult
from export.errors import ReferenceFormatError
from parity import runners as runners_module
from parity.check import CheckOptions, run_check
from parity.errors import RunnerNotActiveError, WeightsMismatchError
from parity.reference import load_reference
from parity.runners import OnnxRuntimeRunner, ReferenceRunner, Runner


def _feed(build: BuildResult) -> dict[str, np.ndarray]:
    return {s.name: np.zeros(s.shape, np.float32) for s in build.signature.inputs}


def _recording_make_runners(monkeypatch: pytest.MonkeyPatch, module: object) -> list[Runner]:
    """Every runner ``module.make_runners`` builds, for checking their state afterwards."""
    made: list[Runner] = []
    original = pairs_module.make_runners

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        runners = original(*args, **kwargs)
        made.extend(runners)
        return runners

    monkeypatch.setattr(module, "make_runners", recording)
    return made


def test_infer_on_an_inactive_runner_says_to_activate_it(parity_build: BuildResult) -> None:
    reference = load_reference(parity_build.out / "reference.npz")
    runner = ReferenceRunner("tf-reference", parity_build.signature, reference)
    assert not runner.is_active
    with pytest.raises(RunnerNotActiveError, match="tf-reference is not active.*activate"):
        runner.infer(_feed(parity_build))
    with runner:
        assert runner.is_active
        outputs = runner.infer(_feed(parity_build))
        assert set(outputs) == set(parity_build.signature.output_names)
    assert not runner.is_active
    with pytest.raises(RunnerNotActiveError):
        runner.infer(_feed(parity_build))


def test_deactivate_frees_the_session_and_activate_builds_it_again(
    parity_build: BuildResult,
) -> None:
    runner = OnnxRuntimeRunner(
        "onnxruntime[cpu]", parity_build.signature, "cpu", parity_build.out / "model.onnx"
    )
    runner.activate()
    runner.activate()  # a second activate keeps the session it has
    assert runner.is_active and runner._host is not None
    runner.deactivate()
    assert not runner.is_active and runner._host is None
    runner.deactivate()  # deactivating twice is harmless
    with runner:
        assert runner.infer(_feed(parity_build))["amplitude"].dtype == np.float32


def test_a_backend_failing_mid_check_leaves_no_runner_active(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _recording_make_runners(monkeypatch, check_module)

    def broken(self, feed):  # type: ignore[no-untyped-def]
        raise RuntimeError("backend crashed")

    monkeypatch.setattr(runners_module.ExportedProgramRunner, "_infer", broken)
    with pytest.raises(RuntimeError, match="backend crashed"):
        run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    assert made and not any(r.is_active for r in made)


def test_a_runner_failing_to_start_deactivates_those_already_started(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _recording_make_runners(monkeypatch, check_module)
    started: list[str] = []
    original = runners_module.TorchScriptRunner._activate

    def record(self):  # type: ignore[no-untyped-def]
        started.append(self.name)
        original(self)

    def refuse(self):  # type: ignore[no-untyped-def]
        raise ReferenceFormatError("cannot load model.onnx")

    monkeypatch.setattr(runners_module.TorchScriptRunner, "_activate", record)
    monkeypatch.setattr(runners_module.OnnxRuntimeRunner, "_activate", refuse)
    with pytest.raises(ReferenceFormatError, match="model.onnx"):
        run_check(CheckOptions(artifacts=artifacts, device="cpu"))
    assert started == ["torchscript[cpu]"]
    assert not any(r.is_active for r in made)


def test_checkpoint_with_other_weights_is_a_weights_mismatch_exit_4(
    artifacts: Path, tmp_path: Path
) -> None:
    import torch

    from ptycho_torch.checkpoint import load_model, save_model

    model = load_model(artifacts / "weights.pt")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(model, tmp_path / "other.pt")
    with pytest.raises(WeightsMismatchError, match="holds weights.*rebuild") as err:
        run_check(CheckOptions(artifacts=artifacts, checkpoint=tmp_path / "other.pt", device="cpu"))
    assert err.value.exit_code == 4
