"""``python -m export build``: checkpoint -> TorchScript, ONNX, torch.export + manifest, atomically.

Every artifact is written into a temporary folder beside ``out``, checked (float32 contract,
loaded back and run against eager) and only then swapped into place, so a failed or
interrupted build leaves the previous artifacts untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export.artifacts import safe_export_load
from export.contract import check_onnx_contract, check_program_contract
from export.exporters import export_onnx, export_program, export_torchscript
from export.inputs import load_feed, save_feed
from export.load_back import check_load_back
from export.manifest import (
    CheckpointInfo,
    Manifest,
    file_entry,
    package_versions,
    sha256_file,
)
from export.options import BuildOptions
from export.publish import (
    check_out,
    exclusive,
    make_build_dir,
    out_path,
    publish,
    recover_leftovers,
)
from export.reference_files import ReferenceMaker, place_reference
from export.signature import Signature, make_signature
from export.wrapper import wrap
from ptycho_torch.checkpoint import load_model, model_state_sha256, save_model
from ptycho_torch.config import ModelConfig
from ptycho_torch.digest import arrays_sha256

__all__ = ["BuildResult", "build"]

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.pt"  # the checkpoint's weights, copied in: the folder is self-contained
ARTIFACT_FILES = ("model.ts", "model.onnx", "model.pt2", "inputs.npz", WEIGHTS_FILE)


@dataclass
class BuildResult:
    """Where the artifacts are and what the build measured."""

    out: Path
    manifest: Manifest
    signature: Signature
    seconds: float
    steps: list[tuple[str, str, float]] = field(default_factory=list)


class _Progress:
    def __init__(self, total: int) -> None:
        self.total, self.index = total, 0
        self.steps: list[tuple[str, str, float]] = []

    @contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        self.index += 1
        notes: list[str] = []
        start = time.perf_counter()
        log.info("[%d/%d] %s ...", self.index, self.total, title)
        yield notes
        seconds = time.perf_counter() - start
        verdict = "; ".join(notes) if notes else "ok"
        log.info("[%d/%d] %s: %s (%.1f s)", self.index, self.total, title, verdict, seconds)
        self.steps.append((title, verdict, seconds))


def build(
    options: BuildOptions,
    make_reference: ReferenceMaker | None = None,
    threads: dict[str, Any] | None = None,
) -> BuildResult:
    """Export, check and publish the artifacts. Raises :class:`ExportError` subclasses.

    ``threads``: how torch's thread count was chosen (``ThreadChoice.to_dict()``), recorded in
    the manifest; the caller applies it before the build (None: the count in effect is recorded).
    """
    start = time.perf_counter()
    out = out_path(options.out)
    check_out(out, _used_paths(options), options.force)
    out.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        recover_leftovers(out)
        return _build_locked(options, out, start, make_reference, threads)


def _used_paths(options: BuildOptions) -> list[tuple[str, Path]]:
    used = [("--checkpoint", Path(options.checkpoint)), ("--inputs", Path(options.inputs))]
    if options.reference not in ("auto", "none"):
        used.append(("--reference", Path(options.reference)))
    return used


def _build_locked(
    options: BuildOptions,
    out: Path,
    start: float,
    make_reference: ReferenceMaker | None,
    threads: dict[str, Any] | None,
) -> BuildResult:
    progress = _Progress(7)
    torch.manual_seed(0)
    with progress.step(f"load checkpoint {options.checkpoint}") as notes:
        model = load_model(options.checkpoint)
        weights_sha = model_state_sha256(model)
        notes.append(f"N={model.N} C={model.C} weights {weights_sha[:12]}")
    with progress.step(f"read inputs {options.inputs}") as notes:
        feed = load_feed(options.inputs, model.config, options.batch, options.head)
        signature = make_signature(model.config, int(feed["diffraction"].shape[0]), options.head)
        signature.check_feed(feed)
        notes.append(", ".join(f"{s.name}: {s.describe()}" for s in signature.inputs))
    wrapper = wrap(model, signature)
    example = tuple(torch.from_numpy(feed[n]) for n in signature.input_names)
    with torch.inference_mode():
        eager = dict(zip(signature.output_names, (t.numpy() for t in wrapper(*example))))
    subject = _Subject(wrapper, model.config, signature, example, feed, eager, weights_sha)
    tmp = make_build_dir(out)
    try:
        save_model(model, tmp / WEIGHTS_FILE)
        manifest = _export_all(options, subject, tmp, progress, make_reference)
        # recorded here, not in _export_all: what ran the build, not what the export produced
        manifest = dataclasses.replace(
            manifest, threads=threads or {"threads": torch.get_num_threads()}
        )
        manifest.write(tmp)
        with progress.step(f"publish {out}") as notes:
            version = publish(tmp, out, options.keep, protect=[p for _, p in _used_paths(options)])
            notes.append(f"{len(manifest.files)} files, {out.name} -> {version.name}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BuildResult(out, manifest, signature, time.perf_counter() - start, progress.steps)


@dataclass(frozen=True)
class _Subject:
    """What the build exports: the wrapped model, its config and signature, the feed and eager
    PyTorch's outputs on it, and the weights digest."""

    wrapper: torch.nn.Module
    config: ModelConfig
    signature: Signature
    example: tuple[torch.Tensor, ...]  # the feed as tensors, in input order
    feed: dict[str, np.ndarray]
    eager: dict[str, np.ndarray]
    weights_sha: str


