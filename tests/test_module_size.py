"""Modules stay small and functions short (STYLE.md, point 6; issue 21, item 6):
no product module over 300 lines, no function over 60. ruff checks complexity (C90) and
arguments (PLR0913); lengths are checked here, with the source's own line counts."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "ptycho_torch", "export", "parity", "bench", "ptychopinn")
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
# Over the limit today, each with its owner's split still to come; remove an entry once it fits.
KNOWN_LONG_MODULES: set[str] = set()


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_no_product_module_is_over_300_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert set(long) <= KNOWN_LONG_MODULES, {
        k: v for k, v in long.items() if k not in KNOWN_LONG_MODULES
    }


def test_no_product_function_is_over_60_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines})")
    assert not long, long
