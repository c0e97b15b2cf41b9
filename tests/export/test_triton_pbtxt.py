"""``config.pbtxt`` parses as the protobuf text format Triton reads, against the field names,
types and enum values of Triton's ``ModelConfig`` (``inference`` package,
triton-inference-server/common ``protobuf/model_config.proto``; the subset this tool writes),
and agrees with the artifacts' signature."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from export.build import BuildResult
from export.triton import write_triton_repository

_F = descriptor_pb2.FieldDescriptorProto


def _model_config_class():  # type: ignore[no-untyped-def]
    """Build ``inference.ModelConfig`` (the fields this tool writes) as a protobuf message."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="ptychopinn_triton_subset.proto", package="inference"
    )
    proto.syntax = "proto3"
    data_type = proto.enum_type.add(name="DataType")
    for number, name in enumerate(
        ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
         "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
         "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]
    ):  # fmt: skip
        data_type.value.add(name=name, number=number)

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message("ModelInput", [
        ("name", 1, _F.TYPE_STRING, one, ""),
        ("data_type", 2, _F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", 4, _F.TYPE_INT64, many, ""),
    ])  # fmt: skip
    message("ModelOutput", [
        ("name", 1, _F.TYPE_STRING, one, ""),
        ("data_type", 2, _F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", 3, _F.TYPE_INT64, many, ""),
    ])  # fmt: skip
    message("ModelConfig", [
        ("name", 1, _F.TYPE_STRING, one, ""),
        ("platform", 2, _F.TYPE_STRING, one, ""),
        ("max_batch_size", 4, _F.TYPE_INT32, one, ""),
        ("input", 5, _F.TYPE_MESSAGE, many, ".inference.ModelInput"),
        ("output", 6, _F.TYPE_MESSAGE, many, ".inference.ModelOutput"),
        ("backend", 17, _F.TYPE_STRING, one, ""),
    ])  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_config_pbtxt_parses_as_triton_model_config(
    built_physics: BuildResult, tmp_path: Path
) -> None:
    model_dir = write_triton_repository(built_physics.out, tmp_path / "repo", "pinn")
    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), _model_config_class()())
    assert (config.name, config.backend, config.max_batch_size) == ("pinn", "onnxruntime", 0)
    signature = built_physics.signature
    fp32 = 11  # inference.DataType.TYPE_FP32
    got_inputs = [(t.name, t.data_type, list(t.dims)) for t in config.input]
    got_outputs = [(t.name, t.data_type, list(t.dims)) for t in config.output]
    assert got_inputs == [(s.name, fp32, list(s.shape)) for s in signature.inputs]
    assert got_outputs == [(s.name, fp32, list(s.shape)) for s in signature.outputs]


def test_a_wrong_field_would_not_parse() -> None:
    """The parser is strict: an unknown field or enum value is an error (the check can fail)."""
    import pytest

    cls = _model_config_class()
    with pytest.raises(text_format.ParseError):
        text_format.Parse('name: "x"\nmax_batch: 0\n', cls())
    with pytest.raises(text_format.ParseError):
        text_format.Parse('input [ { name: "x" data_type: TYPE_FLOAT32 dims: [ 1 ] } ]', cls())
