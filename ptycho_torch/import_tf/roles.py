"""Roles of the original's convolutions and where each lands in :class:`PtychoPINN`.

A role names a conv by what it does in the original's graph (the names of the fixtures'
``weights_index.json``):

- ``encoder.blockI.convJ``: ``create_encoder``, Conv_Pool_block I, conv J (ReLU).
- ``amp|phase.upI.convJ``: the decoder's Conv_Up_block I, conv J (ReLU).
- ``amp|phase.last.conv1``: ``create_decoder_last``'s centre conv on channels ``[:-4]``.
- ``amp|phase.last.up.convJ``: the up block of the border path (last 4 channels), or of the
  whole head without ``pad_object``.
- ``amp|phase.last.conv2``: the conv after that up block.

This module is pure bookkeeping: which roles a configuration has, in which order Keras 3 saves
them, and which PyTorch module each one fills.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ptycho_torch.blocks import decoder_filters, encoder_filters
from ptycho_torch.config import ModelConfig
from ptycho_torch.import_tf.errors import ImportTFError

__all__ = [
    "ConvSource",
    "expected_activation",
    "known_order_sources",
    "read_weights_index",
    "torch_module",
]

BRANCHES = ("amp", "phase")
_DECODER_MODULE = {"amp": "amplitude_decoder", "phase": "phase_decoder"}
_ENCODER = re.compile(r"encoder\.block(\d+)\.conv([12])")
_UP = re.compile(r"(amp|phase)\.up(\d+)\.conv([12])")
_LAST = re.compile(r"(amp|phase)\.last\.conv([12])")
_LAST_UP = re.compile(r"(amp|phase)\.last\.up\.conv([12])")


@dataclass(frozen=True)
class ConvSource:
    """Where one role's kernel (HWIO) and bias are stored in an HDF5 weights file."""

    role: str
    kernel_path: str
    bias_path: str
    activation: str | None = None  # as the source describes it ('relu', 'linear'), if it does


def _head_roles(config: ModelConfig) -> list[str]:
    """Head convs in the order Keras 3 lists them (deepest first, see known_order_sources)."""
    if not config.pad_object:
        return ["last.up.conv1", "last.up.conv2", "last.conv2"]
    if not config.probe_big:
        return ["last.conv1"]
    return ["last.up.conv1", "last.up.conv2", "last.conv2", "last.conv1"]


def torch_module(role: str, config: ModelConfig) -> str | None:
    """The ``nn.Conv2d`` of :class:`PtychoPINN` that holds ``role``, or None if none does."""
    if m := _ENCODER.fullmatch(role):
        return f"encoder.{m[1]}.convs.conv{m[2]}"
    if m := _UP.fullmatch(role):
        return f"{_DECODER_MODULE[m[1]]}.blocks.{m[2]}.convs.conv{m[3]}"
    if m := _LAST_UP.fullmatch(role):
        head = f"{_DECODER_MODULE[m[1]]}.head"
        return (
            f"{head}.outer.up.convs.conv{m[2]}"
            if config.pad_object
            else f"{head}.outer.0.convs.conv{m[2]}"
        )
    if m := _LAST.fullmatch(role):
        head = f"{_DECODER_MODULE[m[1]]}.head"
        if m[2] == "1":
            return f"{head}.centre_conv" if config.pad_object else None
        return f"{head}.outer.conv" if config.pad_object else f"{head}.outer.1"
    return None


def expected_activation(role: str) -> str:
    """Keras activation of the conv itself: ReLU in the blocks, linear in the head convs
    (their activation is a separate layer)."""
    return "linear" if _LAST.fullmatch(role) else "relu"


def known_order_sources(config: ModelConfig) -> list[ConvSource]:
    """Roles of a Keras 3 ``model.weights.h5`` of the original without an index.

    Keras 3 names each conv's group ``layers/conv2d[_k]`` by its position k among the Conv2D
    layers of ``model.layers``, which the functional graph orders by depth from the outputs
    (deepest first), ties in traversal order. For the original that gives: the encoder convs in
    order; the decoder convs depth by depth, amplitude before phase; then the head convs of both
    decoders (border path before the shallower centre conv). Checked against the fixtures'
    ``weights_index.json`` (pad_object and probe.big); the other heads follow the same rule.
    Shapes cannot tell amplitude from phase: this order is the only evidence for that split.
    """
    n_enc, n_dec = len(encoder_filters(config)), len(decoder_filters(config))
    roles = [f"encoder.block{i}.conv{j}" for i in range(n_enc) for j in (1, 2)]
    roles += [f"{b}.up{i}.conv{j}" for i in range(n_dec) for j in (1, 2) for b in BRANCHES]
    roles += [f"{b}.{r}" for r in _head_roles(config) for b in BRANCHES]
    return [
        ConvSource(role, f"{_keras_conv_group(k)}/vars/0", f"{_keras_conv_group(k)}/vars/1")
        for k, role in enumerate(roles)
    ]


def _keras_conv_group(k: int) -> str:
    return "layers/conv2d" if k == 0 else f"layers/conv2d_{k}"


def read_weights_index(path: Path) -> list[ConvSource]:
    """Parse a fixture-style ``weights_index.json`` (``roles_in_creation_order``)."""
    try:
        doc = json.loads(path.read_text())
        entries = doc["roles_in_creation_order"]
        return [
            ConvSource(str(e["role"]), str(e["h5_kernel"]), str(e["h5_bias"]), e.get("activation"))
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImportTFError(
            f"{path} is not a weights index (expected 'roles_in_creation_order' entries with "
            f"'role', 'h5_kernel', 'h5_bias'): {exc}; remove it to use the known layer order"
        ) from None
