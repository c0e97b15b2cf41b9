"""Names moved out of import_reference stay importable there."""

from __future__ import annotations

import importlib

import pytest

MOVED = {
    "parity.import_reference": {"parity.original_case": ["OriginalCase", "read_original_case"]},
}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_moved_names_are_the_same_objects_at_their_old_paths(old):
    module = importlib.import_module(old)
    for new, names in MOVED[old].items():
        home = importlib.import_module(new)
        for name in names:
            assert name in module.__all__ and getattr(module, name) is getattr(home, name)
