"""The ``--threads`` value, parsed without torch (so option checks run before torch loads).

``auto`` (measure, at most the physical cores), ``default`` (leave torch's own default, one
thread per logical CPU: for comparison) or an integer >= 1. :mod:`ptycho_torch.threads` applies it.
"""

from __future__ import annotations

__all__ = ["AUTO", "DEFAULT", "THREADS_HELP", "parse_threads"]

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
