"""Static float32 contract: scan exported artifacts for forbidden dtypes.

Graph inputs and outputs must be exactly float32 with the signature's fixed dims; no float64,
float16/bfloat16 or complex tensor, initializer, constant or cast may appear anywhere in the
ONNX graph (subgraphs and functions included). The torch.export program is scanned node by
node. A violation names the node and raises :class:`DtypeContractError`.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
import torch

from export.errors import DtypeContractError
from export.signature import Signature

__all__ = [
    "FORBIDDEN_ONNX_TYPES",
    "check_onnx_contract",
    "check_program_contract",
    "iter_graphs",
]

FORBIDDEN_ONNX_TYPES = {
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.COMPLEX64: "complex64",
    onnx.TensorProto.COMPLEX128: "complex128",
}
_FORBIDDEN_TORCH = {torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128}


def _type_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type).lower()


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value.type.tensor_type.shape.dim
    ]


def check_onnx_contract(model: onnx.ModelProto, signature: Signature) -> list[str]:
    """Check an ONNX model; return the list of what was verified, raise on the first violations."""
    problems = _boundary_problems(model, signature)
    if problems:
        raise DtypeContractError(
            "ONNX artifact breaks the float32 contract: " + "; ".join(problems)
        )
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as exc:
        raise DtypeContractError(f"ONNX artifact fails strict type inference: {exc}") from None
    for graph_name, graph in iter_graphs(inferred.graph, "main"):
        problems += _graph_problems(graph_name, graph)
    if problems:
        raise DtypeContractError(
            "ONNX artifact breaks the float32 contract: "
            + "; ".join(problems[:20])
            + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else "")
        )
    n_values = sum(len(g.value_info) for _, g in iter_graphs(inferred.graph, "main"))
    return [
        f"inputs/outputs float32 with fixed dims {[list(s.shape) for s in signature.inputs]}",
        f"{len(inferred.graph.node)} nodes, {len(inferred.graph.initializer)} initializers and "
        f"{n_values} intermediate tensors free of float64/float16/complex",
    ]


def _boundary_problems(model: onnx.ModelProto, signature: Signature) -> list[str]:
    """The graph's inputs and outputs against the signature: names, float32, fixed dims."""
    problems: list[str] = []
    for kind, values, specs in (
        ("input", model.graph.input, signature.inputs),
        ("output", model.graph.output, signature.outputs),
    ):
        names = [v.name for v in values]
        if names != [s.name for s in specs]:
            problems.append(f"graph {kind}s are {names}, signature says {[s.name for s in specs]}")
            continue
        for value, spec in zip(values, specs):
            elem = value.type.tensor_type.elem_type
            dims = _dims(value)
            if elem != onnx.TensorProto.FLOAT or dims != list(spec.shape):
                problems.append(
                    f"graph {kind} {value.name!r} is {_type_name(elem)}{dims}, "
                    f"expected {spec.describe()}"
                )
    return problems


def _graph_problems(graph_name: str, graph: onnx.GraphProto) -> list[str]:
    """Forbidden dtypes in one (sub)graph: initializers, typed values, casts, constants."""
    problems = [
        f"initializer {init.name!r} in graph {graph_name} is {_type_name(init.data_type)}"
        for init in graph.initializer
        if init.data_type in FORBIDDEN_ONNX_TYPES
    ]
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        elem = value.type.tensor_type.elem_type
        if elem in FORBIDDEN_ONNX_TYPES:
            problems.append(f"tensor {value.name!r} in graph {graph_name} is {_type_name(elem)}")
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and node.op_type == "Cast" and attr.i in FORBIDDEN_ONNX_TYPES:
                problems.append(
                    f"node {node.name or node.op_type!r} ({node.op_type}) casts to {_type_name(attr.i)}"
                )
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in FORBIDDEN_ONNX_TYPES:
                problems.append(
                    f"node {node.name or node.op_type!r} ({node.op_type}) holds a "
                    f"{_type_name(attr.t.data_type)} constant"
                )
    return problems


def check_program_contract(
    program: torch.export.ExportedProgram, signature: Signature
) -> list[str]:
    """Check every node of a torch.export program for forbidden dtypes.

    The physics head computes its FFT on a complex tensor inside the graph; complex is allowed
    there and only there (it never crosses the boundary, which is checked separately).
    """
    allowed_complex = signature.head == "physics"
    problems = []
    count = 0
    for node in program.graph.nodes:
        val = node.meta.get("val")
        for t in val if isinstance(val, (list, tuple)) else [val]:
            dtype = getattr(t, "dtype", None)
            if dtype is None:
                continue
            count += 1
            if dtype in _FORBIDDEN_TORCH and not (allowed_complex and dtype == torch.complex64):
                problems.append(f"node {node.name!r} ({node.target}) produces {dtype}")
    if problems:
        raise DtypeContractError(
            "torch.export artifact breaks the float32 contract: " + "; ".join(problems[:20])
        )
    return [f"{count} graph values checked for float64/float16"]


def iter_graphs(
    graph: onnx.GraphProto, name: str = "main"
) -> Iterator[tuple[str, onnx.GraphProto]]:
    """A graph and all its subgraphs (If/Loop/Scan bodies), with a path-like name each."""
    yield name, graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g, f"{name}/{node.name}.{attr.name}")
            for i, sub in enumerate(attr.graphs):
                yield from iter_graphs(sub, f"{name}/{node.name}.{attr.name}[{i}]")
