"""Hostile runs against an earlier report: a usage error never erases it, a new report replaces
the folder whole (no stale error maps), and the report path's OS failures are exit 2.

One failing check (a scaled ONNX conv, as ``tests/parity/test_repro.py`` plants it) is made once
per module; each test takes its own copy of that artifacts folder with its FAIL report.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from export.build import BuildResult
from parity.check import CheckOptions, run_check
from parity.errors import ParityError
from parity.results import ParityReport
from scripts.plant_onnx_fault import scale_onnx_conv
from tests.conftest import export_cli, placeholder_error_maps

Snapshot = dict[str, bytes | None]  # relative path -> file bytes (None: a folder)


def _snapshot(root: Path) -> Snapshot:
    """Every file and folder under ``root``, hidden ones included, with the files' bytes."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def failed_once(parity_build: BuildResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts whose ONNX model was perturbed, with the FAIL report of one check in report/."""
    artifacts = tmp_path_factory.mktemp("failed") / "artifacts"
    shutil.copytree(parity_build.out, artifacts)
    scale_onnx_conv(artifacts, "encoder.1.convs.conv2", 1.01)
    with pytest.MonkeyPatch.context() as mp:
        placeholder_error_maps(mp)  # what the tests get; none of them looks inside the images
        run = export_cli("check", "--artifacts", str(artifacts), "--device", "cpu")
    assert run.returncode == 1, run.stderr
    return artifacts


@pytest.fixture()
def failed(failed_once: Path, tmp_path: Path) -> Path:
    """A private copy of ``failed_once`` (FAIL report, notes and error maps included)."""
    copy = tmp_path / "artifacts"
    shutil.copytree(failed_once, copy)
    report = ParityReport.load_json(copy / "report" / "report.json")
    assert report.verdict == "fail" and report.notes and report.error_maps
    return copy


def test_fail_report_survives_repro_into_a_non_empty_folder_byte_identical(
    failed: Path, tmp_path: Path
) -> None:
    repro = tmp_path / "repro"
    repro.mkdir()
    (repro / "keep.txt").write_text("mine")
    before, repro_before = _snapshot(failed), _snapshot(repro)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu", "--repro", str(repro))
    assert run.returncode == 2, run.stderr
    assert "already exists and is not empty" in run.stderr
    assert _snapshot(failed) == before  # report.md/html/json, junit.xml, error_maps/: untouched
    assert _snapshot(repro) == repro_before


