"""What ``python -m export bench-train`` measures (torch-free: the command parses it before torch
loads, so that :func:`ptycho_torch.thread_option.short_spin_wait` still takes effect)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ptycho_torch.config import PLAIN_SPEED, ModelConfig

__all__ = ["VARIANTS", "TrainBenchOptions"]

# variant name -> TrainConfig fields changed from the defaults
VARIANTS: dict[str, Mapping[str, Any]] = {
    "default": {},
    "plain": PLAIN_SPEED,
    "bf16-mixed": {"precision": "bf16-mixed"},
    "compile": {"compile": True},
    "no-narrow-convs": {"narrow_convs": False},
    "no-fused-conv-relu": {"fused_conv_relu": False},
    "no-fused-adam": {"fused_adam": False},
    "nchw": {"channels_last": False, "narrow_convs": False},
}


@dataclass(frozen=True)
class TrainBenchOptions:
    """What ``python -m export bench-train`` measures (each default lives here)."""

    N: int = field(default=64, metadata={"help": "pattern size"})
    n_filters_scale: int = field(default=2, metadata={"help": "filter multiplier"})
    gridsize: int = field(default=1, metadata={"help": "patches per sample along each axis"})
    batch: int = field(default=16, metadata={"help": "patterns per step (the batch size)"})
    variants: str = field(
        default="default,plain",
        metadata={"help": f"our steps to time, comma-separated, of {', '.join(VARIANTS)}"},
    )
    keras: bool = field(
        default=True, metadata={"help": "also time the Keras step (needs TensorFlow)"}
    )
    seconds: float = field(default=60.0, metadata={"help": "timed seconds (all steps together)"})
    rounds: int = field(default=5, metadata={"help": "at least this many timed rounds"})
    profile_steps: int = field(
        default=5, metadata={"help": "steps of the first variant profiled for the breakdown"}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam's rate"})
    threads: str = field(default="auto", metadata={"help": "torch's and TensorFlow's threads"})

    def __post_init__(self) -> None:
        names = self.variant_names
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown or not names:
            raise ValueError(
                f"TrainBenchOptions.variants must name some of {list(VARIANTS)}, got {self.variants!r}"
            )
        if self.batch < 1 or self.seconds < 0 or self.rounds < 1 or self.profile_steps < 0:
            raise ValueError(
                "TrainBenchOptions: batch and rounds must be >= 1, seconds and profile_steps >= 0"
            )
        ModelConfig(N=self.N, gridsize=self.gridsize, n_filters_scale=self.n_filters_scale)

    @property
    def variant_names(self) -> list[str]:
        return [v.strip() for v in self.variants.split(",") if v.strip()]
