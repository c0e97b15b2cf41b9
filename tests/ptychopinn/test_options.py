"""Options derived from option dataclasses: one default per field, given values always validated."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ptycho_torch.cli import UsageError
from ptychopinn.options import ConfigOptions, flag_for


@dataclass(frozen=True)
class Toy:
    n_filters_scale: int = field(default=2, metadata={"help": "filter multiplier"})
    rate: float = field(default=1e-3, metadata={"help": "step size, 100% safe"})
    head: Literal["object", "physics"] = "object"
    size: int | None = field(default=None, metadata={"help": "side (default: from the data)"})
    big: bool = True
    path: Path = Path("model.pt")
    kind: str = field(default="disc", metadata={"choices": ("disc", "gauss")})

    def __post_init__(self) -> None:
        if self.n_filters_scale < 1:
            raise ValueError(f"Toy.n_filters_scale must be >= 1, got {self.n_filters_scale}")


TOY = ConfigOptions(Toy)


def _parse(options: ConfigOptions[Toy], argv: list[str], **presets: dict) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="toy")
    options.add_to(parser, presets=presets)
    return parser.parse_args(argv)


def test_flag_names_follow_field_names() -> None:
    assert flag_for("n_filters_scale") == "--n-filters-scale"
    assert flag_for("N") == "--N"


def test_types_and_choices_come_from_the_annotations() -> None:
    argv = ["--n-filters-scale", "3", "--rate", "0.5", "--head", "physics", "--size", "7",
            "--no-big", "--path", "a/b.pt", "--kind", "gauss"]  # fmt: skip
    assert TOY.build(_parse(TOY, argv)) == Toy(3, 0.5, "physics", 7, False, Path("a/b.pt"), "gauss")


@pytest.mark.parametrize("argv", [["--head", "tf"], ["--kind", "square"], ["--size", "x"]])
def test_rejects_values_outside_the_annotation(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parse(TOY, argv)
    assert info.value.code == 2


def test_absent_options_leave_the_dataclass_default() -> None:
    args = _parse(TOY, [])
    assert vars(args) == {}
    assert TOY.build(args) == Toy()


def test_help_shows_the_field_help_and_its_default() -> None:
    parser = argparse.ArgumentParser(prog="toy")
    TOY.add_to(parser, presets={"demo": {"n_filters_scale": 1}})
    text = " ".join(parser.format_help().split())
    assert (
        "--n-filters-scale N_FILTERS_SCALE filter multiplier (default: 2; demo preset: 1)" in text
    )
    assert "step size, 100% safe (default: 0.001)" in text
    assert "side (default: from the data)" in text and "(default: None)" not in text
    assert "--big, --no-big" in text


def test_preset_replaces_the_default_and_a_given_option_replaces_the_preset() -> None:
    preset = {"n_filters_scale": 1, "rate": 0.25, "epochs": 12}  # epochs: another dataclass's
    assert TOY.build(_parse(TOY, []), preset=preset) == Toy(n_filters_scale=1, rate=0.25)
    given = _parse(TOY, ["--rate", "0.5"])
    assert TOY.build(given, preset=preset) == Toy(n_filters_scale=1, rate=0.5)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_given_zero_or_negative_reaches_validation_and_names_the_option(value: str) -> None:
    args = _parse(TOY, ["--n-filters-scale", value])
    with pytest.raises(UsageError) as info:
        TOY.build(args, preset={"n_filters_scale": 4})
    assert str(info.value) == (
        f"--n-filters-scale {value}: Toy.n_filters_scale must be >= 1, got {value}"
    )


def test_an_invalid_fixed_value_is_reported_without_naming_an_option() -> None:
    options = ConfigOptions(Toy, fields=("rate",))
    with pytest.raises(UsageError, match="^Toy.n_filters_scale must be >= 1, got 0$"):
        options.build(_parse(options, ["--rate", "2"]), n_filters_scale=0)


def test_selected_fields_renamed_flags_and_help() -> None:
    options = ConfigOptions(
        Toy, fields=("rate", "size"), flags={"rate": "--lr"}, helps={"size": "object side"}
    )
    parser = argparse.ArgumentParser(prog="toy")
    options.add_to(parser)
    text = " ".join(parser.format_help().split())
    assert "--lr LR step size" in text and "--size SIZE object side" in text
    assert "--head" not in text
    assert options.build(parser.parse_args(["--lr", "2"])) == Toy(rate=2.0)


def test_rejects_unknown_fields_and_fixed_values_that_shadow_options() -> None:
    with pytest.raises(TypeError, match="no fields"):
        ConfigOptions(Toy, fields=("epochs",))
    with pytest.raises(TypeError, match="not a dataclass"):
        ConfigOptions(dict)
    with pytest.raises(TypeError, match="cannot also be fixed"):
        TOY.build(_parse(TOY, []), rate=1.0)


def test_rejects_a_field_type_it_cannot_parse() -> None:
    @dataclass(frozen=True)
    class Listy:
        sizes: tuple[int, ...] = (1,)

    with pytest.raises(TypeError, match="no command-line option"):
        ConfigOptions(Listy).add_to(argparse.ArgumentParser())


@dataclass(frozen=True)
class Needy:
    out: Path = field(metadata={"help": "file to write"})
    source: tuple[str, str] = field(
        default=("a", "b"), metadata={"help": "kind and folder", "metavar": ("KIND", "DIR")}
    )


def test_a_field_without_default_is_a_required_option() -> None:
    options = ConfigOptions(Needy)
    with pytest.raises(SystemExit) as info:
        _parse(options, [])
    assert info.value.code == 2
    assert options.build(_parse(options, ["--out", "x.npz"])) == Needy(Path("x.npz"))


def test_a_fixed_size_tuple_takes_that_many_values_named_by_its_metavar() -> None:
    options = ConfigOptions(Needy, flags={"source": "--from"})
    parser = argparse.ArgumentParser(prog="toy")
    options.add_to(parser)
    assert "--from KIND DIR" in " ".join(parser.format_help().split())
    args = parser.parse_args(["--out", "x", "--from", "ptychopinn-tf", "case"])
    assert options.build(args).source == ("ptychopinn-tf", "case")
