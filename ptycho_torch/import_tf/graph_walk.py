"""Walking a Keras functional graph (:mod:`ptycho_torch.import_tf.keras_config`) backwards: from
a layer to its input, from a convolution to the one before it and the layers in between.
Every problem is a :class:`GraphStructureError` naming the layers."""

from __future__ import annotations

from typing import Any

from ptycho_torch.import_tf.errors import GraphStructureError
from ptycho_torch.import_tf.keras_config import KerasLayer

__all__ = ["CONV", "GraphWalk", "check_channel_slice"]

CONV = "Conv2D"


class GraphWalk:
    """Backward walk over the graph, from a layer to the convolutions before it."""

    def __init__(self, layers: dict[str, KerasLayer]) -> None:
        self.layers = layers

    def layer(self, name: str) -> KerasLayer:
        if name not in self.layers:
            raise GraphStructureError(f"layer {name!r} is referenced but not defined")
        return self.layers[name]

    def single_input(self, layer: KerasLayer) -> KerasLayer:
        if len(layer.inputs) != 1:
            raise GraphStructureError(
                f"layer {layer.name} ({layer.class_name}) has {len(layer.inputs)} inputs, expected 1"
            )
        return self.layer(layer.inputs[0])

    def previous_conv(self, conv: KerasLayer) -> tuple[KerasLayer | None, list[KerasLayer]]:
        """The conv feeding ``conv`` (None at the model input) and the layers in between."""
        between: list[KerasLayer] = []
        current = self.single_input(conv)
        while current.class_name != CONV:
            if len(between) > len(self.layers):
                raise GraphStructureError(f"the graph has a cycle before {conv.name}")
            between.append(current)
            if current.class_name == "InputLayer":
                return None, between
            current = self.single_input(current)
        return current, between

    def conv_below(self, layer: KerasLayer, role: str) -> KerasLayer:
        """The Conv2D ``layer`` reads (``role`` names it in the error)."""
        conv = self.single_input(layer)
        if conv.class_name != CONV:
            raise GraphStructureError(
                f"{role}: {layer.name} reads {conv.class_name}, expected Conv2D"
            )
        return conv

    def expect_path(
        self, conv: KerasLayer, classes: tuple[str, ...], what: str, split: str = ""
    ) -> KerasLayer | None:
        """The conv before ``conv``, if exactly ``classes`` lie in between (``split``: which
        side of the head's 4-channel split a ``GetItem`` must take, 'centre' or 'border')."""
        prev, between = self.previous_conv(conv)
        found = tuple(layer.class_name for layer in between)
        if found != classes:
            raise GraphStructureError(
                f"{what}: between {conv.name} and the conv before it the graph has {list(found)}, "
                f"expected {list(classes)}"
            )
        for layer in between:
            if layer.class_name == "GetItem":
                check_channel_slice(layer, what, split)
        return prev


def check_channel_slice(layer: KerasLayer, what: str, split: str) -> None:
    """The head's ``x[..., :-4]`` (centre) or ``x[..., -4:]`` (border) channel slice."""
    key: Any = layer.args[1] if len(layer.args) > 1 else None
    bounds = None
    parts = key if isinstance(key, list) and all(isinstance(k, dict) for k in key) else []
    kinds = [k.get("class_name") for k in parts]
    if kinds == ["__ellipsis__", "__slice__"]:
        s = parts[1].get("config") or {}
        bounds = (s.get("start"), s.get("stop"), s.get("step"))
    if bounds != ((None, -4, None) if split == "centre" else (-4, None, None)):
        raise GraphStructureError(f"{what}: {layer.name} is not the original's 4-channel split")
