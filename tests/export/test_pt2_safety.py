"""A model.pt2 carrying a pickle payload is refused before anything is unpickled.

``torch.export.load`` unpickles weights flagged ``use_pickle`` and falls back to
``weights_only=False`` for sample inputs; an artifacts folder from someone else must not run
code on the machine that checks it (the manifest is not signed: its sha256 can be updated).
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from export.artifacts import load_program
from export.build import BuildResult
from export.manifest import sha256_file
from export.pt2_safety import UnsafeArchiveError, check_pt2_archive


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _rewrite(src: Path, dst: Path, replace: dict[str, bytes]) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info.filename)))


def _member(path: Path, suffix: str) -> str:
    with zipfile.ZipFile(path) as z:
        return next(n for n in z.namelist() if n.endswith(suffix))


def test_built_program_passes_the_check(built: BuildResult) -> None:
    check_pt2_archive(built.out / "model.pt2")


def test_pickled_weight_is_refused_and_never_run(built: BuildResult, tmp_path: Path) -> None:
    src, bad, marker = built.out / "model.pt2", tmp_path / "model.pt2", tmp_path / "PWNED"
    config_name = _member(src, "model_weights_config.json")
    with zipfile.ZipFile(src) as z:
        config = json.loads(z.read(config_name))
    first = next(iter(config["config"]))
    config["config"][first]["use_pickle"] = True
    weight = config_name.rsplit("/", 1)[0] + "/" + config["config"][first]["path_name"]
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    _rewrite(src, bad, {config_name: json.dumps(config).encode(), weight: buffer.getvalue()})
    with pytest.raises(UnsafeArchiveError, match="pickled"):
        load_program(bad)
    assert not marker.exists()


def test_sample_inputs_that_are_not_tensors_are_refused(built: BuildResult, tmp_path: Path) -> None:
    src, bad, marker = built.out / "model.pt2", tmp_path / "model.pt2", tmp_path / "PWNED"
    buffer = io.BytesIO()
    torch.save(_Payload(marker), buffer)
    _rewrite(src, bad, {_member(src, "sample_inputs/model.pt"): buffer.getvalue()})
    with pytest.raises(UnsafeArchiveError, match="sample inputs"):
        load_program(bad)
    assert not marker.exists()


# the planted pickle (protocol 4) reaches torch.load(weights_only=True), which says so and refuses
@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")
def test_parity_check_refuses_a_planted_program_with_exit_2(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ptychopinn.main import main

    folder, marker = tmp_path / "artifacts", tmp_path / "PWNED"
    shutil.copytree(built.out, folder)
    buffer = io.BytesIO()
    pickle.dump(_Payload(marker), buffer)
    src = built.out / "model.pt2"
    _rewrite(src, folder / "model.pt2", {_member(src, "sample_inputs/model.pt"): buffer.getvalue()})
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model.pt2"]["sha256"] = sha256_file(folder / "model.pt2")  # not signed
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert main(["check", "--artifacts", str(folder), "--device", "cpu"]) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()
