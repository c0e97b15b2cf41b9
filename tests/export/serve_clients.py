"""Client side of the serve tests, run by the serving environment's Python (tritonclient and
NumPy 1.26 live there, not in the test process): ``python serve_clients.py WHAT URLS ARTIFACTS``
prints one JSON object. Every loop is bounded.

* ``load``: 8 concurrent clients at 1 pattern and at the artifact's batch per request, each
  answer compared with ONNX Runtime's result (:mod:`export.serving.load`);
* ``bad``: each bad request (wrong dtype, wrong N, NaN, wrong input name, over the maximum)
  through plain tritonclient, each followed by a good one, while 4 clients keep sending good
  requests (all but NaN are refused by Triton before batching; NaN is sent alone);
* ``burst``: 8 clients sending until refused; prints ``started`` once answers flow so the test
  can send SIGTERM to the server, then counts answers, wrong answers, refusals and other errors.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

from export.errors import ServerError
from export.host import OnnxHost
from export.serving.client import ServerURL, TritonClient
from export.serving.load import ResponseJudge, expected_outputs, run_level
from export.triton_model import TritonModel
from ptycho_torch.npz import read_npz

REFUSED = (
    "unknown model",
    "no available versions",
    "Connection refused",
    "failed to connect",
    "Server is stopping",
    "UNAVAILABLE",
    "not ready",
)


def _setup(artifacts: Path) -> tuple[OnnxHost, TritonModel, dict[str, np.ndarray]]:
    host = OnnxHost(artifacts / "model.onnx")
    model = TritonModel.from_signature("ptychopinn", host.signature)
    inputs = read_npz(artifacts / "inputs.npz", what="inputs")
    return host, model, {n: v for n, v in inputs.items() if n in model.input_names}


def load(urls: dict[str, str], artifacts: Path) -> dict[str, object]:
    host, model, samples = _setup(artifacts)
    judge = ResponseJudge(host.signature, "cpu")
    levels = []
    for protocol, batch in (("grpc", 1), ("grpc", model.batch), ("http", model.batch)):
        pool = expected_outputs(host, samples, batch, 16, seed=batch)
        level = run_level(lambda p=protocol: TritonClient(urls[p], model), pool, 8, 48, judge)
        levels.append({"protocol": protocol, **level.to_dict()})
    return {"levels": levels}


def _raw(url: str, name: str, arrays: dict[str, tuple[np.ndarray, str]]) -> str:
    """Send with plain tritonclient (any dtype, any name); the error text, or "" for an answer."""
    parsed = ServerURL.parse(url)
    if parsed.protocol == "grpc":
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module  # type: ignore[no-redef]
    client = module.InferenceServerClient(f"{parsed.host}:{parsed.port}")
    try:
        inputs = []
        for input_name, (value, datatype) in arrays.items():
            one = module.InferInput(input_name, list(value.shape), datatype)
            one.set_data_from_numpy(value)
            inputs.append(one)
        client.infer(name, inputs)
        return ""
    except Exception as exc:  # noqa: BLE001 - the error response is what is checked
        return str(exc.message() if hasattr(exc, "message") else exc)
    finally:
        client.close()


def bad(urls: dict[str, str], artifacts: Path) -> dict[str, object]:
    host, model, samples = _setup(artifacts)
    x = samples["diffraction"]
    n = x.shape[-1]
    nan = x[:1].copy()
    nan[0, 0, 3, 4] = np.nan
    max_batch = TritonClient(urls["grpc"], model).max_batch_size
    cases = {
        "dtype": {"diffraction": (x[:1].astype(np.float64), "FP64")},
        "n": {"diffraction": (np.zeros((1, 1, n // 2, n // 2), np.float32), "FP32")},
        "name": {"diffractions": (x[:1], "FP32")},
        "over_max": {
            "diffraction": (np.repeat(x, max_batch // len(x) + 1, 0)[: max_batch + 1], "FP32")
        },
    }
    pool = expected_outputs(host, samples, 2, 8)
    judge = ResponseJudge(host.signature, "cpu")
    results: dict[str, object] = {}
    background: dict[str, object] = {}

    def keep_sending() -> None:
        level = run_level(lambda: TritonClient(urls["grpc"], model), pool, 4, 64, judge)
        background.update(level.to_dict())

    sender = threading.Thread(target=keep_sending)
    sender.start()
    for protocol in ("grpc", "http"):
        for kind, arrays in cases.items():
            error = _raw(urls[protocol], model.name, arrays)
            good = _raw(urls[protocol], model.name, {"diffraction": (x[:2], "FP32")})
            results[f"{protocol}:{kind}"] = {"error": error, "good_after": good == ""}
    sender.join()
    for protocol in ("grpc", "http"):  # alone: PyTriton fails a batch with one error
        error = _raw(urls[protocol], model.name, {"diffraction": (nan, "FP32")})
        good = _raw(urls[protocol], model.name, {"diffraction": (x[:2], "FP32")})
        results[f"{protocol}:nan"] = {"error": error, "good_after": good == ""}
    return {"cases": results, "background": background}


def burst(urls: dict[str, str], artifacts: Path) -> dict[str, object]:
    host, model, samples = _setup(artifacts)
    pool = expected_outputs(host, samples, model.batch, 8)
    judge = ResponseJudge(host.signature, "cpu")
    counts: Counter[str] = Counter()
    other: list[str] = []
    lock = threading.Lock()
    flowing = threading.Event()

    def client(i: int) -> None:
        protocol = ("grpc", "http")[i % 2]
        with TritonClient(urls[protocol], model, timeout_s=120) as connection:
            for k in range(400):  # bounded; stops at the first refusal
                j = (i + k) % len(pool)
                try:
                    got = connection.infer(pool.feeds[j])
                except ServerError as exc:
                    with lock:
                        if any(mark in str(exc) for mark in REFUSED):
                            counts["refused"] += 1
                        else:
                            counts["other"] += 1
                            other.append(str(exc))
                    return
                with lock:
                    counts["answered" if judge(got, pool.expected[j]) else "wrong"] += 1
                    if counts["answered"] >= 16:
                        flowing.set()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    if flowing.wait(300):
        print("started", flush=True)
    for thread in threads:
        thread.join(600)
    return {
        "counts": dict(counts),
        "other": other[:5],
        "clients_left": sum(t.is_alive() for t in threads),
    }


if __name__ == "__main__":
    what, urls, artifacts = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    start = time.perf_counter()
    result = {"load": load, "bad": bad, "burst": burst}[what](urls, artifacts)
    result["seconds"] = time.perf_counter() - start
    print(json.dumps(result), flush=True)
