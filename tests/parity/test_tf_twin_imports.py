"""``import parity`` and the twin's modules must not import TensorFlow (it is an optional extra)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_twin_modules_does_not_import_tensorflow() -> None:
    code = (
        "import sys, parity, parity.tf_twin, parity.tf_twin.model, parity.tf_twin.physics, "
        "parity.tf_twin.canvas, "
        "parity.tf_twin.weights, parity.tf_twin.generate; "
        "bad = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules); "
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
