"""``python -m export bench``: every backend timed per batch size against a GEMM ceiling measured in
the same run; the JSON has the promised fields. Figures are never asserted (shared machines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.run import BenchOptions, run_bench
from export.build import BuildResult
from export.manifest import read_manifest
from export.session import SessionSettings
from parity import runners as runners_module
from parity.runners import Runner

RUNNERS = ["eager[cpu]", "torchscript[cpu]", "pt2[cpu]", "onnxruntime[cpu]"]
ROW_FIELDS = {
    "runner",
    "batch",
    "providers",
    "setting",
    "rounds",
    "p50_ms",
    "p99_ms",
    "patterns_per_s",
    "gflops",
    "fraction_of_ceiling",
    "speedup_vs_eager",
}
QUICK = ["--seconds", "0", "--repeats", "1", "--warmup", "0", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("restore_threads")  # the bench sets torch's thread count


@pytest.mark.slow  # builds batch 1 on the fly and times 4 backends at 2 batches (~8 s CPU)
def test_bench_times_every_backend_per_batch_and_writes_json_and_plot(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptychopinn.main import main  # what `python -m export bench` runs

    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ["bench", "--artifacts", str(built.out), "--batch", "1,2", *QUICK]
    code = main([*argv, "--json", str(out), "--plot", str(png)])
    stdout = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema"] == "ptychopinn-bench/1"
    assert report["model"]["flops_per_pattern"] > 0 and report["model"]["conv_calls"] > 0
    assert {"cpu", "physical_cores", "device", "load_before", "load_after"} <= set(
        report["machine"]
    )
    assert "float32 GEMM" in report["ceiling_probe"]
    assert set(report["batches"][0]["probes_gflops"]) == {"gemm-torch", "gemm-onnxruntime"}
    assert report["threads"]["threads"] == 1 and report["threads"]["chosen_by"] == "given"
    assert [b["batch"] for b in report["batches"]] == [1, 2]
    assert report["batches"][0]["build_seconds"] > 0  # batch 1 built on the fly
    assert report["batches"][1]["folder"] == str(built.out)  # the artifacts' own batch
    for batch in report["batches"]:
        assert batch["ceiling_gflops"] > 0
        assert [row["runner"] for row in batch["rows"]] == RUNNERS
        for row in batch["rows"]:
            assert set(row) >= ROW_FIELDS and row["unavailable"] is None, row
            assert row["p99_ms"] >= row["p50_ms"] > 0
            assert row["patterns_per_s"] == pytest.approx(batch["batch"] / (row["p50_ms"] / 1e3))
            assert row["fraction_of_ceiling"] == pytest.approx(
                row["gflops"] / batch["ceiling_gflops"]
            )
            assert f"{row['p50_ms']:>9.2f}" in stdout
    tuning = report["tuning"]
    assert tuning["onnxruntime"]["intra_op_threads"] == 1  # --threads 1: only 1 tried
    assert {t["backend"] for t in tuning["trials"]} == {"onnxruntime", "eager"}
    assert sum(t["chosen"] for t in tuning["trials"]) == 2
    eager_trials = [t for t in tuning["trials"] if t["backend"] == "eager"]
    assert len(eager_trials) == 4 and {t["threads"] for t in eager_trials} == {1}
    assert tuning["eager_threads"] == 1 and tuning["eager"].endswith(", 1 thread")
    binding = [t for t in tuning["trials"] if t["stage"] == "binding"]
    # the kept settings timed plain and with IO binding (no CUDA graph on CPU), one kept
    assert [t["setting"].endswith("IO binding") for t in binding] == [False, True]
    assert sum(t["chosen"] for t in binding) == 1 and all(t["p50_ms"] > 0 for t in binding)
    assert tuning["onnxruntime"].get("io_binding", False) == binding[1]["chosen"]
    assert report["layers_batch"] == 2 and report["layers"]
    for layer in report["layers"]:
        assert {"shape", "count", "flops", "torch_gflops", "torch_fraction"} <= set(layer)
        assert layer["onnxruntime_fraction"] > 0
    assert "per-layer view" in stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["saved_tuning"] is None
    assert read_manifest(built.out).onnxruntime_session is None  # not without --save-tuning


def test_save_tuning_records_session_settings_that_verify_and_the_host_uses(
    artifacts: Path,
) -> None:
    from tests.conftest import command_main

    main = command_main("bench")
    from export.predict import Predictor

    argv = ["--artifacts", str(artifacts), *QUICK, "--no-layers", "--save-tuning"]
    assert main(argv) == 0
    manifest = read_manifest(artifacts)  # every listed file still matches its sha256
    settings = SessionSettings.from_manifest(manifest)
    assert settings is not None and settings.intra_op_threads == 1
    assert settings.graph_optimization in ("basic", "extended", "all")
    assert not list(artifacts.glob(".manifest.json.*"))  # the atomic write left nothing
    predictor = Predictor(artifacts)
    assert predictor.host.settings == settings
    assert predictor.host.session.get_session_options().intra_op_num_threads == 1


@pytest.mark.parametrize("batch", ["0", "x", "4,-1", "1,,2"])
def test_bad_batch_is_a_one_line_usage_error(
    built: BuildResult, batch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptychopinn.main import main

    code = main(["bench", "--artifacts", str(built.out), "--batch", batch])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: --batch") and "integers >= 1" in err[-1], err


@pytest.mark.slow  # tunes every backend at every thread count (~5-10 s CPU)
def test_auto_threads_tunes_torch_threads_like_onnxruntime_and_applies_them(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from tests.conftest import command_main

    main = command_main("bench")
    from ptycho_torch.threads import physical_cores

    out = tmp_path / "bench.json"
    quick = [*QUICK[:-2], "--threads", "auto", "--no-layers"]
    assert main(["--artifacts", str(built.out), *quick, "--json", str(out)]) == 0
    stdout = capsys.readouterr().out
    report = json.loads(out.read_text())
    tuning, counts = report["tuning"], list(range(1, physical_cores() + 1))
    eager = [t for t in tuning["trials"] if t["backend"] == "eager"]
    # every grad context x memory format at every count ONNX Runtime tried
    assert sorted(t["threads"] for t in eager) == sorted(counts * 4)
    ort = {t["threads"] for t in tuning["trials"] if t["backend"] == "onnxruntime"}
    assert ort == set(counts)
    chosen = [t for t in eager if t["chosen"]]
    assert len(chosen) == 1 and chosen[0]["p50_ms"] > 0
    used = chosen[0]["threads"]
    assert tuning["eager_threads"] == used and chosen[0]["setting"] == tuning["eager"]
    assert report["threads"]["threads"] == used and report["threads"]["chosen_by"] == "tuning"
    assert report["threads"]["requested"] == "auto"
    assert torch.get_num_threads() == used  # applied for every torch backend, not restored
    assert f"torch threads {used} for every torch backend" in stdout
    assert "chosen by tuning" in stdout
    (row,) = [r for r in report["batches"][0]["rows"] if r["runner"] == "eager[cpu]"]
    assert row["setting"] == tuning["eager"]
    ort_threads = tuning["onnxruntime"]["intra_op_threads"]
    probe_threads = max(used, ort_threads)
    plural = "" if probe_threads == 1 else "s"  # a loaded machine may tune both to 1 thread
    assert f", {probe_threads} thread{plural} (TF32 off)" in report["ceiling_probe"]
    if physical_cores() < 2:
        pytest.skip("one physical core: only one torch thread count to try")
    assert len({t["threads"] for t in eager}) > 1


def test_a_cuda_graph_that_cannot_run_is_a_trial_with_its_reason(
    built: BuildResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The binding round on CUDA, with a host that runs on the CPU and fails like ONNX Runtime
    does when a graph cannot be captured: the failure is a trial with its note, not an error,
    and the plain or IO-bound setting is kept."""
    import export.host
    from bench.onnxruntime_tuning import tune_binding

    real = export.host.OnnxHost

    class CpuStandIn(real):  # type: ignore[misc, valid-type]
        def __init__(self, path: Path, device: str = "cpu", session: object = None) -> None:
            super().__init__(path, "cpu", session)  # type: ignore[arg-type]

        def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if self.settings is not None and self.settings.cuda_graph:
                raise RuntimeError("CUDA graph capture failed: node Resize is on the CPU provider")
            return super().run(feed)

    monkeypatch.setattr(export.host, "OnnxHost", CpuStandIn)
    with np.load(built.out / "inputs.npz", allow_pickle=False) as z:
        feed = {k: z[k] for k in z.files}
    kept, trials = tune_binding(
        built.out / "model.onnx", feed, "cuda", SessionSettings(intra_op_threads=1), 0
    )
    assert not kept.cuda_graph
    failed = [t for t in trials if t.p50_ms is None]
    assert len(failed) == 1 and failed[0].setting.endswith("IO binding, CUDA graph")
    assert "node Resize is on the CPU provider" in failed[0].note and not failed[0].chosen
    assert sum(t.chosen for t in trials) == 1


def test_bench_deactivates_every_runner_when_one_fails(
    artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Runner] = []
    enter = runners_module.Runner.__enter__

    def recording(self):  # type: ignore[no-untyped-def]
        made.append(self)
        return enter(self)

    def broken(self, feed):  # type: ignore[no-untyped-def]
        raise RuntimeError("backend crashed")

    monkeypatch.setattr(runners_module.Runner, "__enter__", recording)
    monkeypatch.setattr(runners_module.OnnxRuntimeRunner, "_infer", broken)
    options = BenchOptions(artifacts=artifacts, seconds=0, repeats=1, warmup=1, tune=False)
    with pytest.raises(RuntimeError, match="backend crashed"):
        run_bench(options)
    assert [r.name for r in made] == RUNNERS  # eager is a runner too (was 3 without it)
    assert not any(r.is_active for r in made)
