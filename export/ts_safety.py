"""Refuse a TorchScript archive whose pickles reference anything but TorchScript's own types.

``torch.jit.load`` unpickles ``data.pkl`` and ``constants.pkl`` with TorchScript's C++
unpickler, which resolves globals only against a fixed table (tensor rebuild functions,
storages, ``collections.OrderedDict``, ``torch.jit._pickle`` helpers) and the archive's own
compiled ``__torch__`` classes; it has no way to call a Python function. This check is defence
in depth with a readable message: every global a pickle member names must be one of those, so
an archive carrying ``os.system`` or any other Python callable is refused before
``torch.jit.load`` sees it. The TorchScript code in ``code/`` is a compiled program that runs
inside the TorchScript interpreter (no Python, no imports); it is trusted as much as the model.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

from export.pt2_safety import UnsafeArchiveError

__all__ = ["check_torchscript_archive"]

_ALLOWED = {
    "collections.OrderedDict",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_qtensor",
}
_ALLOWED_PREFIXES = ("__torch__.", "torch.jit._pickle.")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING"}


def check_torchscript_archive(path: str | Path) -> None:
    """Raise :class:`UnsafeArchiveError` if a pickle in ``path`` names a foreign global."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UnsafeArchiveError(f"{path} is not a TorchScript archive (zip): {exc}") from None
    problems: list[str] = []
    with archive:
        for name in archive.namelist():
            if name.endswith(".pkl"):
                problems += [f"{name}: {g}" for g in _foreign_globals(archive.read(name))]
    if problems:
        raise UnsafeArchiveError(
            f"refusing to load {path}: its pickles name globals that are not TorchScript types "
            f"({'; '.join(problems[:5])}{'; ...' if len(problems) > 5 else ''}). Artifacts "
            "written by `python -m export build` never do; rebuild model.ts from a trusted "
            "checkpoint"
        )


def _foreign_globals(data: bytes) -> list[str]:
    strings: list[str] = []
    found: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _STRING_OPS:
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown>")
            elif op.name in ("REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX") and not found:
                found.append(f"<{op.name} without a global>")
    except Exception as exc:  # noqa: BLE001 - a pickle we cannot parse is not one we load
        return [f"unreadable pickle ({type(exc).__name__}: {exc})"]
    return [g for g in dict.fromkeys(found) if not _allowed(g)]


def _allowed(name: str) -> bool:
    if name in _ALLOWED or name.startswith(_ALLOWED_PREFIXES):
        return True
    module, _, cls = name.rpartition(".")
    return module == "torch" and cls.endswith("Storage") and cls.isidentifier()  # FloatStorage
