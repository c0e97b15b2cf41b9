"""Load exported artifacts back as checked callables: ``feed dict -> output dict`` (NumPy).

Each loader reads the signature stored with the artifact and checks every feed against it
before the backend sees it. This matters most for ``.pt2``: in torch 2.13 the module of a
loaded ExportedProgram guards shapes but not dtypes (float64 reaches ``Conv2d`` and fails with
the cryptic bias-type error; int64 runs silently), so load ``.pt2`` files through
:func:`load_program`, not bare ``torch.export.load``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.errors import ExportError
from export.exporters import SIGNATURE_EXTRA_FILE
from export.pt2_safety import check_pt2_archive
from export.signature import Signature
from export.ts_safety import check_torchscript_archive

__all__ = ["LoadedArtifact", "load_program", "load_torchscript"]


@dataclass
class LoadedArtifact:
    """A loaded artifact: its signature, the device it runs on and a checked ``__call__``."""

    path: Path
    kind: str
    signature: Signature
    device: str
    _fn: Callable[..., object]
    channels_last: bool = False  # 4-D inputs in channels-last memory (eager modes only)
    inference_mode: bool = True  # False: torch.no_grad (eager modes only)

    def __call__(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.signature.check_feed(feed)
        args = [self._tensor(feed[n]) for n in self.signature.input_names]
        grad: AbstractContextManager[Any] = (
            torch.inference_mode() if self.inference_mode else torch.no_grad()
        )
        with grad:
            out = self._fn(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if len(outs) != len(self.signature.outputs):
            raise ExportError(
                f"{self.kind} artifact {self.path} returned {len(outs)} outputs, "
                f"signature has {self.signature.output_names}"
            )
        return {n: t.detach().cpu().numpy() for n, t in zip(self.signature.output_names, outs)}

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        if self.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t


def load_torchscript(path: str | Path, device: str = "cpu") -> LoadedArtifact:
    """``torch.jit.load`` with the signature from the file's extra files."""
    path = Path(path)
    check_torchscript_archive(path)  # names only TorchScript's own types: nothing Python runs
    extra = {SIGNATURE_EXTRA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    signature = _signature_from_text(extra[SIGNATURE_EXTRA_FILE], path)
    return LoadedArtifact(path, "torchscript", signature, device, module)


def load_program(path: str | Path, device: str = "cpu") -> LoadedArtifact:
    """``torch.export.load`` with the signature from the file's extra files.

    The archive is checked first (:func:`safe_export_load`): nothing in it is ever unpickled.
    """
    path = Path(path)
    extra = {SIGNATURE_EXTRA_FILE: ""}
    program = safe_export_load(path, extra_files=extra)
    signature = _signature_from_text(extra[SIGNATURE_EXTRA_FILE], path)
    module = program.module()
    if device != "cpu":
        module = module.to(device)
    return LoadedArtifact(path, "exported-program", signature, device, module)


def safe_export_load(path: Path, extra_files: dict[str, Any] | None = None) -> Any:
    """``torch.export.load`` after proving it will unpickle nothing (see ``export.pt2_safety``).

    Raises:
        UnsafeArchiveError: (exit 2) the archive holds pickled objects or sample inputs that
            are not plain tensors.
    """
    check_pt2_archive(path)
    return torch.export.load(path, extra_files=extra_files)


def _signature_from_text(text: str | bytes, path: Path) -> Signature:
    if isinstance(text, bytes):
        text = text.decode()
    if not text:
        raise ExportError(
            f"{path} carries no PtychoPINN signature; it was not written by `python -m export build`"
        )
    return Signature.from_dict(json.loads(text))
