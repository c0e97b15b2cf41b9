"""A device named by a plain string, checked once where it comes in.

:data:`core.tolerances.Device` is the vocabulary (``cpu``, ``cuda``); a command-line option or a
Ptychodus setting arrives as a ``str``. :func:`as_device` is the one conversion: past it, the
device is typed ``Device`` and nothing checks it again.
"""

from __future__ import annotations

from core.tolerances import DEVICES, Device

__all__ = ["as_device"]


def as_device(value: str, what: str = "device") -> Device:
    """``value`` as a :data:`~core.tolerances.Device`.

    Args:
        value: The string given (a command-line option, a settings value).
        what: What gave it, for the message (``--device``, ``the Device setting``).

    Raises:
        ValueError: ``value`` is not one of :data:`~core.tolerances.DEVICES`; the message names
            them and what was given.
    """
    if value not in DEVICES:
        raise ValueError(f"{what} must be one of {', '.join(DEVICES)}, got {value!r}")
    return value
