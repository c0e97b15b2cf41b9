"""Who is compared with whom, and how strictly: runners, their activation, pairs, tolerances.

Per output: each runner vs the TensorFlow reference, and on each device the eager model vs each
artifact, each pair with one :class:`core.compare.ComparisonAccumulator` per output.
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.compare import ComparedOutput, ComparisonAccumulator
from core.tolerances import ToleranceTable
from export.errors import ReferenceFormatError
from export.signature import Signature
from parity.errors import EnvironmentUnavailable, ParityError
from parity.reference import ReferenceFile
from parity.runners import (
    EagerRunner,
    ExportedProgramRunner,
    OnnxRuntimeRunner,
    ReferenceRunner,
    Runner,
    TfTwinRunner,
    TorchScriptRunner,
)

__all__ = [
    "REFERENCE_KINDS",
    "REFERENCE_NAME",
    "Pair",
    "activate_runners",
    "classify_pair",
    "make_pairs",
    "make_runners",
    "tolerance_table",
]

log = logging.getLogger(__name__)

REFERENCE_NAME = "tf-reference"
REFERENCE_KINDS = ("tf-reference", "tf-live")  # runner kinds that stand for TensorFlow


def classify_pair(left_kind: str, right_kind: str) -> str:
    """Pair class of a comparison (its tolerance column, :mod:`core.tolerances`) from its
    runners' kinds (see :class:`parity.results.RunnerInfo`)."""
    if left_kind in REFERENCE_KINDS or right_kind in REFERENCE_KINDS:
        return "vs-reference"
    return "torch-vs-artifact"


@dataclass
class Pair:
    """Two runners compared output by output; ``worst`` keeps each output's worst sample."""

    left: Runner
    right: Runner
    pair_class: str  # "torch-vs-artifact" | "vs-reference"
    device: str
    accumulators: dict[str, ComparisonAccumulator] = field(default_factory=dict)
    # output -> (max error, sample index, left sample, right sample)
    worst: dict[str, tuple[float, int, np.ndarray, np.ndarray]] = field(default_factory=dict)


def make_runners(
    artifacts: Path,
    checkpoint: Path,
    signature: Signature,
    devices: list[str],
    reference: ReferenceFile | None,
    tf_twin: bool,
) -> list[Runner]:
    """Eager, TorchScript, .pt2 and ONNX Runtime per device, then the twin and the reference
    (inactive: nothing is loaded until each is activated)."""
    runners: list[Runner] = []
    for device in devices:
        runners += [
            EagerRunner(f"eager[{device}]", signature, device, checkpoint),
            TorchScriptRunner(f"torchscript[{device}]", signature, device, artifacts / "model.ts"),
            ExportedProgramRunner(f"pt2[{device}]", signature, device, artifacts / "model.pt2"),
            OnnxRuntimeRunner(
                f"onnxruntime[{device}]", signature, device, artifacts / "model.onnx"
            ),
        ]
    if tf_twin:
        runners.append(TfTwinRunner("tf-twin[cpu]", signature, checkpoint))
    if reference is not None:
        runners.append(ReferenceRunner(REFERENCE_NAME, signature, reference))
    return runners


def activate_runners(
    stack: ExitStack,
    runners: list[Runner],
    device_option: str,
    notes: list[str],
    unavailable: list[str] | None = None,
) -> list[Runner]:
    """Activate every runner inside ``stack`` (deactivated when it closes); the active ones.

    A CUDA runner that cannot come up drops the CUDA runners under ``--device auto`` (a note in
    ``notes``); under ``--device cuda`` an ONNX Runtime one is left out while torch's CUDA runners
    came up (named in ``unavailable``: the run ends with exit 3, never a pass). Anything else
    that cannot come up is an environment failure at once (exit 3).
    """
    active: list[Runner] = []
    cuda_dropped = False
    for runner in runners:
        if cuda_dropped and runner.requested_device == "cuda":
            continue
        try:
            stack.enter_context(runner)
        except EnvironmentUnavailable as exc:
            if (
                device_option == "cuda"
                and unavailable is not None
                and isinstance(runner, OnnxRuntimeRunner)
                and any(r.requested_device == "cuda" for r in active)
            ):
                unavailable.append(f"{runner.name}: {exc}")
                notes.append(f"--device cuda: {runner.name} did not come up, not compared: {exc}")
                log.warning("parity: %s", notes[-1])
                continue
            if device_option != "auto" or runner.requested_device != "cuda":
                raise
            cuda_dropped = True
            notes.append(f"--device auto: skipped CUDA runners: {exc}")
            log.warning("parity: %s", notes[-1])
            for dropped in (r for r in active if r.requested_device == "cuda"):
                dropped.deactivate()
            active = [r for r in active if r.requested_device != "cuda"]
            continue
        active.append(runner)
    return active


def make_pairs(
    runners: list[Runner], table: ToleranceTable, signature: Signature, peaks: dict[str, float]
) -> list[Pair]:
    """Every pair to compare, each with one accumulator per output."""
    pairs: list[Pair] = []
    reference = next((r for r in runners if isinstance(r, ReferenceRunner)), None)
    eager = {r.actual_device: r for r in runners if isinstance(r, EagerRunner)}
    for runner in runners:
        if runner is reference:
            continue
        device = runner.actual_device
        if not isinstance(runner, (EagerRunner, TfTwinRunner)) and device in eager:
            left = eager[device]
            pairs.append(Pair(left, runner, classify_pair(left.kind, runner.kind), device))
        if reference is not None:
            pairs.append(
                Pair(runner, reference, classify_pair(runner.kind, reference.kind), device)
            )
    for pair in pairs:
        for spec in signature.outputs:
            pair.accumulators[spec.name] = ComparisonAccumulator(
                ComparedOutput(
                    spec.name,
                    pair.left.name,
                    pair.right.name,
                    table.lookup(spec.name, pair.pair_class, pair.device),
                    wrap_phase=spec.wraps,
                    pair_class=pair.pair_class,
                    device=pair.device,
                ),
                peak=peaks.get(spec.name),
            )
    return pairs


def tolerance_table(path: Path | None, reference: ReferenceFile | None) -> ToleranceTable:
    """Defaults, then the reference's own entries (its provenance's ``tolerances``), then the
    ``--tolerances`` file.

    Raises:
        ReferenceFormatError: (exit 2) the reference's entries are invalid.
        ParityError: (exit 2) the ``--tolerances`` file is invalid.
    """
    table = ToleranceTable.default()
    if reference is not None and reference.provenance.get("tolerances"):
        try:
            table = ToleranceTable.from_dict(reference.provenance["tolerances"])
        except ValueError as exc:
            raise ReferenceFormatError(
                f"reference {reference.path}: invalid 'tolerances' in its provenance: {exc}"
            ) from None
        log.info("tolerances: the reference's own entries merged onto the defaults")
    if path is None:
        return table
    try:
        return ToleranceTable.load(path, base=table)
    except ValueError as exc:
        raise ParityError(f"--tolerances: {exc}") from None
