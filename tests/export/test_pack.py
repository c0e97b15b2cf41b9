"""Moving artifacts to a host: a copied dangling link is named, and ``export pack`` writes one
archive that ``verify`` and ``predict`` read as it is, safely, or refuse with a clear exit code."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ptycho_torch.errors import ExitCode
from ptycho_torch.simulate import SimulationConfig, simulate_scan, write_npz
from ptychopinn.main import main
from tests.conftest import export_cli

if TYPE_CHECKING:
    from export.build import BuildResult


def _host(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """``python -m export ARGS`` in-process: exit code, stdout, the one ``error:`` line."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == (code != 0) and "Traceback" not in captured.err, captured.err
    return code, captured.out, errors[0] if errors else ""


@pytest.fixture(scope="module")
def archive(built: BuildResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``built`` packed through ``python -m export pack``; do not modify it."""
    out = tmp_path_factory.mktemp("pack") / "artifacts.tar.gz"
    done = export_cli("pack", str(built.out), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture()
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where archives are unpacked during the test (empty again after each command)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _rewrite(
    archive: Path,
    out: Path,
    change: Callable[[tarfile.TarInfo, bytes], bytes | None] = lambda m, d: d,
    extra: tarfile.TarInfo | None = None,
) -> Path:
    """A copy of ``archive`` with each member's bytes replaced by ``change`` (None: dropped),
    then ``extra`` (a regular one holding ``evil``)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            source = src.extractfile(member)
            assert source is not None
            data = change(member, source.read())
            if data is not None:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
        if extra is not None:
            dst.addfile(extra, io.BytesIO(b"evil") if extra.isreg() else None)
    return out


def test_a_copy_of_the_published_link_is_named_with_the_copy_advice(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert built.out.is_symlink()  # `export build --out` publishes a relative link
    copy = tmp_path / "host" / "artifacts"
    copy.parent.mkdir()
    subprocess.run(["cp", "-r", str(built.out), str(copy)], check=True)  # what users type
    assert copy.is_symlink() and not copy.exists()
    scan = tmp_path / "scan.npz"
    for args in (
        ["verify", copy],
        ["predict", "--artifacts", copy, "--data", scan, "--out", tmp_path / "r"],
    ):
        code, _, error = _host(capsys, *args)
        assert code == ExitCode.USAGE
        assert error == (
            f"error: {copy} is a symbolic link to {copy.readlink()} that does not exist here "
            "(copied without following links?); copy with `cp -rL` or `rsync -L`, or use "
            "`python -m export pack`"
        )


def test_the_packed_archive_verifies_and_its_unpacked_copy_is_removed(
    built: BuildResult, archive: Path, temp_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and "model.onnx" in names and "report" not in names
    code, out, _ = _host(capsys, "verify", archive)
    assert code == 0 and f"verified {archive}: {len(built.manifest.files)} files match" in out, out
    assert list(temp_root.iterdir()) == []


def test_packing_again_gives_the_same_bytes_and_keeps_the_archive(
    built: BuildResult, archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "again.tar.gz"
    assert _host(capsys, "pack", built.out, "--out", out)[0] == 0
    assert out.read_bytes() == archive.read_bytes()
    code, printed, _ = _host(capsys, "pack", built.out, "--out", out)  # no --force needed
    assert code == 0 and printed.startswith(
        f"already packed (unchanged) manifest.json and the {len(built.manifest.files)} files"
    )


def test_pack_refuses_to_replace_a_different_file_without_force(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "artifacts.tar.gz"
    out.write_bytes(b"someone else's file")
    code, _, error = _host(capsys, "pack", built.out, "--out", out)
    assert code == ExitCode.USAGE and "exists and differs" in error and "--force" in error
    assert out.read_bytes() == b"someone else's file"
    assert [p.name for p in tmp_path.iterdir()] == ["artifacts.tar.gz"]  # no temporary left
    assert _host(capsys, "pack", built.out, "--out", out, "--force")[0] == 0
    assert tarfile.is_tarfile(out)


def test_pack_refuses_a_changed_folder_with_exit_4_and_writes_nothing(
    built: BuildResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = shutil.copytree(built.out, tmp_path / "artifacts")  # the link's files
    with (folder / "model.onnx").open("ab") as f:
        f.write(b"\0")
    out = tmp_path / "a.tar.gz"
    code, _, error = _host(capsys, "pack", folder, "--out", out)
    assert code == ExitCode.STALE and "model.onnx" in error and not out.exists()


def test_predict_from_the_archive_equals_predict_from_the_folder(
    built: BuildResult, archive: Path, tmp_path: Path, temp_root: Path
) -> None:
    scan = write_npz(simulate_scan(SimulationConfig(seed=6, n_images=41)), tmp_path / "scan.npz")
    for name, artifacts in (("folder", built.out), ("archive", archive)):
        argv = ["predict", "--artifacts", str(artifacts), "--data", str(scan)]
        assert main([*argv, "--out", str(tmp_path / name), "--progress-every", "0"]) == 0
    with (
        np.load(tmp_path / "folder" / "reconstruction.npz") as want,
        np.load(tmp_path / "archive" / "reconstruction.npz") as got,
    ):
        assert want.files == got.files
        for key in want.files:
            assert np.array_equal(want[key], got[key]), key
    record = json.loads((tmp_path / "archive" / "prediction.json").read_text())
    assert record["artifacts"] == str(archive.resolve())
    assert list(temp_root.iterdir()) == []


def test_an_archive_with_changed_member_bytes_is_exit_4_naming_it(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def flip(member: tarfile.TarInfo, data: bytes) -> bytes:
        if member.name != "model.onnx":
            return data
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 0x01
        return bytes(changed)

    tampered = _rewrite(archive, tmp_path / "tampered.tar.gz", flip)
    code, _, error = _host(capsys, "verify", tampered)
    assert code == ExitCode.STALE
    assert f"{tampered}: differs from manifest.json (size or sha256) model.onnx" in error


def test_an_archive_missing_a_listed_file_is_exit_4(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drop = _rewrite(
        archive, tmp_path / "drop.tar.gz", lambda m, d: None if m.name == "inputs.npz" else d
    )
    code, _, error = _host(capsys, "verify", drop)
    assert code == ExitCode.STALE and "missing inputs.npz" in error


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda a, p: p.write_bytes(a.read_bytes()[: a.stat().st_size // 2]),
            "is corrupted or truncated",
        ),
        (lambda a, p: p.write_text("not an archive"), "is not a .tar.gz archive"),
        (lambda a, p: None, "not found"),
    ],
    ids=["truncated", "not-a-tar-gz", "missing"],
)
def test_an_unreadable_archive_is_exit_2_naming_it(
    make: Callable[[Path, Path], object],
    expected: str,
    archive: Path,
    tmp_path: Path,
    temp_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "broken.tar.gz"
    make(archive, broken)
    code, _, error = _host(capsys, "verify", broken)
    assert code == ExitCode.USAGE and str(broken) in error and expected in error, error
    assert list(temp_root.iterdir()) == []


def _info(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, target, 4 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "why"),
    [
        (_info("../evil"), "a path outside the folder"),
        (_info("/tmp/evil"), "a path outside the folder"),
        (_info("sub/evil"), "not at the top level"),
        (_info("evil", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
        (_info("evil", tarfile.LNKTYPE, "model.onnx"), "a link"),
        (_info("evil", tarfile.CHRTYPE), "not a regular file"),
        (_info("evil"), "manifest.json does not list it"),
        (_info("model.onnx"), "listed twice"),
    ],
    ids=["dotdot", "absolute", "subfolder", "symlink", "hardlink", "device", "unlisted", "twice"],
)
def test_an_unsafe_member_is_exit_2_and_nothing_is_unpacked(
    member: tarfile.TarInfo,
    why: str,
    archive: Path,
    tmp_path: Path,
    temp_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hostile = _rewrite(archive, tmp_path / "hostile.tar.gz", extra=member)
    code, _, error = _host(capsys, "verify", hostile)
    assert code == ExitCode.USAGE and f"refused member {member.name!r} ({why})" in error, error
    assert list(temp_root.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_an_archive_without_manifest_is_exit_2(
    archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = _rewrite(
        archive, tmp_path / "bare.tar.gz", lambda m, d: None if m.name == "manifest.json" else d
    )
    code, _, error = _host(capsys, "verify", bare)
    assert code == ExitCode.USAGE and f"{bare} holds no manifest.json" in error


def test_commands_that_need_a_folder_say_how_to_unpack_an_archive(
    archive: Path, tmp_path: Path
) -> None:
    done = export_cli("triton", "--artifacts", str(archive), "--out", str(tmp_path / "repo"))
    assert done.returncode == ExitCode.USAGE and "tar -xzf" in done.stderr, done.stderr
