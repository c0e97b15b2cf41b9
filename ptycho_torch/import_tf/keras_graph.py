"""Assign conv roles by walking the functional graph in ``model.keras``'s ``config.json``.

The graph is read as JSON (``layers[*].inbound_nodes`` name each layer's inputs); no Keras
object is built. The walk starts at the original's ``CombineComplexLayer`` (input 0 is the
amplitude decoder's output, input 1 the phase decoder's) and goes backwards through each
decoder head, its up blocks and the shared encoder, checking the layers between convolutions
(``UpSampling2D``, ``MaxPooling2D``, the ``[..., :-4]`` / ``[..., -4:]`` channel slices, the
activation, zero padding and border mask) so that a role is assigned only where the graph has
exactly the structure of the original's ``create_encoder`` / ``create_decoder_*``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ptycho_torch.import_tf.errors import ImportTFError
from ptycho_torch.import_tf.roles import BRANCHES, ConvSource

__all__ = ["GraphStructureError", "KerasLayer", "conv_sources_from_graph", "parse_functional"]

_CONV = "Conv2D"
_ENTRY = ("InputLayer", "IntensityScaler")  # what the first encoder conv may read from


class GraphStructureError(ImportTFError):
    """``model.keras``'s graph is not the original PtychoPINN network this port implements."""


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


class _Walk:
    """Backward walk over the graph; collects every structural problem before raising."""

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
        while current.class_name != _CONV:
            if len(between) > len(self.layers):
                raise GraphStructureError(f"the graph has a cycle before {conv.name}")
            between.append(current)
            if current.class_name == "InputLayer":
                return None, between
            current = self.single_input(current)
        return current, between

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
                _check_channel_slice(layer, what, split)
        return prev


def _check_channel_slice(layer: KerasLayer, what: str, split: str) -> None:
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


def _decoder_roles(
    walk: _Walk, tail: KerasLayer, branch: str
) -> tuple[dict[str, KerasLayer], KerasLayer]:
    """Roles of one decoder, from its output back to (excluding) the encoder's last conv."""
    roles: dict[str, KerasLayer] = {}
    centre = border = None
    if tail.class_name == "Add":  # pad_object and probe.big: centre + border * mask
        for name in tail.inputs:
            side = walk.layer(name)
            if side.class_name == "ZeroPadding2D":
                centre = side
            elif side.class_name == "Multiply":
                border = side
        if centre is None or border is None or len(tail.inputs) != 2:
            raise GraphStructureError(f"{branch}: {tail.name} is not centre + masked border")
    elif tail.class_name == "ZeroPadding2D":  # pad_object without probe.big
        centre = tail
    elif tail.class_name == "ActivationLayer":  # no pad_object: up block, conv2, activation
        roles[f"{branch}.last.conv2"] = _conv_below(walk, tail, f"{branch}.last.conv2")
    else:
        raise GraphStructureError(f"{branch}: unexpected decoder output {tail.class_name}")

    if centre is not None:
        act = walk.single_input(centre)
        if act.class_name != "ActivationLayer":
            raise GraphStructureError(f"{branch}: no activation before {centre.name}")
        roles[f"{branch}.last.conv1"] = _conv_below(walk, act, f"{branch}.last.conv1")
    if border is not None:
        silu = _border_activation(walk, border, branch)
        roles[f"{branch}.last.conv2"] = _conv_below(walk, silu, f"{branch}.last.conv2")

    base: KerasLayer | None = None
    if f"{branch}.last.conv1" in roles:
        base = walk.expect_path(
            roles[f"{branch}.last.conv1"],
            ("GetItem", "UpSampling2D"),
            f"{branch}.last.conv1",
            split="centre",
        )
    if f"{branch}.last.conv2" in roles:
        up2 = walk.expect_path(
            roles[f"{branch}.last.conv2"], ("UpSampling2D",), f"{branch}.last.conv2"
        )
        up1 = walk.expect_path(_need(up2, branch), (), f"{branch}.last.up.conv2")
        # with pad_object the border path reads the last 4 channels, else all of them
        pre = ("GetItem", "UpSampling2D") if centre is not None else ("UpSampling2D",)
        border_base = walk.expect_path(
            _need(up1, branch), pre, f"{branch}.last.up.conv1", split="border"
        )
        roles[f"{branch}.last.up.conv2"] = _need(up2, branch)
        roles[f"{branch}.last.up.conv1"] = _need(up1, branch)
        if base is not None and border_base is not base:
            raise GraphStructureError(f"{branch}: centre and border paths start at different convs")
        base = border_base

    ups: list[KerasLayer] = []  # decoder convs, last first
    conv = _need(base, branch)
    while len(ups) <= len(walk.layers):  # bounded: a config with a cycle must not hang
        ups.append(conv)
        prev, between = walk.previous_conv(conv)
        kinds = [layer.class_name for layer in between]
        if kinds == ["MaxPooling2D"]:
            break  # conv reads the encoder's output
        expected = [] if len(ups) % 2 == 1 else ["UpSampling2D"]
        if kinds != expected:
            raise GraphStructureError(
                f"{branch} decoder: between {conv.name} and the conv before it the graph has "
                f"{kinds}, expected {expected}"
            )
        conv = _need(prev, branch)
    else:
        raise GraphStructureError(f"{branch} decoder: the graph has a cycle")
    if len(ups) % 2:
        raise GraphStructureError(f"{branch} decoder has an odd number of convs ({len(ups)})")
    ups.reverse()
    for k, layer in enumerate(ups):
        roles[f"{branch}.up{k // 2}.conv{k % 2 + 1}"] = layer
    encoder_out, _ = walk.previous_conv(ups[0])
    return roles, _need(encoder_out, branch)


