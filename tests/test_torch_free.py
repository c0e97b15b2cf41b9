"""What runs without the frameworks, checked at run time: the one test beside ``lint-imports``.

``.importlinter``'s ``host-torch-free`` contract forbids the static imports of torch, lightning and
onnx in the inference host (predict, verify, pack), the command list and the torch-free core. Here
every module of that contract (a package with its submodules) is imported, and every torch-free
command and the command list run ``--help``, in one fresh interpreter in which importing one of
those packages (or onnxscript or TensorFlow, not on a host either) fails as a package that is not
installed does. A row fails if its import or command fails or merely tried such an import:
through a library (``lint-imports`` does not follow imports inside third-party packages) or at
run time (``importlib``). The twin's modules are checked the same way for TensorFlow, an
optional extra that ``import parity`` must not need.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from ptychopinn.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]

# Imports each row's module, or runs `python -m export ARGS --help` (the row's words after
# "python -m export"), where importing a package named in argv[1] fails; prints per row what it
# tried to import, its error and the first line it printed.
RUN = """
import contextlib, importlib, io, json, runpy, sys
FORBIDDEN = set(sys.argv[1].split(","))
tried = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Block())
results = {}
for row in json.loads(sys.argv[2]):
    tried.clear()
    error, out = None, io.StringIO()
    try:
        if row.startswith("import "):
            importlib.import_module(row.removeprefix("import "))
        else:
            sys.argv = ["python -m export", *row.split()[3:]]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                try:
                    runpy.run_module("export", run_name="__main__", alter_sys=True)
                except SystemExit as exc:
                    if exc.code not in (0, None):
                        error = f"exit {exc.code}"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ModuleNotFoundError) and exc.name.split(".")[0] not in FORBIDDEN:
            error = f"not installed: {exc.name}"
    results[row] = {"tried": sorted(set(tried)), "error": error,
                    "first_line": (out.getvalue().splitlines() or [""])[0]}
print(json.dumps(results))
"""


HOST_LACKS = ("onnxscript", "tensorflow", "keras")  # besides the contract's: not on a host either


class Row(NamedTuple):
    forbidden: tuple[str, ...]
    what: str  # "import MODULE" or "python -m export [COMMAND] --help"


def _host_contract() -> tuple[tuple[str, ...], list[str]]:
    """``host-torch-free``'s forbidden packages and source modules, from ``.importlinter``."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    contract = config["importlinter:contract:host-torch-free"]
    return tuple(contract["forbidden_modules"].split()), contract["source_modules"].split()


def _with_submodules(name: str) -> Iterator[str]:
    yield name
    spec = importlib.util.find_spec(name)
    for sub in pkgutil.iter_modules((spec and spec.submodule_search_locations) or []):
        if sub.name != "__main__":
            yield from _with_submodules(f"{name}.{sub.name}")


def _rows() -> list[Row]:
    forbidden, modules = _host_contract()
    forbidden += HOST_LACKS
    host = [Row(forbidden, f"import {m}") for name in modules for m in _with_submodules(name)]
    commands = [c.name for c in COMMANDS if c.torch_free]
    host += [
        Row(forbidden, f"python -m export {c} --help".replace("  ", " ")) for c in ["", *commands]
    ]
    twin = [
        "parity",
        "parity.tf_twin",
        *(f"parity.tf_twin.{m}" for m in ("model", "physics", "weights", "generate")),
    ]
    return host + [Row(("tensorflow", "keras"), f"import {m}") for m in twin]


ROWS = _rows()


@pytest.fixture(scope="module")
def runs() -> dict[Row, dict[str, object]]:
    """Every row's result: one interpreter per set of forbidden packages."""
    results: dict[Row, dict[str, object]] = {}
    for forbidden in sorted({row.forbidden for row in ROWS}):
        rows = [row for row in ROWS if row.forbidden == forbidden]
        done = subprocess.run(
            [sys.executable, "-c", RUN, ",".join(forbidden), json.dumps([r.what for r in rows])],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        printed = json.loads(done.stdout.splitlines()[-1])
        results.update((row, printed[row.what]) for row in rows)
    return results


def _id(row: Row) -> str:
    return row.what if "torch" in row.forbidden else f"{row.what} without {'/'.join(row.forbidden)}"


@pytest.mark.parametrize("row", ROWS, ids=[_id(r) for r in ROWS])
def test_runs_where_the_forbidden_packages_cannot_be_imported(
    row: Row, runs: dict[Row, dict[str, object]]
) -> None:
    result = runs[row]
    error = str(result["error"] or "")
    if error.startswith("not installed: "):
        pytest.skip(f"{row.what}: {error} (an optional extra)")
    assert not result["tried"], f"{row.what} tried to import {result['tried']}"
    assert not error, f"{row.what}: {error}"
    command = row.what.split()[3:-1]  # python -m export [COMMAND] --help
    if command:
        assert str(result["first_line"]).startswith(f"usage: python -m export {command[0]} ")
