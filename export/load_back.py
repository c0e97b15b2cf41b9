"""The build's load-back check: each artifact, loaded back, computes what eager PyTorch did.

Judged by the comparison kernel (:mod:`core.compare`) with :data:`core.tolerances.LOAD_BACK`:
it catches a wrong export, not float32 noise (the per-output verdict is the parity check's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.compare import ComparedOutput, compare_arrays
from core.tolerances import LOAD_BACK
from export.artifacts import load_program, load_torchscript
from export.errors import BuildError
from export.signature import Signature

__all__ = ["check_load_back"]


def check_load_back(
    tmp: Path, signature: Signature, feed: dict[str, np.ndarray], eager: dict[str, np.ndarray]
) -> dict[str, float]:
    """Each artifact, loaded back, against eager by the comparison kernel with its
    :data:`~core.tolerances.LOAD_BACK` tolerance; the largest ``max_abs`` per artifact."""
    from export.host import OnnxHost

    runs = {
        "model.ts": load_torchscript(tmp / "model.ts")(feed),
        "model.pt2": load_program(tmp / "model.pt2")(feed),
        "model.onnx": OnnxHost(tmp / "model.onnx").run(feed),
    }
    errors = {}
    for artifact, outputs in runs.items():
        signature.check_outputs(outputs)
        errors[artifact] = 0.0
        for spec in signature.outputs:
            weight = eager[spec.weighted_by] if spec.weighted_by else None
            c = compare_arrays(
                ComparedOutput(
                    spec.name,
                    artifact,
                    "eager",
                    LOAD_BACK,
                    wrap_phase=spec.wraps,
                    expected_dtype=spec.dtype,
                ),
                outputs[spec.name],
                eager[spec.name],
                weight=weight,
            )
            if not c.passed:
                raise BuildError(
                    f"{artifact} loaded back differs from eager in {spec.name!r}: "
                    f"{'; '.join(c.messages)}; the export is wrong"
                )
            errors[artifact] = max(errors[artifact], c.max_abs or 0.0)
    return errors
