"""A Keras 3 functional model's ``config.json`` read as plain data: each layer's class, config
and the names of its inputs (``layers[*].inbound_nodes``). No Keras object is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptycho_torch.import_tf.errors import GraphStructureError

__all__ = ["KerasLayer", "parse_functional"]


@dataclass(frozen=True)
class KerasLayer:
    """One entry of a functional config: class, config and the names of its inputs."""

    name: str
    class_name: str
    config: dict[str, Any]
    inputs: list[str]
    args: list[Any] = field(default_factory=list)  # the inbound node's raw args (slices etc.)
    input_shape: list[Any] | None = None


def parse_functional(keras_config: dict[str, Any]) -> dict[str, KerasLayer]:
    """Layers of a Keras 3 functional ``config.json``, in saved order, keyed by name."""
    if keras_config.get("class_name") != "Functional":
        raise GraphStructureError(
            f"model.keras holds a {keras_config.get('class_name')!r} model, expected the "
            "original's Functional model"
        )
    try:
        return _parse_layers(keras_config["config"]["layers"])
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise GraphStructureError(
            f"model.keras config.json is not a Keras 3 functional config ({type(exc).__name__}: "
            f"{exc})"
        ) from None


def _parse_layers(raw_layers: list[dict[str, Any]]) -> dict[str, KerasLayer]:
    layers: dict[str, KerasLayer] = {}
    for raw in raw_layers:
        nodes = raw.get("inbound_nodes", [])
        if len(nodes) > 1:
            raise GraphStructureError(f"layer {raw.get('name')!r} is shared ({len(nodes)} calls)")
        args = nodes[0].get("args", []) if nodes else []
        build = raw.get("build_config") or {}
        layers[raw["name"]] = KerasLayer(
            name=raw["name"],
            class_name=raw["class_name"],
            config=raw.get("config", {}),
            inputs=[h[0] for h in _tensor_histories(nodes)],
            args=args,
            input_shape=build.get("input_shape"),
        )
    return layers


def _tensor_histories(node: Any) -> list[list[Any]]:
    """``keras_history`` of every tensor referenced in an inbound node, in order."""
    found: list[list[Any]] = []
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            found.append(node["config"]["keras_history"])
        else:
            for value in node.values():
                found += _tensor_histories(value)
    elif isinstance(node, list):
        for value in node:
            found += _tensor_histories(value)
    return found
