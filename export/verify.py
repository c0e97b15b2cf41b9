"""Check a copied artifacts folder on an inference host, torch-free.

In order, each step only when the one before passed:

1. every file ``manifest.json`` lists against its sha256 (missing or changed: exit 4, named);
2. ``model.onnx``'s signature, head, model config and weights digest against the manifest
   (a disagreement means ``manifest.json`` was edited after the build: exit 4);
3. the bundled reference is fresh: its provenance records the artifacts' weights digest, the
   digest of ``inputs.npz`` and the head (else exit 4, stale), and its tolerance entries;
4. ``inputs.npz`` through ONNX Runtime on the requested device (CUDA that did not come up:
   exit 3), each output compared with the reference by the comparison kernel that
   ``python -m export check`` uses (:mod:`core.compare`), with the ``vs-reference`` column of
   its tolerance table for the device, then the reference's own entries (its provenance's
   ``tolerances``). :meth:`VerifyReport.check` raises on a mismatch (exit 1), after every
   output was compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.compare import ComparedOutput, compare_arrays
from core.output_comparison import OutputComparison
from core.tolerances import Device, Tolerance, ToleranceTable
from export.errors import OutputMismatchError, ReferenceFormatError, StaleReferenceError
from export.host import DEVICES, OnnxHost
from export.manifest import Manifest, read_manifest
from export.session import SessionSettings
from export.signature import Signature, TensorSpec
from ptycho_torch.digest import arrays_sha256
from ptycho_torch.jsonio import read_json_object
from ptycho_torch.npz import read_npz

__all__ = ["VerifyOptions", "VerifyReport", "compare_output", "tolerances_for", "verify_artifacts"]

PAIR_CLASS = "vs-reference"  # the host's ONNX Runtime against the bundled reference
REFERENCE = "reference"  # the reference side's name in comparisons and lines


@dataclass(frozen=True)
class VerifyOptions:
    """How :func:`verify_artifacts` runs the parity batch."""

    device: Device = field(
        default="cpu", metadata={"help": "ONNX Runtime device", "choices": DEVICES}
    )
    atol: float | None = field(
        default=None,
        metadata={
            "help": "hold every output to this max abs error instead of the tolerance table "
            "(parity's defaults for the device, then the reference's own entries)"
        },
    )

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"VerifyOptions.device must be one of {DEVICES}, got {self.device!r}")
        if self.atol is not None and not (math.isfinite(self.atol) and self.atol >= 0):
            raise ValueError(f"VerifyOptions.atol must be finite and >= 0, got {self.atol!r}")


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_artifacts` checked; ``outputs`` is empty without a reference."""

    directory: str
    files: int
    device: str
    providers: list[str]
    reference: str | None
    outputs: list[OutputComparison]

    @property
    def runner(self) -> str:
        return f"onnxruntime[{self.device}]"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.outputs)

    def lines(self) -> list[str]:
        """One line per compared output, then the verdict."""
        lines = [_line(c) for c in self.outputs]
        checked = f"{self.files} files match manifest.json, model.onnx matches the manifest"
        if self.reference is None:
            lines.append(
                f"verified {self.directory}: {checked}; no reference.npz bundled, so the outputs "
                f"were checked for dtype, shape and NaN/Inf only (providers {self.providers})"
            )
        else:
            verdict = "PASS" if self.passed else "FAIL"
            passed = sum(c.passed for c in self.outputs)
            lines.append(
                f"verify {verdict}: {self.directory}: {checked}; {passed}/{len(self.outputs)} "
                f"outputs within tolerance of {self.reference} on {self.runner} "
                f"(providers {self.providers})"
            )
        return lines

    def check(self) -> None:
        """Raise when an output failed.

        Raises:
            OutputMismatchError: (exit 1) naming each failing output and how it failed.
        """
        failed = [c for c in self.outputs if not c.passed]
        if failed:
            raise OutputMismatchError(
                f"{self.directory}: {self.runner} differs from {self.reference}: "
                + "; ".join(
                    f"{c.output}: max_abs={_max_abs(c):.3g} ({_bound(c)}), {'; '.join(c.messages)}"
                    for c in failed
                )
                + ". The model or the runtime computes differently here: compare the versions "
                "in manifest.json with this host's, or rebuild and run `python -m export check`"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "files": self.files,
            "device": self.device,
            "providers": self.providers,
            "reference": self.reference,
            "passed": self.passed,
            "outputs": [c.to_dict() for c in self.outputs],
        }