USAGE_ERRORS: dict[str, Callable[[Path, Path], list[str]]] = {
    "bad --device": lambda a, t: ["--device", "gpu"],
    "bad --threads": lambda a, t: ["--threads", "0"],
    "missing --reference": lambda a, t: ["--reference", str(t / "nowhere.npz")],
    "unreadable --reference": lambda a, t: ["--reference", str(_write(t / "ref.npz", b"junk"))],
    "bad --tolerances": lambda a, t: [
        "--tolerances",
        str(_write(t / "tol.json", b'{"schema": 1, "entries": {"nonsense": 1}}')),
    ],
    "missing --inputs": lambda a, t: ["--inputs", str(t / "nowhere.npz")],
    "--repro inside the report": lambda a, t: ["--repro", str(a / "report" / "repro")],
    "--calibrate inside the report": lambda a, t: ["--calibrate", str(a / "report" / "t.json")],
    "--calibrate a folder": lambda a, t: ["--calibrate", str(t)],
    "--calibrate under a file": lambda a, t: [
        "--calibrate",
        str(_write(t / "f.txt", b"mine") / "t.json"),
    ],
    "--report-dir a file": lambda a, t: ["--report-dir", str(_write(t / "r.txt", b"mine"))],
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_error_leaves_the_earlier_fail_report_byte_identical(
    case: str, failed: Path, tmp_path: Path
) -> None:
    extra = USAGE_ERRORS[case](failed, tmp_path)
    before, around = _snapshot(failed), _snapshot(tmp_path)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu", *extra)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert _snapshot(failed) == before
    assert _snapshot(tmp_path) == around  # nothing written beside it either


def test_bad_device_is_refused_before_anything_is_written(failed: Path) -> None:
    before = _snapshot(failed)
    with pytest.raises(ParityError, match="--device must be one of auto, cpu, cuda"):
        run_check(CheckOptions(artifacts=failed, device="gpu"))
    assert _snapshot(failed) == before


def test_new_report_replaces_the_old_whole_leaving_no_stale_error_map(
    failed: Path, parity_build: BuildResult
) -> None:
    old_maps = {p.name for p in (failed / "report" / "error_maps").iterdir()}
    (failed / "report" / "error_maps" / "phase_stale_s9.png").write_bytes(b"\x89PNG old run")
    for name in ("model.onnx", "manifest.json"):  # undo the fault: the check passes now
        shutil.copy2(parity_build.out / name, failed / name)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 0, run.stderr
    report = ParityReport.load_json(failed / "report" / "report.json")
    assert report.verdict == "pass" and not any("failed" in n for n in report.notes)
    maps = {p.name for p in (failed / "report" / "error_maps").iterdir()}
    assert maps == {Path(m.png).name for m in report.maps()}  # exactly this run's maps
    assert maps < old_maps  # the failing pair's maps of the FAIL run are gone with it
    assert "PASS" in (failed / "report" / "report.md").read_text()
    assert not [p.name for p in failed.iterdir() if p.name.startswith(".report")]


def test_changed_artifact_replaces_the_fail_report_whole_with_an_error_report(
    failed: Path,
) -> None:
    with (failed / "model.onnx").open("r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 4, run.stderr
    report = ParityReport.load_json(failed / "report" / "report.json")
    assert report.verdict == "error" and report.exit_code == 4
    assert "model.onnx" in (report.error or "")
    names = {p.name for p in (failed / "report").iterdir()}
    assert names == {"report.json", "report.md", "report.html", "junit.xml"}  # no old maps


def test_report_dir_that_is_a_file_is_exit_2_naming_it_and_nothing_changes(
    failed: Path, tmp_path: Path
) -> None:
    target = _write(tmp_path / "report.txt", b"my notes")
    before = _snapshot(failed)
    run = export_cli(
        "check", "--artifacts", str(failed), "--device", "cpu", "--report-dir", str(target)
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("error:") == 1 and str(target) in run.stderr
    assert "not a folder" in run.stderr
    assert target.read_bytes() == b"my notes" and _snapshot(failed) == before


def test_report_dir_under_a_file_is_exit_2_naming_the_file(failed: Path, tmp_path: Path) -> None:
    blocker = _write(tmp_path / "blocker", b"x")
    run = export_cli(
        "check",
        "--artifacts",
        str(failed),
        "--device",
        "cpu",
        "--report-dir",
        str(blocker / "reports"),
    )
    assert run.returncode == 2, run.stderr
    assert f"{blocker} is not a folder" in run.stderr
    assert blocker.read_bytes() == b"x"


def test_report_dir_holding_foreign_files_is_refused_and_kept(failed: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    (reports / "error_maps").mkdir(parents=True)
    (reports / "thesis.tex").write_text("precious")
    (reports / "error_maps" / "notes.txt").write_text("mine too")
    before = _snapshot(reports)
    run = export_cli(
        "check", "--artifacts", str(failed), "--device", "cpu", "--report-dir", str(reports)
    )
    assert run.returncode == 2, run.stderr
    assert str(reports) in run.stderr
    assert "thesis.tex" in run.stderr and "error_maps/notes.txt" in run.stderr
    assert _snapshot(reports) == before


def test_unwritable_report_parent_is_exit_2_with_the_reason(
    failed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # root ignores permission bits, so the refusal is simulated where the check asks the OS
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == failed else real_access(p, mode)
    )
    before = _snapshot(failed)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 2, run.stderr
    assert f"{failed} is not writable (permission denied)" in run.stderr
    assert _snapshot(failed) == before


def test_os_failure_swapping_the_report_is_exit_2_and_keeps_the_old_one(
    failed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ptycho_torch.atomic

    def refuse(a: Path, b: Path) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(ptycho_torch.atomic, "rename_exchange", refuse)
    before = _snapshot(failed)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 2, run.stderr  # never 70: the OS refused, no bug
    assert f"cannot write report folder {failed / 'report'}" in run.stderr
    assert os.strerror(errno.EIO) in run.stderr
    assert _snapshot(failed) == before  # old report kept, the staged one removed


def test_without_an_atomic_exchange_the_report_is_still_replaced_whole(
    failed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ptycho_torch.atomic

    def unsupported(a: Path, b: Path) -> None:
        raise OSError(errno.EINVAL, "renameat2 cannot exchange here")

    monkeypatch.setattr(ptycho_torch.atomic, "rename_exchange", unsupported)
    (failed / "report" / "error_maps" / "phase_stale_s9.png").write_bytes(b"\x89PNG old run")
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 1, run.stderr
    report = ParityReport.load_json(failed / "report" / "report.json")
    maps = {p.name for p in (failed / "report" / "error_maps").iterdir()}
    assert maps == {Path(m.png).name for m in report.maps()}
    assert not [p.name for p in failed.iterdir() if p.name.startswith(".report")]


def test_leftovers_of_a_killed_check_are_removed_and_a_live_ones_kept(failed: Path) -> None:
    host = socket.gethostname()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = failed / f".report.tmp-{host}-{gone.stdout.strip()}-abc"
    alive = failed / f".report.tmp-{host}-{os.getpid()}-xyz"
    for leftover in (dead, alive):
        (leftover / "error_maps").mkdir(parents=True)
    run = export_cli("check", "--artifacts", str(failed), "--device", "cpu")
    assert run.returncode == 1, run.stderr
    assert not dead.exists() and alive.is_dir()


def test_published_artifacts_get_their_report_replaced_inside_the_version(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    from export.build import build
    from export.options import BuildOptions
    from export.publish import check_out

    out = tmp_path / "artifacts"
    build(BuildOptions(checkpoint=model_file, inputs=feed_file, out=out, reference="none"))
    for _ in range(2):
        run = export_cli("check", "--artifacts", str(out), "--device", "cpu")
        assert run.returncode == 0, run.stderr
    assert out.is_symlink() and (out.resolve() / "report" / "report.json").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["verdict"] == "pass"
    check_out(out, [], force=False)  # no leftover beside the report that a rebuild would refuse


def test_export_build_refuses_a_report_dir_that_is_a_file_before_building(
    fast_export: None, model_file: Path, feed_file: Path, tmp_path: Path
) -> None:
    target = _write(tmp_path / "reports", b"not a folder")
    out = tmp_path / "artifacts"
    run = export_cli(
        "build",
        "--checkpoint",
        str(model_file),
        "--inputs",
        str(feed_file),
        "--out",
        str(out),
        "--reference",
        "none",
        "--report-dir",
        str(target),
    )
    assert run.returncode == 2, run.stderr
    assert str(target) in run.stderr and not out.exists()
