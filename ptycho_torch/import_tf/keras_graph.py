"""Assign conv roles by walking the functional graph in ``model.keras``'s ``config.json``.

The graph is read as JSON (:mod:`ptycho_torch.import_tf.keras_config`); no Keras object is
built. The walk starts at the original's ``CombineComplexLayer`` (input 0 is the
amplitude decoder's output, input 1 the phase decoder's) and goes backwards through each
decoder head, its up blocks and the shared encoder, checking the layers between convolutions
(``UpSampling2D``, ``MaxPooling2D``, the ``[..., :-4]`` / ``[..., -4:]`` channel slices, the
activation, zero padding and border mask) so that a role is assigned only where the graph has
exactly the structure of the original's ``create_encoder`` / ``create_decoder_*``.
"""

from __future__ import annotations

from typing import Any

from ptycho_torch.import_tf.errors import GraphStructureError
from ptycho_torch.import_tf.graph_walk import CONV, GraphWalk
from ptycho_torch.import_tf.keras_config import KerasLayer
from ptycho_torch.import_tf.roles import BRANCHES, ConvSource

__all__ = ["conv_sources_from_graph"]

_ENTRY = ("InputLayer", "IntensityScaler")  # what the first encoder conv may read from


def _decoder_roles(
    walk: GraphWalk, tail: KerasLayer, branch: str
) -> tuple[dict[str, KerasLayer], KerasLayer]:
    """Roles of one decoder, from its output back to (excluding) the encoder's last conv."""
    roles, base = _head_roles(walk, tail, branch)
    ups = _up_convs(walk, _need(base, branch), branch)
    for k, layer in enumerate(ups):
        roles[f"{branch}.up{k // 2}.conv{k % 2 + 1}"] = layer
    encoder_out, _ = walk.previous_conv(ups[0])
    return roles, _need(encoder_out, branch)


def _head_ends(
    walk: GraphWalk, tail: KerasLayer, branch: str
) -> tuple[KerasLayer | None, KerasLayer | None, KerasLayer | None]:
    """The decoder output's centre path (``ZeroPadding2D``), masked border path (``Multiply``)
    and, without pad_object, its activation (``ActivationLayer``); None where there is none."""
    if tail.class_name == "Add":  # pad_object and probe.big: centre + border * mask
        sides = [walk.layer(name) for name in tail.inputs]
        centre = next((s for s in sides if s.class_name == "ZeroPadding2D"), None)
        border = next((s for s in sides if s.class_name == "Multiply"), None)
        if centre is None or border is None or len(tail.inputs) != 2:
            raise GraphStructureError(f"{branch}: {tail.name} is not centre + masked border")
        return centre, border, None
    if tail.class_name == "ZeroPadding2D":  # pad_object without probe.big
        return tail, None, None
    if tail.class_name == "ActivationLayer":  # no pad_object: up block, conv2, activation
        return None, None, tail
    raise GraphStructureError(f"{branch}: unexpected decoder output {tail.class_name}")


def _head_roles(
    walk: GraphWalk, tail: KerasLayer, branch: str
) -> tuple[dict[str, KerasLayer], KerasLayer | None]:
    """The head's convs (``last.conv1`` on the centre path, ``last.conv2`` and its up block on
    the border path) and the conv both paths read."""
    centre, border, activation = _head_ends(walk, tail, branch)
    conv1, conv2 = f"{branch}.last.conv1", f"{branch}.last.conv2"
    roles: dict[str, KerasLayer] = {}
    if activation is not None:
        roles[conv2] = walk.conv_below(activation, conv2)
    if centre is not None:
        act = walk.single_input(centre)
        if act.class_name != "ActivationLayer":
            raise GraphStructureError(f"{branch}: no activation before {centre.name}")
        roles[conv1] = walk.conv_below(act, conv1)
    if border is not None:
        roles[conv2] = walk.conv_below(_border_activation(walk, border, branch), conv2)
    base: KerasLayer | None = None
    if conv1 in roles:
        base = walk.expect_path(roles[conv1], ("GetItem", "UpSampling2D"), conv1, split="centre")
    if conv2 in roles:
        border_base = _border_up_block(walk, roles, branch, padded=centre is not None)
        if base is not None and border_base is not base:
            raise GraphStructureError(f"{branch}: centre and border paths start at different convs")
        base = border_base
    return roles, base


def _border_up_block(
    walk: GraphWalk, roles: dict[str, KerasLayer], branch: str, padded: bool
) -> KerasLayer | None:
    """The up block below ``last.conv2``: its two convs go into ``roles``; returns the conv it
    reads (with pad_object through the last 4 channels, else all of them)."""
    up2 = walk.expect_path(roles[f"{branch}.last.conv2"], ("UpSampling2D",), f"{branch}.last.conv2")
    up1 = walk.expect_path(_need(up2, branch), (), f"{branch}.last.up.conv2")
    pre = ("GetItem", "UpSampling2D") if padded else ("UpSampling2D",)
    border_base = walk.expect_path(
        _need(up1, branch), pre, f"{branch}.last.up.conv1", split="border"
    )
    roles[f"{branch}.last.up.conv2"] = _need(up2, branch)
    roles[f"{branch}.last.up.conv1"] = _need(up1, branch)
    return border_base


def _up_convs(walk: GraphWalk, conv: KerasLayer, branch: str) -> list[KerasLayer]:
    """The decoder's up-block convs in network order, walked back from ``conv`` to the encoder."""
    ups: list[KerasLayer] = []  # last first
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
    return ups


def _need(layer: KerasLayer | None, branch: str) -> KerasLayer:
    if layer is None:
        raise GraphStructureError(f"{branch} decoder reaches the model input without the encoder")
    return layer


def _border_activation(walk: GraphWalk, multiply: KerasLayer, branch: str) -> KerasLayer:
    """``swish(conv2(...)) * border_mask``: Multiply(act, CenterMaskLayer(act, kind='border'))."""
    inputs = [walk.layer(n) for n in multiply.inputs]
    masks = [layer for layer in inputs if layer.class_name == "CenterMaskLayer"]
    acts = [layer for layer in inputs if layer.class_name != "CenterMaskLayer"]
    if len(masks) != 1 or len(acts) != 1 or masks[0].config.get("kind") != "border":
        raise GraphStructureError(f"{branch}: {multiply.name} is not swish(conv2) * border mask")
    if acts[0].class_name not in ("Silu", "Activation", "ActivationLayer"):
        raise GraphStructureError(f"{branch}: border path activation is {acts[0].class_name}")
    return acts[0]


def _encoder_roles(walk: GraphWalk, last: KerasLayer) -> dict[str, KerasLayer]:
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
    walk = GraphWalk(layers)
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

    convs = [layer for layer in layers.values() if layer.class_name == CONV]
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
    layers: dict[str, KerasLayer], walk: GraphWalk, roles: dict[str, KerasLayer]
) -> list[Any] | None:
    _, between = walk.previous_conv(roles["encoder.block0.conv1"])
    return between[-1].config.get("batch_shape") if between else None


def _activation(
    walk: GraphWalk, roles: dict[str, KerasLayer], branch: str
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
