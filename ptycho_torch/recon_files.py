"""The files a reconstruction is written as, torch-free: ``reconstruction.npz`` (complex64
``object``, float32 ``amplitude``, ``phase``, ``weight``), ``amplitude.png`` and ``phase.png``.

``python -m export infer`` and the torch-free ``python -m export predict`` write the same
files with :func:`write_reconstruction`; :func:`write_folder_atomically` puts a finished folder
in place so that a reader never finds a half-written one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ptycho_torch.atomic import replace_folder
from ptycho_torch.errors import PtychoError
from ptycho_torch.stitch import StitchedObject

__all__ = [
    "RECONSTRUCTION_FILES",
    "OutputFolderError",
    "check_out_folder",
    "write_folder_atomically",
    "write_reconstruction",
]

RECONSTRUCTION_FILES = ("reconstruction.npz", "amplitude.png", "phase.png")


class OutputFolderError(PtychoError):
    """The output folder cannot be replaced safely (exit code 2)."""


def write_reconstruction(stitched: StitchedObject, out: Path) -> list[Path]:
    """Write ``reconstruction.npz`` and amplitude/phase PNGs into ``out``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    obj = stitched.obj
    amplitude = np.abs(obj).astype(np.float32)
    phase = np.angle(obj).astype(np.float32)
    npz = out / "reconstruction.npz"
    np.savez(npz, object=obj, amplitude=amplitude, phase=phase, weight=stitched.weight)
    paths = [npz]
    for name, image, cmap in (("amplitude", amplitude, "gray"), ("phase", phase, "twilight")):
        fig, ax = plt.subplots(figsize=(6, 5))
        shown = ax.imshow(np.where(stitched.weight > 0, image, np.nan), cmap=cmap)
        ax.set_title(f"reconstructed {name}")
        fig.colorbar(shown, ax=ax)
        path = out / f"{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def check_out_folder(out: Path, owned: Iterable[str]) -> None:
    """Refuse an ``out`` that is a file or holds anything but the files named in ``owned``
    (what a previous run wrote): replacing it would delete someone's files.

    Raises:
        OutputFolderError: (exit 2) naming what is in the way.
    """
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file; pass a folder (it is created)")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in set(owned))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputFolderError(
                f"--out {out} holds files this command did not write ({shown}); it replaces the "
                "whole folder, so pass a new or empty folder"
            )


def write_folder_atomically(
    out: Path, write: Callable[[Path], list[Path]], owned: Iterable[str]
) -> list[Path]:
    """Write a folder with ``write(tmp)`` into a temporary sibling, then swap it in for ``out``
    (:func:`ptycho_torch.atomic.replace_folder`): ``out`` holds the previous complete output or
    the new one, never a mix or a half-written file. A previous ``out`` may hold only ``owned``
    files (:func:`check_out_folder`); it is deleted once the new one is in place.

    Returns:
        The written paths, inside ``out``.
    """
    owned = tuple(owned)
    check_out_folder(out, owned)
    staged: list[Path] = []

    def write_staged(tmp: Path) -> list[Path]:
        staged.append(tmp)
        return write(tmp)

    written = replace_folder(out, write_staged)
    return [out / p.relative_to(staged[0]) for p in written]