def _need(layer: KerasLayer | None, branch: str) -> KerasLayer:
    if layer is None:
        raise GraphStructureError(f"{branch} decoder reaches the model input without the encoder")
    return layer


def _conv_below(walk: _Walk, layer: KerasLayer, role: str) -> KerasLayer:
    conv = walk.single_input(layer)
    if conv.class_name != _CONV:
        raise GraphStructureError(f"{role}: {layer.name} reads {conv.class_name}, expected Conv2D")
    return conv


def _border_activation(walk: _Walk, multiply: KerasLayer, branch: str) -> KerasLayer:
    """``swish(conv2(...)) * border_mask``: Multiply(act, CenterMaskLayer(act, kind='border'))."""
    inputs = [walk.layer(n) for n in multiply.inputs]
    masks = [layer for layer in inputs if layer.class_name == "CenterMaskLayer"]
    acts = [layer for layer in inputs if layer.class_name != "CenterMaskLayer"]
    if len(masks) != 1 or len(acts) != 1 or masks[0].config.get("kind") != "border":
        raise GraphStructureError(f"{branch}: {multiply.name} is not swish(conv2) * border mask")
    if acts[0].class_name not in ("Silu", "Activation", "ActivationLayer"):
        raise GraphStructureError(f"{branch}: border path activation is {acts[0].class_name}")
    return acts[0]


def _encoder_roles(walk: _Walk, last: KerasLayer) -> dict[str, KerasLayer]:
    convs = [last]
    while len(convs) <= len(walk.layers):
        prev, between = walk.previous_conv(convs[-1])
        kinds = [layer.class_name for layer in between]
        if prev is None:
            if not kinds or kinds[-1] != "InputLayer" or any(k not in _ENTRY for k in kinds):
                raise GraphStructureError(f"encoder input path is {kinds}, expected {list(_ENTRY)}")
            break
        expected = [] if len(convs) % 2 == 1 else ["MaxPooling2D"]
        if kinds != expected:
            raise GraphStructureError(
                f"encoder: between {convs[-1].name} and the conv before it the graph has {kinds}, "
                f"expected {expected}"
            )
        convs.append(prev)
    else:
        raise GraphStructureError("encoder: the graph has a cycle")
    if len(convs) % 2:
        raise GraphStructureError(f"encoder has an odd number of convs ({len(convs)})")
    convs.reverse()
    return {f"encoder.block{k // 2}.conv{k % 2 + 1}": c for k, c in enumerate(convs)}


