"""The ``--threads`` value, parsed without torch (so option checks run before torch loads).

``auto`` (measure, at most the physical cores), ``default`` (leave torch's own default, one
thread per logical CPU: for comparison) or an integer >= 1. :mod:`ptycho_torch.threads` applies it.
:func:`short_spin_wait` sets how idle threads wait, before torch loads;
:func:`keep_freed_memory` keeps freed memory in the process (glibc). ``train`` and
``bench-train`` call both (:func:`training_process`).
"""

from __future__ import annotations

__all__ = [
    "AUTO",
    "DEFAULT",
    "KEEP_FREED_MEMORY",
    "THREADS_HELP",
    "keep_freed_memory",
    "parse_threads",
    "short_spin_wait",
    "training_process",
]

AUTO = "auto"
DEFAULT = "default"  # do not call torch.set_num_threads: torch's own default

THREADS_HELP = (  # the one help text of --threads (ptychopinn.command)
    "CPU threads of torch (and of ONNX Runtime where the command tunes it): auto (measured, at "
    "most the physical cores), N (a fixed count: give one for a bit-reproducible training run), "
    "or default (torch's own: one per logical CPU)"
)


def parse_threads(value: str | int) -> str | int:
    """``"auto"``, ``"default"`` or an int >= 1; raises ``ValueError`` naming the accepted values."""
    text = str(value).strip().lower()
    if isinstance(value, int) or text.isdigit():
        n = int(value)
        if n >= 1:
            return n
    elif text in (AUTO, DEFAULT):
        return text
    raise ValueError(f"--threads must be 'auto', 'default' or an integer >= 1, got {value!r}")


def short_spin_wait() -> bool:
    """Let torch's idle OpenMP threads spin only briefly before they sleep
    (``GOMP_SPINCOUNT=10000``, libgomp's, which torch's Linux wheels use), unless the
    environment sets ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` itself.

    libgomp reads both once, when torch loads it, so this must run before ``import torch``; it
    returns whether it could still take effect. By default an idle thread spins for about
    300,000 iterations: on a small machine shared with other jobs it holds the core that a
    descheduled team-mate needs, and training steps at 2 threads ran several times slower than
    with threads that sleep (docs/benchmarks.md, issue 23). Sleeping at once
    (``OMP_WAIT_POLICY=PASSIVE``) costs a wake-up per parallel region (9% of a step on a lightly
    loaded machine); a short spin keeps back-to-back operators fast and gives the core back
    between steps. ``OMP_WAIT_POLICY=ACTIVE`` spins without end, as torch would otherwise.
    """
    import os
    import sys

    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
    return "torch" not in sys.modules


# glibc's mallopt parameters (malloc.h) and the largest mmap threshold it accepts on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 1 << 30
KEEP_FREED_MEMORY = "PTYCHOPINN_KEEP_FREED_MEMORY"  # "0": glibc's own behaviour


def keep_freed_memory() -> bool:
    """Let glibc keep the memory a training step frees for the next step, instead of handing
    it back to the kernel and taking it again (zeroed, one page fault per 4 KiB) a few
    milliseconds later. Off with ``PTYCHOPINN_KEEP_FREED_MEMORY=0``; the environment's own
    ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` also leave glibc as it is set.

    torch's CPU tensors come from ``malloc``; glibc adapts its mmap threshold to the sizes it
    sees, but still gives a freed heap top above twice that back to the kernel, and a step
    frees hundreds of MiB at once: each step faulted 10,000-24,000 pages back in (a few
    percent of a step at 2 threads; docs/benchmarks.md). With allocations up to 32 MiB served
    from the heap and a free heap top kept up to 1 GiB, a step faults none. It changes no
    result; the process keeps its peak heap until it ends. Returns whether the settings were
    made (not with a C library other than glibc).
    """
    import ctypes
    import os
    import platform

    if os.environ.get(KEEP_FREED_MEMORY, "1") == "0":
        return False
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        return False
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    return bool(
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def training_process() -> None:
    """The process settings of a training run, before torch loads: :func:`short_spin_wait` and
    :func:`keep_freed_memory` (``train``, ``bench-train``)."""
    short_spin_wait()
    keep_freed_memory()
