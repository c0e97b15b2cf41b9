"""A model.ts whose pickles name a Python callable is refused before torch.jit.load."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

from export.artifacts import load_torchscript
from export.build import BuildResult
from export.pt2_safety import UnsafeArchiveError
from export.ts_safety import check_torchscript_archive


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_built_torchscript_passes(built: BuildResult) -> None:
    check_torchscript_archive(built.out / "model.ts")


@pytest.mark.parametrize("member", ["data.pkl", "constants.pkl"])
def test_planted_payload_is_refused_and_never_runs(
    built: BuildResult, tmp_path: Path, member: str
) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "model.ts"
    with zipfile.ZipFile(built.out / "model.ts") as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            raw = zin.read(info.filename)
            if info.filename.endswith("/" + member):
                raw = pickle.dumps(_Payload(marker), protocol=2)
            zout.writestr(info, raw)
    with pytest.raises(UnsafeArchiveError, match=r"builtins\.open|io\.open"):
        load_torchscript(bad)
    assert not marker.exists()


def test_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.ts"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UnsafeArchiveError, match="not a TorchScript archive"):
        check_torchscript_archive(bad)
