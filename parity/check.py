"""One parity run: every runner on the same batch, every output compared, reports written.

Pairs compared, per output: each runner vs the TensorFlow reference, and on each device the
eager model vs each artifact (TorchScript, torch.export, ONNX Runtime). Inputs and reference
are streamed in chunks of the artifacts' fixed batch size, so memory stays bounded however
many samples the reference holds; metrics accumulate across chunks.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export.manifest import Manifest, read_manifest
from export.signature import Signature, TensorSpec
from parity.compare import ComparisonAccumulator, array_peak, wrap_to_pi
from parity.errors import (
    EnvironmentUnavailable,
    ParityError,
    ReferenceFormatError,
    StaleReferenceError,
)
from parity.npz_stream import NpzRows
from parity.precision import apply_precision_policy, environment_fingerprint
from parity.reference import load_reference
from parity.results import ParityReport
from parity.runners import (
    EagerRunner,
    ExportedProgramRunner,
    OnnxRuntimeRunner,
    ReferenceRunner,
    Runner,
    TfTwinRunner,
    TorchScriptRunner,
)
from parity.tolerances import PAIR_CLASSES, ToleranceTable

__all__ = ["CheckOptions", "make_runners", "resolve_devices", "run_check"]

log = logging.getLogger(__name__)

REFERENCE_NAME = "tf-reference"


@dataclass(frozen=True)
class CheckOptions:
    """What ``python -m parity check`` was asked to do."""

    artifacts: Path  # folder written by `python -m export build`
    reference: Path | None = None  # default: <artifacts>/reference.npz when present
    inputs: Path | None = None  # default: <artifacts>/inputs.npz
    checkpoint: Path | None = None  # default: the checkpoint recorded in the manifest
    device: str = "auto"  # auto | cpu | cuda
    tolerances: Path | None = None  # JSON overrides merged onto the default table
    report_dir: Path | None = None  # default: <artifacts>/report
    calibrate: Path | None = None  # write a measured tolerances file here
    tf_twin: bool = False  # also run the live TensorFlow twin


@dataclass
class _Pair:
    left: Runner
    right: Runner
    pair_class: str
    device: str
    accumulators: dict[str, ComparisonAccumulator] = field(default_factory=dict)
    worst: dict[str, tuple[float, int, np.ndarray, np.ndarray]] = field(default_factory=dict)


def resolve_devices(device: str) -> list[str]:
    """``auto`` -> cpu (+ cuda when torch and ONNX Runtime both have it); ``cuda`` -> cpu + cuda."""
    if device == "cpu":
        return ["cpu"]
    if device == "cuda":
        return ["cpu", "cuda"]
    if device == "auto":
        import onnxruntime as ort
        import torch

        has_cuda = (
            torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()
        )
        return ["cpu", "cuda"] if has_cuda else ["cpu"]
    raise ParityError(f"--device must be auto, cpu or cuda, got {device!r}")


def run_check(options: CheckOptions) -> ParityReport:
    """Run the parity check and write the reports. Raises ParityError subclasses for exit 2/3/4."""
    precision = apply_precision_policy()
    artifacts = options.artifacts
    manifest = read_manifest(artifacts)  # every file checked: missing or changed is exit 4
    signature = Signature.from_dict(manifest.signature)
    inputs_path = options.inputs or artifacts / "inputs.npz"
    checkpoint = options.checkpoint or manifest.weights_path(artifacts)
    reference_path = options.reference or artifacts / "reference.npz"
    reference = None
    if reference_path.is_file():
        reference = load_reference(reference_path)
    elif options.reference is not None:
        raise ReferenceFormatError(f"reference {reference_path} does not exist")
    table = _tolerance_table(options.tolerances, reference)
    devices = resolve_devices(options.device)
    log.info("parity: %s head, devices %s, inputs %s", signature.head, devices, inputs_path)

    with NpzRows(inputs_path) as inputs:
        n = _check_inputs(inputs, signature, inputs_path)
        inputs_sha = _streamed_sha256(inputs, signature.input_names)
        if reference is not None:
            _check_fresh(reference.provenance, manifest, inputs_sha, reference_path)
        runners = make_runners(
            artifacts, checkpoint, signature, devices, reference, options.tf_twin
        )
        _check_weights(checkpoint, manifest)
        notes = [] if reference else ["no TensorFlow reference: compared backends pairwise only"]
        try:
            runners = _activate(runners, options.device, notes)
            peaks = _output_peaks(inputs, n, signature, runners, table)
            pairs = _make_pairs(runners, table, signature, peaks)
            _stream(inputs, n, signature, runners, pairs)
        finally:
            for runner in runners:
                runner.deactivate()
    comparisons = []
    for pair in pairs:
        for name in signature.output_names:
            comparison = pair.accumulators[name].finish()
            comparisons.append(comparison)
            log.info("%s", comparison.log_line())
    failed = [c for c in comparisons if c.status != "pass"]
    report = ParityReport(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        head=signature.head,
        artifacts_dir=str(artifacts),
        verdict="fail" if failed else "pass",
        exit_code=1 if failed else 0,
        environment=environment_fingerprint(),
        precision=precision,
        reference_provenance=dict(reference.provenance) if reference else {},
        runners=[r.info() for r in runners],
        comparisons=comparisons,
        errors=notes,
        error_maps=[],
    )
    report_dir = options.report_dir or artifacts / "report"
    _write_reports(report, report_dir, pairs, signature)
    if options.calibrate is not None:
        calibrated, notes = ToleranceTable.calibrate(comparisons)
        calibrated.save(options.calibrate)
        log.info("calibrated tolerances written to %s (%s)", options.calibrate, notes)
    return report


def _tolerance_table(path: Path | None, reference: Any) -> ToleranceTable:
    """Defaults, then the reference's own entries (provenance ``tolerances``, a partial
    tolerance file: how its maker says it should be judged), then the ``--tolerances`` file."""
    table = ToleranceTable.default()
    try:
        if reference is not None and reference.provenance.get("tolerances"):
            table = ToleranceTable.from_dict(reference.provenance["tolerances"])
            log.info("tolerances: the reference's own entries merged onto the defaults")
    except ValueError as exc:
        raise ReferenceFormatError(
            f"reference {reference.path}: invalid 'tolerances' in its provenance: {exc}"
        ) from None
    if path is None:
        return table
    try:
        return ToleranceTable.load(path, base=table)
    except ValueError as exc:
        raise ParityError(f"--tolerances: {exc}") from None


def _check_inputs(inputs: NpzRows, signature: Signature, path: Path) -> int:
    counts = set()
    for spec in signature.inputs:
        if spec.name not in inputs.keys:
            raise ParityError(f"inputs {path} lacks {spec.name!r}; it holds {inputs.keys}")
        shape, dtype = inputs.shape(spec.name), inputs.dtype(spec.name)
        if dtype != np.float32 or tuple(shape[1:]) != spec.shape[1:]:
            raise ParityError(
                f"inputs {path}: {spec.name!r} is {dtype}{list(shape)}, expected float32"
                f"[n, {', '.join(map(str, spec.shape[1:]))}]"
            )
        counts.add(shape[0])
    if len(counts) != 1:
        raise ParityError(f"inputs {path}: arrays hold different sample counts {sorted(counts)}")
    return counts.pop()


def _streamed_sha256(inputs: NpzRows, names: list[str], rows: int = 256) -> str:
    """Same digest as ``ptycho_torch.digest.arrays_sha256``, computed chunk by chunk."""
    h = hashlib.sha256()
    for name in sorted(names):
        shape, dtype = inputs.shape(name), inputs.dtype(name)
        h.update(name.encode())
        h.update(b"\0" + dtype.str.encode() + b"\0" + repr(tuple(shape)).encode() + b"\0")
        for start in range(0, shape[0], rows):
            h.update(inputs.rows(name, start, start + rows).tobytes())
    return h.hexdigest()


def _check_fresh(
    provenance: dict[str, Any], manifest: Manifest, inputs_sha: str, path: Path
) -> None:
    problems = []
    weights = manifest.checkpoint.weights_sha256
    if provenance.get("weights_sha256") is None:
        problems.append(
            "it records no weights digest (weights_sha256 null: "
            f"{provenance.get('weights_note', 'made without the weights it belongs to')})"
        )
    elif provenance.get("weights_sha256") != weights:
        problems.append(
            f"weights_sha256 {str(provenance.get('weights_sha256'))[:12]} != artifacts' {weights[:12]}"
        )
    if provenance.get("inputs_sha256") != inputs_sha:
        problems.append(
            f"inputs_sha256 {str(provenance.get('inputs_sha256'))[:12]} != inputs' {inputs_sha[:12]}"
        )
    if provenance.get("head") != manifest.head:
        problems.append(f"head {provenance.get('head')!r} != artifacts' {manifest.head!r}")
    if problems:
        remedy = provenance.get("remedy") or (
            "Regenerate it with `python -m parity reference --checkpoint CKPT --inputs "
            "ARTIFACTS/inputs.npz --out reference.npz` (needs the 'tf' extra)"
        )
        raise StaleReferenceError(
            f"reference {path} is stale: " + "; ".join(problems) + f". {remedy}"
        )


def _check_weights(checkpoint: Path, manifest: Manifest) -> None:
    from ptycho_torch.checkpoint import load_model, model_state_sha256

    digest = model_state_sha256(load_model(checkpoint))
    if digest != manifest.checkpoint.weights_sha256:
        raise StaleReferenceError(
            f"checkpoint {checkpoint} holds weights {digest[:12]}, but the artifacts were built from "
            f"{manifest.checkpoint.weights_sha256[:12]}; rebuild with `python -m export build`"
        )


def make_runners(
    artifacts: Path,
    checkpoint: Path,
    signature: Signature,
    devices: list[str],
    reference: Any,
    tf_twin: bool,
) -> list[Runner]:
    """Eager, TorchScript, .pt2 and ONNX Runtime per device, then the twin and the reference."""
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
        runners.append(
            ReferenceRunner(REFERENCE_NAME, signature, reference.path, reference.provenance)
        )
    return runners


def _activate(runners: list[Runner], device_option: str, notes: list[str]) -> list[Runner]:
    """Activate every runner. Under ``--device auto`` a CUDA runner that cannot come up (e.g.
    ONNX Runtime's CUDA provider missing its libraries) drops the CUDA runners with a note;
    an explicit ``--device cuda`` stays an environment failure (exit 3)."""
    active: list[Runner] = []
    cuda_dropped = False
    for runner in runners:
        if cuda_dropped and runner.requested_device == "cuda":
            continue
        try:
            runner.activate()
        except EnvironmentUnavailable as exc:
            if device_option != "auto" or runner.requested_device != "cuda":
                raise
            cuda_dropped = True
            notes.append(f"--device auto: skipped CUDA runners: {exc}")
            log.warning("parity: %s", notes[-1])
            active = [r for r in active if r.requested_device != "cuda"]
            continue
        active.append(runner)
    return active


def _output_peaks(
    inputs: NpzRows, n: int, signature: Signature, runners: list[Runner], table: ToleranceTable
) -> dict[str, float]:
    """``max |value|`` per output over the whole set, for tolerances with ``rtol_peak``.

    Taken from the reference rows when there is a reference (no inference), else from one
    extra pass of the eager runner; nothing is computed when no tolerance needs a peak.
    """
    needed = [
        name
        for name in signature.output_names
        if any(
            table.lookup(name, pc, r.actual_device).rtol_peak
            for pc in PAIR_CLASSES
            for r in runners
            if not isinstance(r, ReferenceRunner)
        )
    ]
    if not needed:
        return {}
    peaks = dict.fromkeys(needed, 0.0)
    reference = next((r for r in runners if isinstance(r, ReferenceRunner)), None)
    batch = signature.inputs[0].shape[0]
    if reference is not None:
        with NpzRows(reference.path) as rows:
            for start in range(0, n, batch):
                for name in needed:
                    chunk = rows.rows(name, start, min(start + batch, n))
                    peaks[name] = max(peaks[name], array_peak(chunk))
        source = "the reference"
    else:
        eager = next(r for r in runners if isinstance(r, EagerRunner))
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            feed = {k: _pad(inputs.rows(k, start, stop), batch) for k in signature.input_names}
            outputs = eager.infer(feed, slice(start, stop))
            for name in needed:
                peaks[name] = max(peaks[name], array_peak(outputs[name][: stop - start]))
        source = f"{eager.name} (no reference)"
    log.info(
        "parity: peaks from %s for rtol_peak: %s",
        source,
        ", ".join(f"{k}={v:.4g}" for k, v in peaks.items()),
    )
    return peaks


def _make_pairs(
    runners: list[Runner],
    table: ToleranceTable,
    signature: Signature,
    peaks: dict[str, float] | None = None,
) -> list[_Pair]:
    pairs: list[_Pair] = []
    reference = next((r for r in runners if isinstance(r, ReferenceRunner)), None)
    eager = {r.actual_device: r for r in runners if isinstance(r, EagerRunner)}
    for runner in runners:
        if runner is reference:
            continue
        device = runner.actual_device
        if not isinstance(runner, (EagerRunner, TfTwinRunner)) and device in eager:
            pairs.append(_Pair(eager[device], runner, "torch-vs-artifact", device))
        if reference is not None:
            pairs.append(_Pair(runner, reference, "vs-reference", device))
    for pair in pairs:
        for spec in signature.outputs:
            tolerance = table.lookup(spec.name, pair.pair_class, pair.device)
            pair.accumulators[spec.name] = ComparisonAccumulator(
                spec.name,
                pair.left.name,
                pair.right.name,
                tolerance,
                wrap_phase=spec.wraps,
                pair_class=pair.pair_class,
                device=pair.device,
                peak=(peaks or {}).get(spec.name),
            )
    return pairs


def _stream(
    inputs: NpzRows, n: int, signature: Signature, runners: list[Runner], pairs: list[_Pair]
) -> None:
    batch = signature.inputs[0].shape[0]
    chunks = (n + batch - 1) // batch
    for index, start in enumerate(range(0, n, batch)):
        stop = min(start + batch, n)
        feed = {name: _pad(inputs.rows(name, start, stop), batch) for name in signature.input_names}
        outputs = {}
        for runner in runners:
            full = runner.infer(feed, slice(start, stop))
            outputs[runner.name] = {k: v[: stop - start] for k, v in full.items()}
        for pair in pairs:
            left, right = outputs[pair.left.name], outputs[pair.right.name]
            for spec in signature.outputs:
                name = spec.name
                weight = right.get(spec.weighted_by) if spec.weighted_by else None
                pair.accumulators[name].update(
                    left[name], right[name], sample_offset=start, weight=weight
                )
                _track_worst(pair, spec, left[name], right[name], start)
        if chunks > 1:
            log.info("parity: chunk %d/%d (samples %d-%d)", index + 1, chunks, start, stop - 1)


def _pad(rows: np.ndarray, batch: int) -> np.ndarray:
    """Fill a short last chunk up to the fixed batch by repeating its last row (outputs dropped)."""
    if rows.shape[0] == batch:
        return rows
    filler = np.repeat(rows[-1:], batch - rows.shape[0], axis=0)
    return np.concatenate([rows, filler], axis=0)


def _track_worst(
    pair: _Pair, spec: TensorSpec, left: np.ndarray, right: np.ndarray, start: int
) -> None:
    name = spec.name
    if left.shape != right.shape:
        return
    with np.errstate(invalid="ignore"):
        diff = left.astype(np.float64) - right.astype(np.float64)
        diff = np.abs(wrap_to_pi(diff) if spec.wraps else diff)
    per_sample = np.nan_to_num(diff.reshape(diff.shape[0], -1).max(axis=1), nan=np.inf)
    i = int(np.argmax(per_sample))
    best = pair.worst.get(name)
    if best is None or per_sample[i] > best[0]:
        pair.worst[name] = (float(per_sample[i]), start + i, left[i].copy(), right[i].copy())


def _write_reports(
    report: ParityReport, report_dir: Path, pairs: list[_Pair], signature: Signature
) -> None:
    from parity.report import render_error_map, write_all

    report_dir.mkdir(parents=True, exist_ok=True)
    maps_dir = report_dir / "error_maps"
    maps_dir.mkdir(exist_ok=True)
    for pair in pairs:
        if pair.pair_class != "vs-reference" and not any(
            c.status != "pass"
            for c in report.comparisons
            if c.left == pair.left.name and c.right == pair.right.name
        ):
            continue  # maps for every runner vs the reference, and for failing pairs
        for name, (err, sample, left, right) in pair.worst.items():
            safe = f"{name}_{pair.left.name}_vs_{pair.right.name}".replace("[", "-").replace(
                "]", ""
            )
            png = maps_dir / f"{safe}.png"
            render_error_map(
                left,
                right,
                signature.output(name).wraps,
                f"{name}: {pair.left.name} vs {pair.right.name}, sample {sample} (max err {err:.2e})",
                png,
            )
            report.error_maps.append(
                {
                    "output": name,
                    "left": pair.left.name,
                    "right": pair.right.name,
                    "sample": sample,
                    "png": str(png.relative_to(report_dir)),
                }
            )
    write_all(report, report_dir)