def verify_artifacts(
    directory: str | Path, options: VerifyOptions = VerifyOptions()
) -> VerifyReport:
    """Run the checks of the module docstring; the comparison's verdict is in the report.

    Raises:
        ManifestError: (exit 2) no readable manifest.
        ReferenceFormatError: (exit 2) the bundled reference is malformed.
        ArtifactsChangedError: (exit 4) a file is missing or changed, or the manifest does not
            describe ``model.onnx``.
        StaleReferenceError: (exit 4) the reference belongs to other weights, inputs or head.
        HostError: (exit 3) CUDA requested but not running; (exit 2) ONNX Runtime cannot load.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)  # every file checked: missing or changed is exit 4
    host = OnnxHost(
        directory / "model.onnx",
        device=options.device,
        session=SessionSettings.from_manifest(manifest),  # what the host will run
    )
    host.check_manifest(manifest)
    feed = read_npz(directory / "inputs.npz", what="inputs")
    reference = _fresh_reference(directory, manifest, host, feed)
    outputs = host.run({name: v for name, v in feed.items() if name in host.input_names})
    host.signature.check_outputs(outputs)  # dtype and shape, whatever the reference says
    if reference is not None:
        checks = _compare_outputs(directory, host.signature, outputs, reference, options)
    else:
        checks = []
        bad = [n for n, v in outputs.items() if not np.all(np.isfinite(v))]
        if bad:
            raise OutputMismatchError(
                f"{directory}: model.onnx gives NaN/Inf in {bad} on inputs.npz"
            )
    bundled = "reference.npz" if reference is not None else None
    return VerifyReport(
        str(directory), len(manifest.files), options.device, host.providers, bundled, checks
    )


def _compare_outputs(
    directory: Path,
    signature: Signature,
    outputs: Mapping[str, np.ndarray],
    reference: tuple[dict[str, np.ndarray], dict[str, Any]],
    options: VerifyOptions,
) -> list[OutputComparison]:
    """Each output of ``model.onnx`` against the bundled reference, by the comparison kernel
    with the reference's tolerances (or ``--atol``)."""
    arrays, provenance = reference
    try:
        tolerances = tolerances_for(options.device, provenance.get("tolerances"), options.atol)
    except ValueError as exc:
        raise ReferenceFormatError(f"{directory / 'reference.json'}: {exc}") from None
    missing = [spec.name for spec in signature.outputs if spec.name not in arrays]
    if missing:
        raise ReferenceFormatError(
            f"reference.npz has no {missing[0]!r}; it holds {sorted(arrays)}"
        )
    return [
        compare_output(
            spec,
            outputs[spec.name],
            arrays[spec.name],
            tolerances[spec.name],
            arrays.get(spec.weighted_by) if spec.weighted_by else None,
            options.device,
        )
        for spec in signature.outputs
    ]


def tolerances_for(
    device: str, reference_tolerances: Mapping[str, Any] | None = None, atol: float | None = None
) -> dict[str, Tolerance]:
    """The tolerance of every output on ``device``, as ``parity check`` looks them up.

    Args:
        device: ``cpu`` or ``cuda``.
        reference_tolerances: the reference provenance's ``tolerances`` (a partial tolerance
            file), merged onto the default table.
        atol: when given, every output is held to this absolute tolerance instead.

    Raises:
        ValueError: a malformed entry, naming where it is.
    """
    table = ToleranceTable.default()
    if reference_tolerances:
        table = ToleranceTable.from_dict(reference_tolerances)
    if atol is not None:
        return {name: Tolerance(atol, 0.0) for name in table.entries}
    return {name: table.lookup(name, PAIR_CLASS, device) for name in table.entries}


def compare_output(
    spec: TensorSpec,
    actual: np.ndarray,
    reference: np.ndarray,
    tolerance: Tolerance,
    weight: np.ndarray | None = None,
    device: str = "cpu",
) -> OutputComparison:
    """One output of ONNX Runtime on ``device`` (``actual``) against the reference's array, by
    the kernel; ``weight``: for an angle, the reference's ``spec.weighted_by`` output."""
    reference = np.atleast_1d(reference)  # a 0-d array (no build writes one) fails on shape
    if weight is not None and np.shape(weight) != reference.shape:
        weight = None  # the weighting output fails its own shape check
    return compare_arrays(
        ComparedOutput(
            spec.name,
            f"onnxruntime[{device}]",
            REFERENCE,
            tolerance,
            wrap_phase=spec.wraps,
            pair_class=PAIR_CLASS,
            device=device,
            expected_dtype=spec.dtype,
        ),
        actual,
        reference,
        weight=weight,
    )


def _line(c: OutputComparison) -> str:
    """``phase | onnxruntime[cpu] vs reference | PASSED max_abs=9.5e-07 atol=4e-06``."""
    verdict = "PASSED" if c.passed else "FAILED"
    text = f"{c.label()} | {verdict} max_abs={_max_abs(c):.2g} {_bound(c)}"
    return text if c.passed else f"{text} ({'; '.join(c.messages)})"


def _max_abs(c: OutputComparison) -> float:
    return c.max_abs if c.max_abs is not None else math.inf  # nothing compared (shape, NaN)


def _bound(c: OutputComparison) -> str:
    t = c.tolerance
    text = f"atol={t.atol:g}" + (f" rtol={t.rtol:g}" if t.rtol else "")
    return text + (f" rtol_peak={t.rtol_peak:g} peak={c.peak or 0.0:.3g}" if t.rtol_peak else "")


def _fresh_reference(
    directory: Path, manifest: Manifest, host: OnnxHost, feed: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The bundled reference's arrays and provenance, checked fresh; None without one."""
    path, side = directory / "reference.npz", directory / "reference.json"
    if not path.is_file():
        return None
    if not side.is_file():
        raise ReferenceFormatError(
            f"{path} has no provenance reference.json beside it, so it cannot be tied to these "
            "weights; copy the folder again or rebuild with `python -m export build`"
        )
    provenance = read_json_object(side, ReferenceFormatError)
    inputs_sha = arrays_sha256({n: feed[n] for n in host.input_names if n in feed})
    problems = manifest.reference_problems(provenance, inputs_sha)
    if problems:
        raise StaleReferenceError(
            f"{path} is stale: " + "; ".join(problems) + ": it was made from other weights or "
            "inputs than these artifacts; rebuild with `python -m export build` (which makes a "
            "fresh reference) or copy the matching reference"
        )
    return read_npz(path, what="reference"), provenance