def conv_sources_from_graph(
    layers: dict[str, KerasLayer],
) -> tuple[list[ConvSource], dict[str, Any]]:
    """Every conv's role, HDF5 location and the graph facts the importer cross-checks.

    Keras 3 stores a conv's weights under ``layers/conv2d[_k]`` with k its position among the
    Conv2D layers of the saved layer list (not its layer name), so the location follows from the
    config's order. Returns the sources in role order and ``facts``: ``input_shape`` (the
    diffraction input's batch shape), ``amp_activation`` (the amplitude activation's name),
    ``use_polar`` and, per role, the conv's ``filters``/``in_channels``/settings for shape checks.
    """
    walk = _Walk(layers)
    combine = [layer for layer in layers.values() if layer.class_name == "CombineComplexLayer"]
    if len(combine) != 1 or len(combine[0].inputs) != 2:
        raise GraphStructureError(
            "model.keras has no single CombineComplexLayer(amplitude, phase); it is not the "
            "original PtychoPINN object head"
        )
    roles: dict[str, KerasLayer] = {}
    encoder_outs = []
    for branch, tail_name in zip(BRANCHES, combine[0].inputs):
        branch_roles, encoder_out = _decoder_roles(walk, walk.layer(tail_name), branch)
        roles.update(branch_roles)
        encoder_outs.append(encoder_out)
    if encoder_outs[0] is not encoder_outs[1]:
        raise GraphStructureError("the amplitude and phase decoders read different encoders")
    roles.update(_encoder_roles(walk, encoder_outs[0]))

    convs = [layer for layer in layers.values() if layer.class_name == _CONV]
    group = {layer.name: "layers/conv2d" + (f"_{k}" if k else "") for k, layer in enumerate(convs)}
    unassigned = sorted(set(group) - {layer.name for layer in roles.values()})
    if unassigned:
        raise GraphStructureError(f"convs outside the original's network: {unassigned}")
    position = {layer.name: k for k, layer in enumerate(convs)}
    sources = [
        ConvSource(role, f"{group[c.name]}/vars/0", f"{group[c.name]}/vars/1",
                   c.config.get("activation"))
        for role, c in sorted(roles.items(), key=lambda rc: position[rc[1].name])
    ]  # fmt: skip
    facts = {
        "input_shape": _diffraction_input_shape(layers, walk, roles),
        "amp_activation": _activation(walk, roles, "amp"),
        "phase_activation": _activation(walk, roles, "phase"),
        "use_polar": combine[0].config.get("use_polar"),
        "convs": {role: _conv_facts(c) for role, c in roles.items()},
    }
    return sources, facts


def _diffraction_input_shape(
    layers: dict[str, KerasLayer], walk: _Walk, roles: dict[str, KerasLayer]
) -> list[Any] | None:
    _, between = walk.previous_conv(roles["encoder.block0.conv1"])
    return between[-1].config.get("batch_shape") if between else None


def _activation(
    walk: _Walk, roles: dict[str, KerasLayer], branch: str
) -> tuple[str | None, float | None]:
    """``(activation_name, scale)`` of the decoder's ActivationLayer (after the centre conv,
    or after conv2 without pad_object); ``(None, None)`` if there is none."""
    for layer in walk.layers.values():
        if layer.class_name == "ActivationLayer" and layer.inputs:
            feeds = layer.inputs[0]
            for role in (f"{branch}.last.conv1", f"{branch}.last.conv2"):
                if role in roles and roles[role].name == feeds:
                    return layer.config.get("activation_name"), layer.config.get("scale")
    return None, None


def _conv_facts(conv: KerasLayer) -> dict[str, Any]:
    c = conv.config
    in_channels = conv.input_shape[-1] if conv.input_shape else None
    return {
        "layer": conv.name,
        "filters": c.get("filters"),
        "in_channels": in_channels,
        "kernel_size": c.get("kernel_size"),
        "strides": c.get("strides"),
        "padding": c.get("padding"),
        "dilation_rate": c.get("dilation_rate"),
        "groups": c.get("groups", 1),
        "use_bias": c.get("use_bias"),
        "data_format": c.get("data_format"),
        "activation": c.get("activation"),
    }