def _export_all(
    options: BuildOptions,
    subject: _Subject,
    tmp: Path,
    progress: _Progress,
    make_reference: ReferenceMaker | None,
) -> Manifest:
    """Export every artifact into ``tmp``, check each, place the reference; the manifest."""
    exporters, contract = _export_artifacts(options, subject, tmp, progress)
    with progress.step("load back and compare with eager") as notes:
        save_feed(tmp / "inputs.npz", subject.feed)
        loadback = check_load_back(tmp, subject.signature, subject.feed, subject.eager)
        notes.append(", ".join(f"{k} max_abs={v:.1e}" for k, v in loadback.items()))
    inputs_sha = arrays_sha256(subject.feed)
    reference = place_reference(options, subject.weights_sha, inputs_sha, tmp, make_reference)
    files = {
        name: file_entry(tmp / name) for name in ARTIFACT_FILES + reference if (tmp / name).exists()
    }
    return Manifest(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        head=subject.signature.head,
        signature=subject.signature.to_dict(),
        files=files,
        versions=package_versions(),
        opset=options.opset,
        exporters=exporters,
        torchscript_note=(
            "scripted, not traced: every branch in the model depends on the frozen config only, "
            "and the input check is kept in the artifact"
        ),
        checkpoint=CheckpointInfo(
            path=str(Path(options.checkpoint).resolve()),  # for the record
            sha256=sha256_file(options.checkpoint),
            weights_sha256=subject.weights_sha,
            weights_file=WEIGHTS_FILE,  # the copy check runs from: the folder is self-contained
        ),
        inputs_sha256=inputs_sha,
        model_config=subject.config.to_dict(),
        precision_policy={
            "dtype": "float32 inputs, weights and outputs; no float64/float16/complex in the ONNX graph",
            "tf32": "off for parity (torch matmul/cuDNN, ONNX Runtime CUDA use_tf32=0, TensorFlow)",
        },
        contract=contract,
        loadback_max_abs_vs_eager=loadback,
        reference=(
            json.loads((tmp / "reference.json").read_text()) if "reference.json" in files else None
        ),
    )


def _export_artifacts(
    options: BuildOptions, subject: _Subject, tmp: Path, progress: _Progress
) -> tuple[dict[str, str], dict[str, Any]]:
    """``model.ts``, ``model.onnx`` and ``model.pt2`` in ``tmp``, each checked against the
    float32 contract; how each was made and what its contract check found."""
    signature, example = subject.signature, subject.example
    metadata = {
        "ptychopinn.signature": json.dumps(signature.to_dict(), sort_keys=True),
        "ptychopinn.model_config": json.dumps(subject.config.to_dict(), sort_keys=True),
        "ptychopinn.weights_sha256": subject.weights_sha,
        "ptychopinn.head": signature.head,
    }
    exporters: dict[str, str] = {}
    frozen, layout = _in_memory_format(subject.wrapper, options.memory_format)
    with progress.step("TorchScript -> model.ts") as notes:
        exporters["model.ts"] = export_torchscript(frozen, signature, tmp / "model.ts") + layout
        notes.append(exporters["model.ts"])
    with progress.step(f"ONNX (dynamo, opset {options.opset}) -> model.onnx") as notes:
        export_onnx(
            subject.wrapper, example, signature, tmp / "model.onnx", options.opset, metadata
        )
        exporters["model.onnx"] = f"torch.onnx.export(dynamo=True, opset_version={options.opset})"
        model_proto = onnx.load(str(tmp / "model.onnx"))
        contract = {"model.onnx": check_onnx_contract(model_proto, signature)}
        notes.append(
            f"{len(model_proto.graph.node)} nodes, onnx.checker full check passed, float32 contract ok"
        )
    with progress.step("torch.export -> model.pt2") as notes:
        export_program(frozen, example, signature, tmp / "model.pt2")
        exporters["model.pt2"] = "torch.export.export(strict=False)" + layout
        program = safe_export_load(tmp / "model.pt2")
        contract["model.pt2"] = check_program_contract(program, signature)
        notes.append("float32 contract ok")
    return exporters, contract


def _in_memory_format(wrapper: torch.nn.Module, memory_format: str) -> tuple[torch.nn.Module, str]:
    """The wrapper ``model.ts`` and ``model.pt2`` are made from, and the note for the manifest.

    Channels-last: a copy whose 4-D weights are stored NHWC, which both formats save with their
    strides; the convolutions then run channels-last on any input (1.8x on this project's CPU,
    the gain eager gets from the same change) and their outputs follow. Results differ from
    the contiguous eager run by float32 round-off only (summation order). ``model.onnx`` is
    exported from ``wrapper`` itself: ONNX has no memory format, ONNX Runtime chooses its own.
    """
    if memory_format == "contiguous":
        return wrapper, ""
    frozen = copy.deepcopy(wrapper).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return frozen, ", channels-last weights"
