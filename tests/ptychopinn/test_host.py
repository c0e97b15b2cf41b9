"""The host commands (predict, verify, pack): torch-free, options validated before any file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptychopinn.main import main


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_verify_rejects_a_bad_atol_with_one_error_line(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(tmp_path / "nowhere"), "--atol", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --atol {float(value)}: VerifyOptions.atol must be finite")
    assert err.count("error:") == 1 and "Traceback" not in err
