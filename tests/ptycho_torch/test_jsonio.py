"""The one JSON reader (the caller's error class, the file named, the advice appended) and writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.errors import ManifestError, ReferenceFormatError
from ptycho_torch.jsonio import read_json, read_json_object


def test_a_json_object_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"x": [1, 2]}')
    assert read_json_object(path, ManifestError) == {"x": [1, 2]}
    path.write_text("[1, 2]")
    assert read_json(path, ManifestError) == [1, 2]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"x": ', "as JSON"),  # cut short
        (b"\xff\xfe{}", "as JSON"),  # not UTF-8
        (b"[1, 2]", "must hold a JSON object, found list"),
    ],
)
def test_unreadable_json_is_the_callers_error_with_advice(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ReferenceFormatError, match=match) as err:
        read_json_object(path, ReferenceFormatError, "copy it again")
    assert str(path) in str(err.value) and str(err.value).endswith("; copy it again")
    assert err.value.exit_code == 2


def test_a_missing_file_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"cannot read .*nowhere\.json as JSON"):
        read_json(tmp_path / "nowhere.json", ManifestError)


def test_write_json_replaces_whole_or_keeps_the_earlier_file(tmp_path: Path) -> None:
    from ptycho_torch.errors import WriteError
    from ptycho_torch.jsonio import write_json

    report = tmp_path / "report.json"
    write_json(report, {"run": 1})
    assert json.loads(report.read_text()) == {"run": 1}
    with pytest.raises(TypeError):  # not JSON: nothing written, the earlier report stays
        write_json(report, {"run": object()})
    assert json.loads(report.read_text()) == {"run": 1}
    missing = tmp_path / "no-such-folder" / "report.json"
    with pytest.raises(WriteError) as refused:
        write_json(missing, {"run": 2})
    assert str(refused.value).startswith(
        f"cannot write {missing}: {missing.parent}: No such file or directory"
    )  # the folder that is missing, not the temporary file's name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary left
