"""Rerun a failed parity comparison with numpy and onnxruntime only (see README.md).

``python -m export check --repro DIR`` copies this file into ``DIR`` (:mod:`parity.repro`), with
the comparison kernel's files in ``DIR/core/``: the verdict here comes from the very rule
(:func:`core.compare.compare_arrays`) and tolerances the check used. It exits 1 when the
failure reproduces and 0 when it does not. It is a script, never imported by the project.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    sys.path.insert(0, str(HERE))  # this folder's core/, whatever else is installed

from core.compare import ComparedOutput, compare_arrays  # noqa: E402
from core.output_comparison import OutputComparison  # noqa: E402
from core.running_stats import wrap_to_pi  # noqa: E402
from core.tolerances import Tolerance  # noqa: E402

Case = dict[str, Any]


def judge(case: Case, failure: Case) -> tuple[OutputComparison, np.ndarray, np.ndarray]:
    """The stored sides of one failed output compared again, with the check's tolerance, peak,
    dtype and weighting; returns the comparison and both sides."""
    name = failure["output"]
    spec = case["outputs"][name]
    left = np.load(HERE / f"left_{name}.npy", allow_pickle=False)
    right = np.load(HERE / f"right_{name}.npy", allow_pickle=False)
    weight = None
    if spec["weighted_by"] and failure["weighted"]:
        weight = np.load(HERE / f"right_{spec['weighted_by']}.npy", allow_pickle=False)
    keys = ("atol", "rtol", "rtol_peak", "max_fraction_out")
    comparison = compare_arrays(
        ComparedOutput(
            name,
            case["pair"]["left"],
            case["pair"]["right"],
            Tolerance.from_dict({k: failure[k] for k in keys}),
            wrap_phase=spec["wraps"],
            expected_dtype=failure.get("expected_dtype", "float32"),
        ),
        left,
        right,
        weight=weight,
        peak=failure["peak"],
    )
    return comparison, left, right


def onnxruntime_outputs(case: Case) -> dict[str, np.ndarray] | None:
    """``model.onnx`` on ``inputs.npz`` with ONNX Runtime's CPU provider (None without either)."""
    if not (HERE / "model.onnx").is_file():
        return None
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: comparing the stored outputs only")
        return None
    session = ort.InferenceSession(str(HERE / "model.onnx"), providers=["CPUExecutionProvider"])
    with np.load(HERE / "inputs.npz", allow_pickle=False) as data:
        feed = {i.name: data[i.name] for i in session.get_inputs()}
    rows = case["batch"]["stop"] - case["batch"]["start"]
    names = [o.name for o in session.get_outputs()]
    print(f"onnxruntime {ort.__version__} on {session.get_providers()[0]}")
    return {n: v[:rows] for n, v in zip(names, session.run(names, feed))}


def describe(failure: Case) -> str:
    """``atol 1e-06, rtol 0`` (and the peak term when there is one)."""
    text = f"atol {failure['atol']:g}, rtol {failure['rtol']:g}"
    if failure["rtol_peak"]:
        text += f", rtol_peak {failure['rtol_peak']:g} x peak {failure['peak']:.6g}"
    return text


def main() -> int:
    case = json.loads((HERE / "case.json").read_text())
    pair = case["pair"]
    print(f"pair {pair['left']} vs {pair['right']} ({pair['class']}, {pair['device']})")
    ort_out = onnxruntime_outputs(case)
    reproduced = False
    for failure in case["failures"]:
        c, left, right = judge(case, failure)
        reproduced |= not c.passed
        max_abs = float("nan") if c.max_abs is None else c.max_abs
        print(
            f"{c.output}: stored sides differ by max {max_abs:.3e}; {c.n_out} of "
            f"{c.n_elements} elements out of tolerance ({describe(failure)}): "
            f"{'passes' if c.passed else 'FAILS'}"
        )
        for message in c.messages:
            print(f"  {message}")
        if ort_out is None or c.output not in ort_out:
            continue
        for side, stored in (("left", left), ("right", right)):
            diff = ort_out[c.output].astype(np.float64) - stored
            if c.wrap_phase:
                diff = wrap_to_pi(diff)
            print(
                f"  onnxruntime here vs stored {side} ({pair[side]}): max {np.abs(diff).max():.3e}"
            )
    print("failure reproduced" if reproduced else "failure NOT reproduced")
    return 1 if reproduced else 0


if __name__ == "__main__":
    sys.exit(main())
