"""Check a Lightning ``--accelerator``/``--devices`` request against this machine, before any work.

Lightning itself finds out only when the ``Trainer`` is built, after the data was simulated or
read and the output folder made; :func:`check_devices` answers first, with what to do instead.
"""

from __future__ import annotations

import torch

from ptycho_torch.errors import ExitCode, ToolError
from ptycho_torch.threads import logical_cpus

__all__ = ["DeviceError", "check_devices", "parse_devices", "parse_num_nodes"]

_GPU = ("gpu", "cuda")
_ACCELERATORS = ("auto", "cpu", *_GPU)


class DeviceError(ToolError):
    """The machine cannot give the requested accelerator or device count (exit 3)."""

    exit_code = ExitCode.ENVIRONMENT


def parse_devices(value: str) -> int | str:
    """``"auto"`` or a positive count, as Lightning takes them; ``ValueError`` otherwise."""
    if value == "auto":
        return value
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"--devices must be 'auto' or an integer >= 1, got {value!r}")


def parse_num_nodes(value: str) -> int:
    """``--num-nodes``: an integer >= 1 (Lightning checks it against the launcher's world)."""
    if value.strip().isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"--num-nodes must be an integer >= 1, got {value!r}")


def check_devices(accelerator: str, devices: int | str) -> None:
    """Raise :class:`DeviceError` if this machine cannot give ``accelerator`` x ``devices``.

    CPU "devices" are Lightning processes; more of them than logical CPUs is refused too.
    """
    if accelerator not in _ACCELERATORS:
        raise ToolError(
            f"--accelerator {accelerator!r} is not supported here; use one of {_ACCELERATORS}"
        )
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator in _GPU and gpus == 0:
        raise DeviceError(
            f"--accelerator {accelerator} but torch sees no CUDA device "
            f"(torch {torch.__version__}); use --accelerator cpu or auto"
        )
    if devices == "auto":
        return
    on_gpu = accelerator in _GPU or (accelerator == "auto" and gpus > 0)
    available, kind = (gpus, "CUDA devices") if on_gpu else (logical_cpus(), "logical CPUs")
    if int(devices) > available:
        raise DeviceError(
            f"--devices {devices} but this machine has {available} {kind} "
            f"(accelerator {accelerator}); use --devices {available} or auto"
        )
