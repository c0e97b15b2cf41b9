"""Serving the ONNX model through Triton (``export serve``, ``client``, ``serve-bench``).

Fast tests: the fixed-batch rule, the one model description behind ``config.pbtxt`` and the
served model, the callable's checks and answers, and the one-line exits where serving cannot
work. Slow tests (``--runslow``): a fresh Python 3.12 environment (``serve-requirements.txt``,
the project with ``--no-deps``; ``tests/export/serve_env.py``) serves the demo artifacts on
loopback through a real Triton server; skipped only where no Python 3.12 exists.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

from export.build import BuildResult
from export.errors import ArtifactsChangedError, RequestError, ServerError, SignatureError
from export.fixed_batch import run_in_fixed_batches
from export.predict import Predictor
from export.serving.client import ServerURL
from export.serving.handler import InferenceHandler, ServeStats, check_request
from export.signature import make_signature
from export.triton_model import ServedBatching, TritonModel
from ptycho_torch.config import ModelConfig
from tests.export.serve_env import ROOT, ServeEnv, find_python312, serve_env

CLIENTS = Path(__file__).with_name("serve_clients.py")


def _doubler(calls: list[int]):  # type: ignore[no-untyped-def]
    def run(feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feed["diffraction"]
        calls.append(len(x))
        return {"amplitude": 2 * x, "phase": -x}

    return run


def _model(batch: int = 4, head: str = "object") -> TritonModel:
    return TritonModel.from_signature("ptychopinn", make_signature(ModelConfig(N=64), batch, head))


def test_fixed_batch_splits_pads_and_unpads() -> None:
    calls: list[int] = []
    x = np.arange(11 * 2, dtype=np.float32).reshape(11, 2)
    out = run_in_fixed_batches(_doubler(calls), {"diffraction": x}, 4)
    assert calls == [4, 4, 4]  # every run at the fixed batch: the last one padded
    np.testing.assert_array_equal(out["amplitude"], 2 * x)
    np.testing.assert_array_equal(out["phase"], -x)


def test_fixed_batch_refuses_an_empty_feed_and_inputs_of_different_lengths() -> None:
    with pytest.raises(SignatureError, match="different numbers of samples"):
        run_in_fixed_batches(_doubler([]), {"a": np.zeros((2, 1)), "b": np.zeros((3, 1))}, 4)
    with pytest.raises(SignatureError, match="0 samples"):
        run_in_fixed_batches(_doubler([]), {"diffraction": np.zeros((0, 1))}, 4)


def test_predictor_runs_the_same_fixed_batch_rule(built: BuildResult) -> None:
    predictor = Predictor(built.out)
    x = np.load(built.out / "inputs.npz")["diffraction"]
    one = {"diffraction": x[:1]}
    expected = run_in_fixed_batches(predictor.host.run, one, predictor.batch)
    got = predictor.run_batch(one)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def test_config_pbtxt_and_the_served_model_come_from_one_description() -> None:
    signature = make_signature(ModelConfig(N=64, gridsize=2), 4, "physics")
    model = TritonModel.from_signature("pinn", signature)
    assert model.input_names == signature.input_names == ["diffraction", "positions"]
    assert model.output_names == signature.output_names
    for tensor, spec in zip(
        (*model.inputs, *model.outputs), (*signature.inputs, *signature.outputs)
    ):
        assert (model.batch, *tensor.dims) == spec.shape  # served dims = the signature's, no B
        assert (tensor.config_type, tensor.wire_type, tensor.numpy_dtype) == (
            "TYPE_FP32", "FP32", np.float32,
        )  # fmt: skip
    config = model.config_pbtxt()
    assert 'name: "positions"\n    data_type: TYPE_FP32\n    dims: [ 4, 4, 2 ]' in config
    assert model.preferred_batch_sizes(ServedBatching(10, 0)) == [4, 8]
    assert model.preferred_batch_sizes(ServedBatching(3, 0)) == [3]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"diffraction": np.zeros((1, 1, 64, 64), np.float64)}, "is float64, expected float32"),
        ({"diffraction": np.zeros((1, 1, 32, 32), np.float32)}, r"shape \[1, 1, 32, 32\]"),
        ({"diffraction": np.full((2, 1, 64, 64), np.nan, np.float32)}, "NaN or Inf"),
        ({"diff": np.zeros((1, 1, 64, 64), np.float32)}, r"the model takes \['diffraction'\]"),
        ({"diffraction": np.zeros((9, 1, 64, 64), np.float32)}, "9 samples; send 1 to 8"),
    ],
    ids=["dtype", "n", "nan", "name", "over-max"],
)
def test_check_request_names_the_problem(request_: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        check_request(request_, _model(), ServedBatching(8, 0))


def test_handler_answers_each_request_of_a_dynamic_batch_with_its_own_outputs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    stats = ServeStats(log_every=3)
    handler = InferenceHandler(_doubler(calls), _model(4), ServedBatching(8, 0), stats)
    rng = np.random.default_rng(0)
    requests = [{"diffraction": rng.random((b, 1, 64, 64), np.float32)} for b in (1, 3, 8, 2)]
    with caplog.at_level(logging.INFO, logger="export.serving.handler"):
        answers = handler(requests)
    assert calls == [4, 4, 4, 4]  # 14 samples as 4 fixed batches of 4, the last padded
    for request, answer in zip(requests, answers):
        np.testing.assert_array_equal(answer["amplitude"], 2 * request["diffraction"])
        np.testing.assert_array_equal(answer["phase"], -request["diffraction"])
    assert (stats.requests, stats.patterns, stats.errors, stats.in_flight) == (4, 14, 0, 0)
    assert "served 4 requests (14 patterns)" in caplog.text and "p99" in caplog.text


def test_a_bad_request_fails_its_batch_naming_which_one() -> None:
    stats = ServeStats(log_every=0)
    handler = InferenceHandler(_doubler([]), _model(4), ServedBatching(8, 0), stats)
    good = {"diffraction": np.zeros((1, 1, 64, 64), np.float32)}
    bad = {"diffraction": np.full((1, 1, 64, 64), np.inf, np.float32)}
    with pytest.raises(RequestError, match=r"request 2 of the 3 Triton batched .*NaN or Inf"):
        handler([good, bad, good])
    assert (stats.errors, stats.in_flight) == (3, 0)
    assert len(handler([good])) == 1  # and it serves on


def test_predictor_refuses_a_runner_of_another_signature(built: BuildResult) -> None:
    class Other:
        signature = make_signature(ModelConfig(N=128), 2)
        device, providers, io_bound = "triton", ["grpc://127.0.0.1:1 model 'x'"], False

        def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            raise AssertionError("never run")

    with pytest.raises(ArtifactsChangedError, match="another signature"):
        Predictor(built.out, runner=Other())


def test_load_report_round_trips_through_json() -> None:
    from export.serving.load_report import BareRate, LoadLevel, LoadReport

    level = LoadLevel(16, 8, 1000, 47.8, 0, 0, 746.7, 1291.2)
    report = LoadReport(
        "grpc://127.0.0.1:8001", "a", "ptychopinn", 8, [level], [BareRate(8, 10, 0.5, 48.0)]
    )
    again = LoadReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.table() == report.table()
    assert abs(report.ratio(level) - level.patterns_per_s / 160.0) < 1e-12


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("grpc://127.0.0.1:8001", ("grpc", "127.0.0.1", 8001)),
        ("http://localhost:8000/", ("http", "localhost", 8000)),
        ("127.0.0.1:8000", ("http", "127.0.0.1", 8000)),
    ],
)
def test_server_url_forms(url: str, parsed: tuple[str, str, int]) -> None:
    got = ServerURL.parse(url)
    assert (got.protocol, got.host, got.port) == parsed


def test_a_bad_server_url_names_the_forms() -> None:
    with pytest.raises(ServerError, match=r"use grpc://HOST:PORT or http://HOST:PORT"):
        ServerURL.parse("https://example:99999")


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export", *args], capture_output=True, text=True, timeout=300,
        cwd=ROOT,
    )  # fmt: skip


@pytest.mark.skipif(sys.version_info[:2] == (3, 12), reason="this Python can serve")
def test_serve_on_a_python_that_cannot_serve_is_one_line_and_exit_3(tmp_path: Path) -> None:
    done = _export("serve", "--artifacts", str(tmp_path / "nowhere"))
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "serving needs Python 3.12" in lines[0], done.stderr
    assert "serve-requirements.txt" in lines[0]


def test_client_without_a_server_is_exit_3_with_what_to_do(
    built: BuildResult, tmp_path: Path
) -> None:
    from export.serving.process import free_ports

    (port,) = free_ports(1)
    done = _export(
        "client", "--url", f"grpc://127.0.0.1:{port}", "--artifacts", str(built.out),
        "--data", str(tmp_path / "scan.npz"), "--out", str(tmp_path / "recon"),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert ("tritonclient" in line) or ("no Triton server answers" in line), line
    assert not (tmp_path / "recon").exists()


# --- slow: a real Triton server in a Python 3.12 environment -------------------------------


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> ServeEnv:
    python, why = find_python312()
    if python is None:
        pytest.skip(why)
    return serve_env(python, tmp_path_factory.mktemp("serve-env"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """The bundled demo model's artifacts, as `python -m export build` writes them."""
    from export.build import build
    from export.options import BuildOptions

    return build(BuildOptions(out=tmp_path_factory.mktemp("demo") / "artifacts"))


