"""The process settings of a training run (:func:`ptycho_torch.thread_option.training_process`).

Each runs in a fresh interpreter: both act once per process (libgomp reads its environment when
torch loads it; glibc's malloc settings hold for the whole process).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# A step's activations: four 16 MiB buffers (one activation of a batch of 16 at N=64 each),
# every page written, all freed at the end of the step; print the page faults per step.
_ROUNDS = """
import resource, sys
from ptycho_torch.thread_option import keep_freed_memory
made = keep_freed_memory() if sys.argv[1] == "keep" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():
    activations = [b"x" * (16 << 20) for _ in range(4)]
for _ in range(3):
    step()
before = faults()
for _ in range(5):
    step()
print(made, (faults() - before) / 5)
"""


def _run(mode: str, **env: str) -> tuple[str, float]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "PTYCHOPINN_KEEP"))
    }
    done = subprocess.run(
        [sys.executable, "-c", _ROUNDS, mode],
        capture_output=True, text=True, check=True, env={**clean, **env},
    )  # fmt: skip
    made, faults = done.stdout.split()
    return made, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_memory_is_reused_without_page_faults() -> None:
    _, faults_default = _run("default")
    made, faults_kept = _run("keep")
    assert made == "True"
    # 16384 pages a step: glibc gives them back to the kernel and faults them in again
    assert faults_default > 8000, faults_default
    assert faults_kept < 50, faults_kept


def test_it_is_off_with_its_variable_and_the_environment_keeps_glibcs_own_setting() -> None:
    made, faults = _run("keep", PTYCHOPINN_KEEP_FREED_MEMORY="0")
    assert (made, faults > 8000) == ("False", True), faults
    made, _ = _run("keep", MALLOC_TRIM_THRESHOLD_="1073741824")
    assert made == "False"


def test_training_sets_a_short_openmp_spin_unless_the_environment_says() -> None:
    code = (
        "import os; from ptycho_torch.thread_option import training_process; "
        "training_process(); print(os.environ.get('GOMP_SPINCOUNT'))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    run = [sys.executable, "-c", code]
    assert subprocess.run(run, capture_output=True, text=True, env=clean).stdout.strip() == "10000"
    active = {**clean, "OMP_WAIT_POLICY": "ACTIVE"}
    assert subprocess.run(run, capture_output=True, text=True, env=active).stdout.strip() == "None"
