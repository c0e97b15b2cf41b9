"""The boundaries bisect stops both sides of a pair at: every conv layer of a ``PtychoPINN``
(after the activation the original fuses into it), the head outputs and, on the physics head,
every step of the physics forward; each with its block and its dataflow upstream. Names are the
PyTorch module paths, which find the same place in every backend (:class:`parity.runners.Intermediate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from export.signature import AMPLITUDE, PHASE, PRED_AMPLITUDE, Signature
from parity.errors import BisectError
from parity.runners import PHYSICS_STEPS, STEP_PREFIX, Intermediate

__all__ = ["Boundary", "boundaries"]

_DECODER_OUTPUT = {"amplitude_decoder": AMPLITUDE, "phase_decoder": PHASE}


@dataclass(frozen=True)
class Boundary(Intermediate):
    """One place both sides are stopped at and compared (``post`` ``output`` for a head output)."""

    block: str  # the block it belongs to, as a person names it
    upstream: tuple[str, ...]  # boundaries whose values feed this one directly


def boundaries(model: Any, signature: Signature, physics_steps: bool = False) -> list[Boundary]:
    """The boundaries of a ``PtychoPINN`` in execution order, with their dataflow upstream;
    with ``physics_steps`` (physics head, both sides able) also every step of the physics
    forward (``physics.obj`` ... ``physics.pred_amplitude_unscaled``)."""
    out, ends = _conv_boundaries(model)
    for decoder, output in _DECODER_OUTPUT.items():
        if output in signature.output_names:
            out.append(
                Boundary(
                    name=output, post="output", block=f"{decoder} output", upstream=ends[decoder]
                )
            )
    if PRED_AMPLITUDE in signature.output_names:
        last: tuple[str, ...] = (AMPLITUDE, PHASE)
        if physics_steps:
            for step, (_, feeds) in PHYSICS_STEPS.items():
                up = tuple(u if u in (AMPLITUDE, PHASE) else STEP_PREFIX + u for u in feeds)
                step_name = STEP_PREFIX + step
                out.append(
                    Boundary(name=step_name, post="step", block="physics forward", upstream=up)
                )
            last = (STEP_PREFIX + "pred_amplitude_unscaled",)
        out.append(
            Boundary(name=PRED_AMPLITUDE, post="output", block="physics head", upstream=last)
        )
    return out


def _conv_boundaries(model: Any) -> tuple[list[Boundary], dict[str, tuple[str, ...]]]:
    """Every conv layer's boundary in module order, and per decoder the convs its output reads
    (the head's centre and outer paths)."""
    from torch import nn

    from ptycho_torch.blocks import ConvPair, DecoderHead, OuterPath

    modules = dict(model.named_modules())
    out: list[Boundary] = []
    encoder_last: str | None = None
    block_last: dict[str, str] = {}
    outer_last: dict[str, str] = {}
    centre: dict[str, str] = {}
    for path, module in modules.items():
        if not isinstance(module, nn.Conv2d):
            continue
        parent_path = path.rpartition(".")[0]
        parent = modules[parent_path]
        if isinstance(parent, ConvPair):
            post = "relu"
        elif isinstance(parent, OuterPath):
            post = "silu"
        elif isinstance(parent, (DecoderHead, nn.Sequential)):
            post = "none"  # centre_conv, or the head's last conv without pad_object
        else:
            raise BisectError(f"bisect does not know the conv layer {path} (parent {parent_path})")
        if path.startswith("encoder."):
            upstream, block = encoder_last, ".".join(path.split(".")[:2])
            encoder_last = path
        else:
            decoder, rest = path.split(".", 1)
            trunk = block_last.get(decoder, encoder_last)
            if rest.startswith("blocks."):
                upstream, block = trunk, ".".join(path.split(".")[:3])
                block_last[decoder] = path
            elif rest.startswith("head.centre_conv"):
                upstream, block = trunk, f"{decoder}.head (centre path)"
                centre[decoder] = path
            elif rest.startswith("head.outer"):
                upstream, block = outer_last.get(decoder, trunk), f"{decoder}.head (outer path)"
                outer_last[decoder] = path
            else:
                raise BisectError(f"bisect does not know the conv layer {path}")
        first = () if upstream is None else (upstream,)
        out.append(Boundary(name=path, post=post, block=block, upstream=first))
    ends = {d: tuple(p for p in (centre.get(d), outer_last.get(d)) if p) for d in _DECODER_OUTPUT}
    return out, ends
