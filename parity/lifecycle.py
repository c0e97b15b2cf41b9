"""The load/free contract shared by parity runners and bisect sides (Polygraphy's runners).

``activate()`` loads what the object runs and sets ``is_active``; ``deactivate()`` frees it;
both are idempotent, and the object is a context manager, so ``with x:`` (or
``ExitStack.enter_context``) never leaves one loaded after an error. Subclasses implement
``_activate`` and ``_deactivate``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

__all__ = ["Activatable"]


class Activatable(ABC):
    """``with obj:`` loads on entry and frees on exit; a second ``activate`` does nothing."""

    is_active: bool = False

    def __enter__(self) -> Self:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load; a call while active does nothing (so an object prepared by hand is kept)."""
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        """Free; a call while inactive does nothing."""
        if self.is_active:
            self.is_active = False
            self._deactivate()

    @abstractmethod
    def _activate(self) -> None: ...

    @abstractmethod
    def _deactivate(self) -> None: ...
