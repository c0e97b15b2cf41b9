"""A copied artifacts folder is self-contained: `parity check` runs from any folder without
the checkpoint it was built from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from export.build import BuildResult
from ptychopinn.main import main as parity_main


def test_check_on_a_copied_folder_from_another_directory(
    parity_build: BuildResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    copy = tmp_path / "elsewhere" / "copied-artifacts"
    shutil.copytree(parity_build.out, copy)
    shutil.rmtree(copy / "report", ignore_errors=True)
    original = Path(parity_build.manifest.checkpoint.path)
    hidden = original.with_name(original.name + ".hidden")
    original.rename(hidden)  # the build's checkpoint is gone, as on another machine
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    try:
        code = parity_main(["check", "--artifacts", "../elsewhere/copied-artifacts"])
    finally:
        hidden.rename(original)
    out = capsys.readouterr()
    assert code == 0, out.err
    assert (copy / "report" / "report.json").is_file()
