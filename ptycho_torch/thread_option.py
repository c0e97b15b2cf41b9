"""The ``--threads`` value, parsed without torch (so option checks run before torch loads).

``auto`` (measure, at most the physical cores), ``default`` (leave torch's own default, one
thread per logical CPU: for comparison) or an integer >= 1. :mod:`ptycho_torch.threads` applies it.
:func:`short_spin_wait` sets how idle threads wait, before torch loads.
"""

from __future__ import annotations

__all__ = ["AUTO", "DEFAULT", "THREADS_HELP", "parse_threads", "short_spin_wait"]

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
