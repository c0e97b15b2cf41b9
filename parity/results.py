"""Parity results as plain dataclasses with an exact JSON round trip.

Reports (Markdown, JUnit, HTML) are views of a :class:`ParityReport`; the JSON file is the
record. Non-finite floats are not valid JSON, so metric fields store them as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, and free-form dicts (environment, details) store
them as ``{"$float": "NaN"}``; both decode back to the same float. Tuples in free-form dicts
come back as lists.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from parity.errors import ParityError
from parity.tolerances import Tolerance

__all__ = [
    "REPORT_SCHEMA",
    "ErrorMap",
    "OutputComparison",
    "ParityReport",
    "ReportFormatError",
    "RunnerInfo",
]

REPORT_SCHEMA = 1
_FLOAT_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class ReportFormatError(ParityError):
    """A report JSON file is unreadable or not in this version's schema."""


@dataclass
class OutputComparison:
    """One output of one runner pair: dtype and shape checks, then value metrics.

    ``right`` is the reference side: relative metrics and ``rtol`` divide by ``|right|``.
    Value metrics are ``None`` when no element could be compared (shape mismatch, or every
    element non-finite). Indices are full multi-indices into the output (``[sample, c, y, x]``).

    Attributes:
        output: Output name (``amplitude``, ``phase``, ``pred_amplitude``).
        left: Name of the compared runner (e.g. ``eager``).
        right: Name of the reference runner (e.g. ``tf-reference``).
        pair_class: Tolerance pair class (``torch-vs-artifact``, ``vs-reference``).
        device: Device the pair ran on (``cpu``, ``cuda``).
        tolerance: Criterion applied.
        status: ``pass`` or ``fail``.
        failures: Failure kinds in order: ``dtype``, ``shape``, ``nonfinite``, ``tolerance``.
        messages: One human-readable line per failure.
        expected_dtype: Dtype both sides must have.
        dtype_left: Dtype of the left output.
        dtype_right: Dtype of the right output.
        shape_left: Shape of the left output (axis 0 summed over chunks).
        shape_right: Shape of the right output.
        wrap_phase: Whether differences were wrapped into (-pi, pi].
        weighted: Whether phase errors were weighted by the reference amplitude.
        rel_floor: Denominator floor of the relative error.
        peak: Peak ``max |ref|`` that scaled the tolerance's ``rtol_peak`` (None without one).
        n_elements: Elements per side (when shapes match).
        n_compared: Elements finite on both sides (the value metrics cover these).
        max_abs: Largest absolute difference.
        max_rel: Largest ``|a-b| / max(|ref|, rel_floor)``.
        mean_abs: Mean absolute difference.
        rms: Root mean square difference.
        rel_l2: ``||a-b|| / ||ref||``.
        cosine: Cosine similarity (of unit phasors for phase).
        max_ratio: Largest ``|a-b| / (atol + rtol*|ref| + rtol_peak*peak)``; above 1 means out
            of tolerance.
        n_out: Elements outside the tolerance (non-finite ones included).
        fraction_out: ``n_out / n_elements``.
        nan_left: NaN count on the left.
        nan_right: NaN count on the right.
        inf_left: Inf count on the left.
        inf_right: Inf count on the right.
        first_nan_left: First NaN positions on the left (at most a few).
        first_nan_right: First NaN positions on the right.
        first_inf_left: First Inf positions on the left.
        first_inf_right: First Inf positions on the right.
        worst_index: Element using the largest share of its tolerance.
        worst_left: Left value there.
        worst_right: Right value there.
        worst_sample: Sample (axis 0) to draw an error map of.
    """

    output: str
    left: str
    right: str
    tolerance: Tolerance
    status: str
    pair_class: str = ""
    device: str = ""
    failures: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    expected_dtype: str = "float32"
    dtype_left: str = ""
    dtype_right: str = ""
    shape_left: list[int] = field(default_factory=list)
    shape_right: list[int] = field(default_factory=list)
    wrap_phase: bool = False
    weighted: bool = False
    rel_floor: float = 0.0
    peak: float | None = None
    n_elements: int = 0
    n_compared: int = 0
    max_abs: float | None = None
    max_rel: float | None = None
    mean_abs: float | None = None
    rms: float | None = None
    rel_l2: float | None = None
    cosine: float | None = None
    max_ratio: float | None = None
    n_out: int = 0
    fraction_out: float | None = None
    nan_left: int = 0
    nan_right: int = 0
    inf_left: int = 0
    inf_right: int = 0
    first_nan_left: list[list[int]] = field(default_factory=list)
    first_nan_right: list[list[int]] = field(default_factory=list)
    first_inf_left: list[list[int]] = field(default_factory=list)
    first_inf_right: list[list[int]] = field(default_factory=list)
    worst_index: list[int] | None = None
    worst_left: float | None = None
    worst_right: float | None = None
    worst_sample: int | None = None

    @property
    def passed(self) -> bool:
        """True when the status is ``pass``."""
        return self.status == "pass"

    def label(self) -> str:
        """``amplitude | eager vs onnxruntime[cpu]``."""
        return f"{self.output} | {self.left} vs {self.right}"

    def log_line(self) -> str:
        """Polygraphy-style line: ``amplitude | eager vs ort[cpu] | PASSED max_abs=3.1e-07 atol=1e-06``."""
        parts = [f"{self.label()} | {'PASSED' if self.passed else 'FAILED'}"]
        if self.failures:
            parts.append(f"[{', '.join(self.failures)}]")
        parts.append(f"max_abs={_fmt(self.max_abs)}")
        if self.tolerance.rtol:
            parts.append(f"max_rel={_fmt(self.max_rel)}")
        parts.append(f"atol={_fmt(self.tolerance.atol)}")
        if self.tolerance.rtol:
            parts.append(f"rtol={_fmt(self.tolerance.rtol)}")
        if self.tolerance.rtol_peak:
            parts.append(f"rtol_peak={_fmt(self.tolerance.rtol_peak)} peak={_fmt(self.peak)}")
        if self.n_out:
            parts.append(f"out={self.n_out}/{self.n_elements}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; non-finite metric floats become strings."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["tolerance"] = self.tolerance.to_dict()
        for key, value in data.items():
            if isinstance(value, float):
                data[key] = _encode_float(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputComparison:
        """Inverse of :meth:`to_dict` (unknown keys are rejected)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ReportFormatError(f"unknown OutputComparison keys {unknown}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "tolerance":
                value = Tolerance.from_dict(value)
            elif isinstance(value, str) and value in _FLOAT_NAMES and known[key].type != "str":
                value = _FLOAT_NAMES[value]
            kwargs[key] = value
        return cls(**kwargs)


@dataclass
class RunnerInfo:
    """What one runner was and where it actually ran.

    Attributes:
        name: Unique name used in comparisons (``onnxruntime[cuda]``).
        kind: ``eager``, ``torchscript``, ``exported-program``, ``onnxruntime``,
            ``tf-reference`` or ``tf-live``.
        requested_device: Device asked for.
        actual_device: Device it ran on (a mismatch is an environment failure).
        providers: ONNX Runtime execution providers in effect (empty for others).
        detail: Anything else worth recording (versions, session options).
        seconds: Wall time of its inference.
    """

    name: str
    kind: str
    requested_device: str = "cpu"
    actual_device: str = "cpu"
    providers: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["detail"] = _encode_tree(self.detail)
        data["seconds"] = _encode_float(self.seconds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunnerInfo:
        """Inverse of :meth:`to_dict`."""
        kwargs = dict(data)
        kwargs["detail"] = _decode_tree(kwargs.get("detail", {}))
        kwargs["seconds"] = _decode_float(kwargs.get("seconds", 0.0))
        return cls(**kwargs)


@dataclass
class ErrorMap:
    """An error-map image of one sample of one compared output (path relative to the report)."""

    output: str
    left: str
    right: str
    sample: int
    png: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorMap:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


@dataclass
class ParityReport:
    """Everything one parity run found; the JSON file is the record, other reports are views.

    Attributes:
        created: ISO 8601 time of the run.
        head: Exported head (``object`` or ``physics``).
        artifacts_dir: Folder of the artifacts checked.
        verdict: ``pass`` or ``fail``.
        exit_code: Exit code of the run (0 pass, 1 parity, 2 usage, 3 environment, 4 stale).
        environment: Versions, host, devices.
        precision: Precision policy in effect (TF32, determinism).
        reference_provenance: Provenance of the TensorFlow reference.
        runners: The runners that took part.
        comparisons: Every comparison made.
        errors: Failures that are not comparisons (environment, runner crashes).
        error_maps: Rendered error maps.
        schema: Report schema version.
    """

    created: str
    head: str
    artifacts_dir: str
    verdict: str
    exit_code: int
    environment: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)
    reference_provenance: dict[str, Any] = field(default_factory=dict)
    runners: list[RunnerInfo] = field(default_factory=list)
    comparisons: list[OutputComparison] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_maps: list[ErrorMap | dict[str, Any]] = field(default_factory=list)
    schema: int = REPORT_SCHEMA

    def __post_init__(self) -> None:
        self.error_maps = list(self.maps())

    def maps(self) -> list[ErrorMap]:
        """Error maps as :class:`ErrorMap` (entries appended as plain dicts are accepted)."""
        return [m if isinstance(m, ErrorMap) else ErrorMap.from_dict(m) for m in self.error_maps]

    @property
    def failed_comparisons(self) -> list[OutputComparison]:
        """Comparisons whose status is ``fail``."""
        return [c for c in self.comparisons if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (valid strict JSON: no NaN or Infinity literals)."""
        return {
            "schema": self.schema,
            "created": self.created,
            "head": self.head,
            "artifacts_dir": self.artifacts_dir,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "environment": _encode_tree(self.environment),
            "precision": _encode_tree(self.precision),
            "reference_provenance": _encode_tree(self.reference_provenance),
            "runners": [r.to_dict() for r in self.runners],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "errors": list(self.errors),
            "error_maps": [m.to_dict() for m in self.maps()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityReport:
        """Inverse of :meth:`to_dict`.

        Raises:
            ReportFormatError: On another schema version or missing fields.
        """
        if data.get("schema") != REPORT_SCHEMA:
            raise ReportFormatError(
                f"report schema {data.get('schema')!r}; this version reads {REPORT_SCHEMA}"
            )
        try:
            return cls(
                schema=data["schema"],
                created=data["created"],
                head=data["head"],
                artifacts_dir=data["artifacts_dir"],
                verdict=data["verdict"],
                exit_code=data["exit_code"],
                environment=_decode_tree(data.get("environment", {})),
                precision=_decode_tree(data.get("precision", {})),
                reference_provenance=_decode_tree(data.get("reference_provenance", {})),
                runners=[RunnerInfo.from_dict(r) for r in data.get("runners", [])],
                comparisons=[OutputComparison.from_dict(c) for c in data.get("comparisons", [])],
                errors=list(data.get("errors", [])),
                error_maps=[ErrorMap.from_dict(m) for m in data.get("error_maps", [])],
            )
        except (KeyError, TypeError) as exc:
            raise ReportFormatError(f"malformed parity report: {exc!r}") from None

    def save_json(self, path: str | Path) -> Path:
        """Write the report as JSON atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; reports are read by CI and reviewers
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> ParityReport:
        """Read a report written by :meth:`save_json`.

        Raises:
            ReportFormatError: If the file is missing, not JSON, or another schema.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportFormatError(f"cannot read parity report {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ReportFormatError(f"{path} must hold a JSON object")
        return cls.from_dict(data)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2g}"


def _encode_float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _decode_float(value: Any) -> Any:
    return _FLOAT_NAMES.get(value, value) if isinstance(value, str) else value


def _encode_tree(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _encode_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_tree(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy scalar -> Python scalar
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": _encode_float(value)}
    if isinstance(value, Path):
        return str(value)
    return value


def _decode_tree(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return _FLOAT_NAMES[value["$float"]]
        return {k: _decode_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tree(v) for v in value]
    return value
