"""Was the machine busy while the bench tuned? The guard of ``--save-tuning``.

The tuning's choice (above all ONNX Runtime's intra-op thread count) goes into the manifest and
every host applies it. Measured while other work held the cores, it is that load's choice, not
the machine's: fewer threads win because more had nobody to run on. So the bench refuses to
record settings when the 1-minute load average exceeded the CPUs this process may use at the
start or at the end of the tuning, unless told ``--save-tuning-anyway``, which records the load
with the settings. The load is read through :func:`os.getloadavg` (tests replace it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from export.session import SessionSettings
from parity.errors import ParityError
from ptycho_torch.threads import logical_cpus

__all__ = [
    "BusyMachineError",
    "MachineLoad",
    "busy_note",
    "check_idle",
    "read_load",
    "settings_to_record",
]

log = logging.getLogger(__name__)


class BusyMachineError(ParityError):
    """``--save-tuning`` on a machine whose load exceeded its cores (exit 2; nothing saved)."""


@dataclass(frozen=True)
class MachineLoad:
    """The 1, 5 and 15 minute load averages (empty where the OS has none) and the CPUs this
    process may run on (its affinity; :func:`ptycho_torch.threads.logical_cpus`)."""

    averages: tuple[float, ...]
    cores: int

    @property
    def busy(self) -> bool:
        """More runnable work than cores over the last minute."""
        return bool(self.averages) and self.averages[0] > self.cores

    def describe(self) -> str:
        one = f"{self.averages[0]:.2f}" if self.averages else "unknown"
        return f"1-minute load average {one} on {self.cores} cores"


def read_load() -> MachineLoad:
    """The load now (no load averages on platforms without ``os.getloadavg``)."""
    try:
        averages = tuple(round(x, 2) for x in os.getloadavg())
    except (AttributeError, OSError):
        averages = ()
    return MachineLoad(averages, logical_cpus())


def check_idle(start: MachineLoad, end: MachineLoad | None, anyway: bool) -> None:
    """Refuse to record tuning measured on a busy machine (``end`` None: before the tuning).

    Raises:
        BusyMachineError: (exit 2) the load was above the core count and ``anyway`` is False.
    """
    when = [(w, load) for w, load in (("start", start), ("end", end)) if load and load.busy]
    if not when or anyway:
        return
    moment, load = when[0]
    raise BusyMachineError(
        f"--save-tuning refused: the {load.describe()} at the {moment} of the tuning was above "
        "the core count, so other work skewed the timings the manifest would make every host "
        "use; nothing was recorded. Rerun when the machine is idle (watch `uptime`), or pass "
        "--save-tuning-anyway to record them with the load noted in the manifest"
    )


def busy_note(start: MachineLoad, end: MachineLoad) -> str:
    """What ``--save-tuning-anyway`` records with the settings, or "" when neither was busy."""
    if not (start.busy or end.busy):
        return ""
    one = [f"{x.averages[0]:.2f}" for x in (start, end)]
    return (
        f"1-minute load average {one[0]} at the start and {one[1]} at the end of the tuning on "
        f"{end.cores} cores (saved with --save-tuning-anyway)"
    )


def settings_to_record(
    session: SessionSettings, start: MachineLoad, end: MachineLoad, anyway: bool
) -> SessionSettings:
    """The settings ``--save-tuning`` records: refused (exit 2) if the machine was busy, unless
    ``anyway``, which notes the load in them (and warns)."""
    check_idle(start, end, anyway)
    note = busy_note(start, end)
    if not note:
        return session
    log.warning("bench: recording ONNX Runtime settings measured on a busy machine: %s", note)
    return replace(session, measured_while_busy=note)
