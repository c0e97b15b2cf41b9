"""The command tree: one list of commands, the same commands under every spelling
(``ptychopinn``, ``python -m ptychopinn``, ``python -m export``); that the host commands run
without torch is tests/test_torch_free.py."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ptychopinn.command import CommandLine
from ptychopinn.main import COMMANDS, Command, main
from tests.conftest import run_main

ROOT = Path(__file__).resolve().parents[2]
NAMES = [command.name for command in COMMANDS]
HOST = [command.name for command in COMMANDS if command.torch_free]


def _same(one: str, one_prog: str, other: str, other_prog: str) -> bool:
    """The same text once the program names are one word (argparse wraps by their length)."""
    return one.replace(one_prog, "PROG").split() == other.replace(other_prog, "PROG").split()


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def test_names_are_todays_commands_each_listed_once() -> None:
    assert sorted(NAMES) == sorted(
        ["build", "triton", "bench", "predict", "verify", "pack", "check", "reference",
         "import-keras", "import-reference", "trace", "bisect", "train", "infer", "simulate",
         "import-tf", "serve", "client", "serve-bench", "bench-train"]
    )  # fmt: skip
    assert HOST == ["predict", "verify", "pack", "serve", "client", "serve-bench"]


def test_help_lists_every_command() -> None:
    done = run_main(lambda argv: main(argv, prog="ptychopinn"), "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: ptychopinn ")
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")}
    assert set(NAMES) <= listed


@pytest.mark.parametrize("command", COMMANDS, ids=NAMES)
def test_every_command_is_a_command_line(command: Command) -> None:
    module, _, name = command.target.partition(":")
    assert isinstance(getattr(importlib.import_module(module), name), CommandLine)


def test_python_m_export_and_ptychopinn_are_the_same_commands() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["ptychopinn"] == "ptychopinn.main:main"
    forwarder = (ROOT / "export" / "__main__.py").read_text()
    assert 'launch("ptychopinn.main:main", prog="python -m export")' in forwarder
    for args in (["--help"], ["simulate", "--help"]):
        export = _python("export", *args)
        tree = _python("ptychopinn", *args)
        assert export.returncode == tree.returncode == 0, export.stderr + tree.stderr
        assert _same(export.stdout, "python -m export", tree.stdout, "python -m ptychopinn")
        script = shutil.which("ptychopinn")  # the console script, once the package is installed
        if script is not None:
            done = subprocess.run([script, *args], capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            assert _same(done.stdout, "ptychopinn", tree.stdout, "python -m ptychopinn")


def test_a_bad_option_of_any_spelling_is_the_same_usage_error() -> None:
    export = _python("export", "simulate", "--n-images", "0", "--out", "x.npz")
    tree = _python("ptychopinn", "simulate", "--n-images", "0", "--out", "x.npz")
    assert export.returncode == tree.returncode == 2
    assert export.stderr == tree.stderr and export.stderr.startswith("error: --n-images 0:")
