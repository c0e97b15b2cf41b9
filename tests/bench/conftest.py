"""The parity tests share busy machines: the machine reads as idle here.

``bench --save-tuning`` refuses to record settings measured while the 1-minute load average was
above the core count (:mod:`bench.machine_load`), so a bench test would pass or fail with the
load of whatever else runs. Here ``os.getloadavg`` reads zero; ``tests/test_hostile_env.py``
tests the guard itself with loads it sets.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _machine_reads_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
