"""Shared edges of the ptycho_torch command lines: logging setup and the exit-code policy.

Exit codes (ARCHITECTURE.md): 0 success, 2 usage or bad input. A :class:`PtychoError` (bad NPZ,
missing checkpoint, invalid option value) becomes one ``error: ...`` line on stderr, never a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from ptycho_torch.errors import PtychoError

__all__ = ["EXIT_OK", "EXIT_USAGE", "UsageError", "run_cli"]

EXIT_OK = 0
EXIT_USAGE = 2


class UsageError(PtychoError):
    """An option value the command cannot use (e.g. an invalid configuration)."""


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a CLI body with logging configured; map typed errors to exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = body()
    except PtychoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return EXIT_OK if code is None else code
