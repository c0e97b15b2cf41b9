"""ONNX Runtime session settings a host keeps: measured once, recorded in ``manifest.json``.

``python -m export bench --save-tuning`` measures intra-op thread counts and graph optimisation
levels (on CUDA: cuDNN's algorithm search, IO binding and CUDA graphs) on the machine that will
serve, and records the fastest as the manifest's ``onnxruntime_session``::

    {"intra_op_threads": 2, "graph_optimization": "all", "measured_on": "AMD EPYC, 2 cores"}

:class:`export.host.OnnxHost` (and so :class:`export.predict.Predictor`) applies it when present;
a manifest without it (older builds) runs ONNX Runtime's defaults. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from export.errors import ManifestError
from export.manifest import Manifest, read_manifest
from ptycho_torch.atomic import atomic_write

__all__ = ["GRAPH_OPTIMIZATIONS", "SessionSettings", "save_session_settings"]

# ``--graph-optimization`` names -> onnxruntime.GraphOptimizationLevel member names
GRAPH_OPTIMIZATIONS: dict[str, str] = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


@dataclass(frozen=True)
class SessionSettings:
    """How to open an ONNX Runtime session for this artifact (``None``: ONNX Runtime's default)."""

    intra_op_threads: int | None = None  # threads inside one operator (conv); 0/None: ORT picks
    graph_optimization: str | None = None  # one of GRAPH_OPTIMIZATIONS
    cudnn_conv_algo_search: str | None = None  # CUDA only: EXHAUSTIVE | HEURISTIC | DEFAULT
    # intra-op threads busy-wait for the next operator (ORT's default) or sleep: spinning
    # threads take cores from other work on a shared machine
    allow_spinning: bool | None = None
    measured_on: str = ""  # the machine (and load) the choice was measured on, for the record
    # inputs copied into, and outputs written to, buffers allocated once on the session's device
    # (ONNX Runtime's IO binding): no per-run allocation; on CUDA, one explicit copy each way
    io_binding: bool | None = None
    # CUDA only: capture the whole run once as a CUDA graph and replay it (the fixed signature
    # allows it); needs io_binding and every node on the CUDA provider
    cuda_graph: bool | None = None
    # set by `bench --save-tuning-anyway` only: the load the settings were measured under when it
    # was above the core count (the timings, and so the choice, are partly that load's)
    measured_while_busy: str = ""

    def __post_init__(self) -> None:
        if self.intra_op_threads is not None and (
            not isinstance(self.intra_op_threads, int) or self.intra_op_threads < 0
        ):
            raise ValueError(
                f"intra_op_threads must be an integer >= 0, got {self.intra_op_threads!r}"
            )
        if (
            self.graph_optimization is not None
            and self.graph_optimization not in GRAPH_OPTIMIZATIONS
        ):
            raise ValueError(
                f"graph_optimization must be one of {list(GRAPH_OPTIMIZATIONS)}, "
                f"got {self.graph_optimization!r}"
            )
        for name in ("allow_spinning", "io_binding", "cuda_graph"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        if self.cuda_graph and not self.io_binding:
            raise ValueError(
                "cuda_graph needs io_binding: a captured graph replays on fixed buffers"
            )
        if self.cudnn_conv_algo_search not in (None, "EXHAUSTIVE", "HEURISTIC", "DEFAULT"):
            raise ValueError(
                "cudnn_conv_algo_search must be EXHAUSTIVE, HEURISTIC or DEFAULT, "
                f"got {self.cudnn_conv_algo_search!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != ""}

    @classmethod
    def from_dict(cls, raw: object, source: str = "onnxruntime_session") -> SessionSettings:
        """Build from the manifest's plain dict; unknown keys are ignored (a newer writer).

        Raises:
            ManifestError: (exit 2) not an object, or a value out of range.
        """
        if not isinstance(raw, dict):
            raise ManifestError(f"{source} must be an object, got {type(raw).__name__}; rebuild")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ManifestError(
                f"{source}: {exc}; rerun `python -m export bench --save-tuning`"
            ) from None

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> SessionSettings | None:
        """The recorded settings, or None for a manifest without them."""
        if manifest.onnxruntime_session is None:
            return None
        return cls.from_dict(manifest.onnxruntime_session, "manifest.json: onnxruntime_session")

    def describe(self) -> str:
        """``intra-op threads 2, graph optimisation all`` (defaults named as such)."""
        threads = self.intra_op_threads or "ORT default"
        level = self.graph_optimization or "ORT default (all)"
        text = f"intra-op threads {threads}, graph optimisation {level}"
        if self.allow_spinning is not None:
            text += f", spinning {'on' if self.allow_spinning else 'off'}"
        if self.cudnn_conv_algo_search:
            text += f", cuDNN conv algo search {self.cudnn_conv_algo_search}"
        if self.io_binding:
            text += ", IO binding"
        if self.cuda_graph:
            text += ", CUDA graph"
        return text

    def session_options(self, options: Any) -> Any:
        """Apply to an ``onnxruntime.SessionOptions`` (returned for chaining)."""
        import onnxruntime as ort

        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        if self.graph_optimization is not None:
            level = GRAPH_OPTIMIZATIONS[self.graph_optimization]
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        if self.allow_spinning is not None:
            spinning = "1" if self.allow_spinning else "0"
            options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        return options

    def cuda_options(self) -> dict[str, str]:
        """Extra CUDA execution provider options."""
        options = {}
        if self.cudnn_conv_algo_search is not None:
            options["cudnn_conv_algo_search"] = self.cudnn_conv_algo_search
        if self.cuda_graph:
            options["enable_cuda_graph"] = "1"
        return options


def save_session_settings(directory: str | Path, settings: SessionSettings) -> Manifest:
    """Record ``settings`` in ``DIR/manifest.json`` (verified first), written atomically.

    The manifest does not hash itself (it lists the other files' sha256), so every file it
    lists still verifies; the write is :func:`ptycho_torch.atomic.atomic_write`.

    Raises:
        ManifestError, ArtifactsChangedError: as :func:`export.manifest.read_manifest`.
    """
    directory = Path(directory)
    manifest = replace(read_manifest(directory), onnxruntime_session=settings.to_dict())
    text = manifest.to_json().encode()
    atomic_write(directory / "manifest.json", lambda f: f.write(text))
    return manifest
