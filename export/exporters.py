"""Write one artifact each: TorchScript (``model.ts``), ONNX (``model.onnx``), torch.export (``model.pt2``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from export.contract import iter_graphs
from export.errors import BuildError
from export.signature import Signature
from ptycho_torch.errors import writing

__all__ = [
    "SIGNATURE_EXTRA_FILE",
    "export_onnx",
    "export_program",
    "export_torchscript",
]

log = logging.getLogger(__name__)

SIGNATURE_EXTRA_FILE = "signature.json"  # stored inside model.ts and model.pt2


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter chatter (deprecation notices, torchvision registration) on stdout/stderr."""
    buffer = io.StringIO()
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(buffer),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        if buffer.getvalue().strip():
            log.debug("exporter output:\n%s", buffer.getvalue())


def export_torchscript(wrapper: nn.Module, signature: Signature, path: Path) -> str:
    """Script the wrapper (no tracing: every branch in the model is static config).

    Returns the method used, recorded in the manifest.
    """
    try:
        with _quiet():
            scripted = torch.jit.script(wrapper)
    except Exception as exc:
        raise BuildError(f"TorchScript export failed: {exc}") from exc
    buffer = io.BytesIO()  # torch's file writer aborts the process when a write is refused
    with _quiet():
        torch.jit.save(
            scripted, buffer, _extra_files={SIGNATURE_EXTRA_FILE: json.dumps(signature.to_dict())}
        )
    with writing(path):
        path.write_bytes(buffer.getbuffer())
    return "torch.jit.script"


def export_program(
    wrapper: nn.Module, example: tuple[Tensor, ...], signature: Signature, path: Path
) -> None:
    """``torch.export.export`` with static shapes, saved with the signature as an extra file."""
    try:
        with _quiet():
            program = torch.export.export(wrapper, example, strict=False)
    except Exception as exc:
        raise BuildError(f"torch.export failed: {exc}") from exc
    buffer = io.BytesIO()  # torch's file writer aborts the process when a write is refused
    with _quiet():
        torch.export.save(
            program, buffer, extra_files={SIGNATURE_EXTRA_FILE: json.dumps(signature.to_dict())}
        )
    with writing(path):
        path.write_bytes(buffer.getbuffer())


def export_onnx(
    wrapper: nn.Module,
    example: tuple[Tensor, ...],
    signature: Signature,
    path: Path,
    opset: int,
    metadata: Mapping[str, str],
) -> None:
    """Dynamo ONNX export, metadata in ``metadata_props``, full ``onnx.checker`` check.

    Names and shapes come from the signature; the producer fields are fixed so that two builds
    of the same checkpoint give byte-identical files.
    """
    try:
        with _quiet():
            program = torch.onnx.export(
                wrapper,
                example,
                f=None,
                dynamo=True,
                opset_version=opset,
                input_names=signature.input_names,
                output_names=signature.output_names,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:
        raise BuildError(f"ONNX export (dynamo, opset {opset}) failed: {exc}") from exc
    if program is None:
        raise BuildError("ONNX export returned no program")
    model = program.model_proto
    _strip_nondeterminism(model)
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise BuildError(f"onnx.checker rejected the exported model: {exc}") from exc
    with writing(path):
        path.write_bytes(model.SerializeToString(deterministic=True))


def _strip_nondeterminism(model: onnx.ModelProto) -> None:
    """Drop stack-trace doc strings and node metadata that mention temporary paths."""
    model.doc_string = ""
    for _, graph in iter_graphs(model.graph):
        graph.doc_string = ""
        for node in graph.node:
            node.doc_string = ""
            del node.metadata_props[:]
    for function in model.functions:
        for node in function.node:
            node.doc_string = ""
            del node.metadata_props[:]
