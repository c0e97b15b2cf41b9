from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ptycho_torch.thread_option import parse_threads
from ptycho_torch.threads import ThreadChoice, physical_cores, set_threads

pytestmark = pytest.mark.usefixtures("restore_threads")  # tests/conftest.py


def test_auto_measures_and_never_exceeds_the_physical_cores() -> None:
    choice = set_threads("auto")
    assert 1 <= choice.threads <= physical_cores() == choice.physical_cores
    assert torch.get_num_threads() == choice.threads
    assert sorted(choice.timings_ms) == list(range(1, physical_cores() + 1))


def test_a_given_count_is_applied_and_recorded_as_given() -> None:
    choice = set_threads("1")
    assert torch.get_num_threads() == 1
    record = choice.to_dict()
    assert record["threads"] == 1 and record["requested"] == "1" and record["timings_ms"] == {}
    assert "given" in str(choice)


def test_default_leaves_torchs_count_and_records_it() -> None:
    torch.set_num_threads(2)
    choice = set_threads("default")
    assert torch.get_num_threads() == 2
    assert choice.threads == 2 and choice.requested == "default" and choice.timings_ms == {}


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5", ""])
def test_rejects_anything_but_auto_default_or_a_positive_count(value: str) -> None:
    with pytest.raises(ValueError, match="'auto', 'default' or an integer >= 1"):
        parse_threads(value)


def test_choice_is_plain_data() -> None:
    choice = ThreadChoice(2, "auto", 2, 4, {1: 10.0, 2: 6.0})
    assert choice.to_dict()["timings_ms"] == {"1": 10.0, "2": 6.0}


def test_infer_rejects_bad_threads_before_reading_files(tmp_path: Path) -> None:
    from tests.conftest import command_main

    missing = str(tmp_path / "missing")
    code = command_main("infer")(
        ["--checkpoint", missing, "--data", missing, "--out", missing, "--threads", "0"]
    )
    assert code == 2


def test_fewest_threads_within_the_margin_win_and_the_margin_is_the_callers() -> None:
    from ptycho_torch.threads import fewest_threads

    ms = {1: 10.8, 2: 10.0, 4: 9.9}
    assert fewest_threads(ms, lambda n: n, 0.10) == 1  # --threads auto: within 10%
    assert fewest_threads(ms, lambda n: n, 0.05) == 2  # bench's tuning: within 5%
    settings = {"a": 5.0, "b": 5.1, "c": 4.9}  # equal counts: the faster wins
    assert fewest_threads(settings, lambda k: 2, 0.05) == "c"


def test_interleave_runs_every_candidate_each_round_starting_with_a_different_one() -> None:
    from ptycho_torch.threads import interleave

    calls: list[str] = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    samples = interleave(candidates, 0.0, min_rounds=3, warmup=1)
    assert calls == list("abc" + "abc" + "bca" + "cab")  # warm-up, then rotated rounds
    assert {name: len(s) for name, s in samples.items()} == {"a": 3, "b": 3, "c": 3}