def _clients(serving: ServeEnv, what: str, urls: dict[str, str], artifacts: Path) -> dict:  # type: ignore[type-arg]
    done = serving.run(str(CLIENTS), what, json.dumps(urls), str(artifacts), timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture()
def server(serving: ServeEnv, demo: BuildResult, tmp_path: Path) -> Iterator[object]:
    from export.serving.process import ServerProcess

    process = ServerProcess(
        demo.out, serving.python, ["--log-every", "100"], tmp_path / "serve.log", serving.env
    )
    process.start()
    yield process
    process.kill()


@pytest.mark.slow
def test_serve_answers_concurrent_clients_and_bad_requests(
    serving: ServeEnv,
    demo: BuildResult,
    server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    assert any(line.startswith("verify PASS") for line in server.stdout), server.stdout
    assert any(line.startswith("serving 'ptychopinn'") for line in server.stdout)

    loaded = _clients(serving, "load", server.urls, demo.out)
    for level in loaded["levels"]:  # 8 clients, each answer against ONNX Runtime's
        assert level["clients"] == 8 and level["requests"] == 48, level
        assert (level["failed"], level["wrong"]) == (0, 0), level

    bad = _clients(serving, "bad", server.urls, demo.out)
    expected = {
        "dtype": "FP64",
        "n": "unexpected shape for input 'diffraction'",
        "name": "unexpected inference input 'diffractions'",
        "over_max": "batch-size must be <= 64",
        "nan": "holds NaN or Inf",
    }
    for case, result in bad["cases"].items():
        assert expected[case.split(":")[1]] in result["error"], (case, result)
        assert result["good_after"], case  # the server serves on
    background = bad["background"]  # good requests sent meanwhile: none failed or was wrong
    assert (background["failed"], background["wrong"]) == (0, 0), background

    assert server.stop() == 0
    summary = server.stdout[-1]
    assert summary.startswith("stopped (SIGTERM) after serving"), server.stdout[-3:]
    log = (tmp_path / "serve.log").read_text()
    assert re.search(r"served 1\d\d requests \(\d+ patterns\) in .* latency in the model p50", log)


@pytest.mark.slow
def test_sigterm_during_a_burst_answers_every_accepted_request(
    serving: ServeEnv,
    demo: BuildResult,
    server,  # type: ignore[no-untyped-def]
) -> None:
    command = [serving.python, str(CLIENTS), "burst", json.dumps(server.urls), str(demo.out)]
    burst = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=serving.env)
    assert burst.stdout is not None
    assert burst.stdout.readline().strip() == "started"  # answers flowing: now stop it
    code = server.stop(signal.SIGTERM)
    result = json.loads(burst.stdout.read().strip().splitlines()[-1])
    assert burst.wait(60) == 0
    counts = result["counts"]
    assert code == 0, server.stdout[-3:]
    assert result["clients_left"] == 0 and counts.get("refused", 0) > 0, result
    assert counts.get("other", 0) == 0 and counts.get("wrong", 0) == 0, result
    # every request the model ran reached its client: "served N requests" is the answered count
    served = int(server.stdout[-1].split("after serving ")[1].split()[0])
    assert served == counts["answered"], (server.stdout[-1], counts)


@pytest.mark.slow
def test_client_reconstructs_a_scan_as_predict_does(
    serving: ServeEnv,
    demo: BuildResult,
    server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz

    scan = tmp_path / "scan.npz"
    write_npz(simulate_scan(SimulationConfig(n_images=45, seed=4)), scan)
    for protocol in ("grpc", "http"):
        out = tmp_path / f"client-{protocol}"
        done = serving.run(
            "-m", "export", "client", "--url", server.urls[protocol], "--artifacts",
            str(demo.out), "--data", str(scan), "--out", str(out), cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "on triton (providers" in done.stdout
    predicted = tmp_path / "predict"
    done = serving.run(
        "-m", "export", "predict", "--artifacts", str(demo.out), "--data", str(scan),
        "--out", str(predicted), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(predicted / "reconstruction.npz") as want:
        for protocol in ("grpc", "http"):
            with np.load(tmp_path / f"client-{protocol}" / "reconstruction.npz") as got:
                for key in ("object", "amplitude", "phase", "weight"):
                    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    record = json.loads((tmp_path / "client-grpc" / "prediction.json").read_text())
    assert record["device"] == "triton" and record["patterns"] == 45


@pytest.mark.slow
def test_serve_bench_checks_every_answer_next_to_bare_onnxruntime(
    serving: ServeEnv, demo: BuildResult, tmp_path: Path
) -> None:
    report = tmp_path / "bench.json"
    done = serving.run(
        "-m", "export", "serve-bench", "--artifacts", str(demo.out), "--clients", "1", "4",
        "--requests", "24", "--bare-seconds", "1", "--json", str(report), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads(report.read_text())
    assert [(lv["clients"], lv["batch"]) for lv in data["levels"]] == [
        (1, 1),
        (4, 1),
        (1, 8),
        (4, 8),
    ]
    assert all(lv["failed"] == lv["wrong"] == 0 for lv in data["levels"])
    assert data["bare_patterns_per_s"] > 0 and "server stopped with SIGTERM: exit 0" in done.stdout
