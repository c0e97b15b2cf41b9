"""Parity results as plain dataclasses with an exact (strict) JSON round trip; reports are views
of a :class:`ParityReport`, one compared output a :class:`core.output_comparison.OutputComparison`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.json_codec import decode_float, decode_tree, encode_float, encode_tree
from core.output_comparison import OutputComparison
from parity.errors import ParityError
from ptycho_torch.atomic import atomic_write
from ptycho_torch.jsonio import read_json_object

__all__ = [
    "REPORT_SCHEMA",
    "ErrorMap",
    "ParityReport",
    "ReportFormatError",
    "RunnerInfo",
    "Verdict",
]

Verdict = Literal["pass", "fail", "error"]  # a parity run, as reports write it

REPORT_SCHEMA = 1


class ReportFormatError(ParityError):
    """A report JSON file is unreadable or not in this version's schema."""


@dataclass
class RunnerInfo:
    """What one runner was and where it actually ran."""

    name: str  # unique in comparisons: onnxruntime[cuda]
    kind: str  # eager, torchscript, exported-program, onnxruntime, tf-reference or tf-live
    requested_device: str = "cpu"
    actual_device: str = "cpu"  # a mismatch is an environment failure
    providers: list[str] = field(default_factory=list)  # ONNX Runtime's providers in effect
    detail: dict[str, Any] = field(default_factory=dict)  # versions, session options, ...
    seconds: float = 0.0  # wall time of its inference

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["detail"] = encode_tree(self.detail)
        data["seconds"] = encode_float(self.seconds)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunnerInfo:
        """Inverse of :meth:`to_dict`."""
        kwargs = dict(data)
        kwargs["detail"] = decode_tree(kwargs.get("detail", {}))
        kwargs["seconds"] = decode_float(kwargs.get("seconds", 0.0))
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
    """Everything one parity run found; the JSON file is the record, other reports are views."""

    created: str  # ISO 8601 time of the run
    head: str  # object or physics
    artifacts_dir: str
    verdict: Verdict  # error: stopped before comparing (see error)
    exit_code: int  # 0 pass, 1 parity, 2 usage, 3 environment, 4 stale
    environment: dict[str, Any] = field(default_factory=dict)  # versions, host, devices
    precision: dict[str, Any] = field(default_factory=dict)  # TF32, determinism
    reference_provenance: dict[str, Any] = field(default_factory=dict)
    runners: list[RunnerInfo] = field(default_factory=list)
    comparisons: list[OutputComparison] = field(default_factory=list)
    # what a reader should know that is not a comparison (no reference, CUDA runners skipped
    # under --device auto); never a failure
    notes: list[str] = field(default_factory=list)
    error_maps: list[ErrorMap | dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the error line of a run that stopped before comparing
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
            "environment": encode_tree(self.environment),
            "precision": encode_tree(self.precision),
            "reference_provenance": encode_tree(self.reference_provenance),
            "runners": [r.to_dict() for r in self.runners],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "notes": list(self.notes),
            "error_maps": [m.to_dict() for m in self.maps()],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityReport:
        """Inverse of :meth:`to_dict` (``ReportFormatError`` on another schema or missing fields)."""
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
                environment=decode_tree(data.get("environment", {})),
                precision=decode_tree(data.get("precision", {})),
                reference_provenance=decode_tree(data.get("reference_provenance", {})),
                runners=[RunnerInfo.from_dict(r) for r in data.get("runners", [])],
                comparisons=[OutputComparison.from_dict(c) for c in data.get("comparisons", [])],
                # reports written before notes had their name kept them under "errors"
                notes=list(data.get("notes", data.get("errors", []))),
                error_maps=[ErrorMap.from_dict(m) for m in data.get("error_maps", [])],
                error=data.get("error"),
            )
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: a comparison's fields
            raise ReportFormatError(f"malformed parity report: {exc!r}") from None

    def save_json(self, path: str | Path) -> Path:
        """Write the report as JSON atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> ParityReport:
        """Read a report written by :meth:`save_json` (``ReportFormatError`` if it cannot)."""
        return cls.from_dict(read_json_object(Path(path), ReportFormatError))
