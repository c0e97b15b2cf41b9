"""One rule for "pass": the same arrays at the edge of a tolerance get the same verdict from
``parity check``, ``export verify`` and a reproducer folder's ``rerun.py``.

The reference is eager PyTorch's output moved, at one element, to 99 % (inside) or 101 %
(outside) of its tolerance: amplitude through ``atol + rtol * |ref|``, phase by the tolerance
plus a whole turn (only a wrap-aware rule sees a small error there). The tolerances come with
the reference (its provenance's ``tolerances``), wide enough that the runners' float32 noise
(~1e-7) cannot move an element across the edge.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from parity.reference import save_reference
from ptychopinn.main import main as host_main
from tests.conftest import export_cli, run_main

AMPLITUDE_ATOL, AMPLITUDE_RTOL, PHASE_ATOL = 1e-3, 1e-2, 1e-2
TOLERANCES = {
    "tolerances": {
        "amplitude": {"vs-reference": {"cpu": {"atol": AMPLITUDE_ATOL, "rtol": AMPLITUDE_RTOL}}},
        "phase": {"vs-reference": {"cpu": {"atol": PHASE_ATOL}}},
    }
}
RUNNERS = {"eager[cpu]", "torchscript[cpu]", "pt2[cpu]", "onnxruntime[cpu]"}


def _edge_reference(
    artifacts: Path, base: dict[str, np.ndarray], share: float
) -> dict[str, np.ndarray]:
    """Write the artifacts' reference: ``base`` (eager's outputs) with one element of each output
    at ``share`` of its tolerance; returns the arrays written."""
    ref = {k: v.copy() for k, v in base.items()}
    amplitude, phase = ref["amplitude"], ref["phase"]
    # amplitude, sample 1: |a - r| = share * (atol + rtol * |r|) with r = a - error
    a_at = (1, *np.unravel_index(np.argmax(amplitude[1]), amplitude.shape[1:]))
    a = float(amplitude[a_at])
    error = share * (AMPLITUDE_ATOL + AMPLITUDE_RTOL * a) / (1 + share * AMPLITUDE_RTOL)
    amplitude[a_at] = a - error
    # phase, sample 0, where the amplitude weights its error in full: a turn away, plus share
    p_at = (0, *np.unravel_index(np.argmax(amplitude[0]), amplitude.shape[1:]))
    assert amplitude[p_at] >= 1e-2  # the phase weight min(1, amplitude / 1e-2) is 1 here
    p = float(phase[p_at]) + share * PHASE_ATOL
    phase[p_at] = p - 2 * math.pi if p > 0 else p + 2 * math.pi
    path = artifacts / "reference.npz"
    provenance = json.loads(path.with_suffix(".json").read_text())
    for key in ("schema", "outputs"):  # save_reference writes them
        provenance.pop(key, None)
    save_reference(path, ref, {**provenance, "tolerances": TOLERANCES})
    return ref


def _check(artifacts: Path, repro: Path) -> tuple[int, dict[str, set[str]]]:
    """``parity check``: exit code and, per output, the verdicts of every runner vs reference."""
    proc = export_cli(
        "check", "--artifacts", str(artifacts), "--device", "cpu", "--repro", str(repro)
    )
    report = json.loads((artifacts / "report" / "report.json").read_text())
    verdicts: dict[str, set[str]] = {}
    for c in report["comparisons"]:
        if c["right"] == "tf-reference":
            assert c["left"] in RUNNERS, c["left"]
            verdicts.setdefault(c["output"], set()).add(c["status"])
        else:
            assert c["status"] == "pass", c  # eager vs its artifacts: untouched
    return proc.returncode, verdicts


def _verify(artifacts: Path) -> tuple[int, dict[str, str]]:
    """``export verify``: exit code and each output's PASSED/FAILED."""
    proc = run_main(host_main, "verify", str(artifacts))
    verdicts = {}
    for line in proc.stdout.splitlines():
        if " vs reference | " in line:
            output, _, rest = line.split(" | ", 2)
            verdicts[output] = "pass" if rest.startswith("PASSED") else "fail"
    return proc.returncode, verdicts


def _rerun(folder: Path) -> tuple[int, dict[str, str]]:
    """A reproducer's ``rerun.py``, in isolated mode: exit code and each output's verdict."""
    proc = subprocess.run(
        [sys.executable, "-I", str(folder / "rerun.py")], capture_output=True, text=True
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    verdicts = {}
    for line in proc.stdout.splitlines():
        for output in ("amplitude", "phase"):
            if line.startswith(f"{output}: stored sides differ"):
                verdicts[output] = "pass" if line.endswith("passes") else "fail"
    return proc.returncode, verdicts


def test_the_same_edge_arrays_get_the_same_verdict_from_check_verify_and_rerun(
    artifacts: Path, tmp_path: Path
) -> None:
    with np.load(artifacts / "reference.npz") as data:
        eager = {k: data[k] for k in data.files}
    repro = tmp_path / "repro"
    both = {"amplitude": "fail", "phase": "fail"}

    _edge_reference(artifacts, eager, 1.01)  # just outside
    assert _check(artifacts, repro) == (1, {"amplitude": {"fail"}, "phase": {"fail"}})
    assert _verify(artifacts) == (1, both)
    assert _rerun(repro) == (1, both)

    inside = _edge_reference(artifacts, eager, 0.99)
    assert _check(artifacts, tmp_path / "unused") == (0, {"amplitude": {"pass"}, "phase": {"pass"}})
    assert not (tmp_path / "unused").exists()  # a passing check writes no reproducer
    both = {"amplitude": "pass", "phase": "pass"}
    assert _verify(artifacts) == (0, both)
    rows = json.loads((repro / "case.json").read_text())["batch"]
    for name in ("amplitude", "phase"):  # the same arrays against the stored runner's outputs
        values = inside[name][rows["start"] : rows["stop"]]
        np.save(repro / f"right_{name}.npy", values, allow_pickle=False)
    assert _rerun(repro) == (0, both)
