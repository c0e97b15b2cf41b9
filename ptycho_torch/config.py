"""Frozen, validated configuration for the PtychoPINN model, data and training."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "AMP_ACTIVATIONS",
    "PLAIN_SPEED",
    "PRECISIONS",
    "SUPPORTED_N",
    "DataConfig",
    "ModelConfig",
    "TrainConfig",
]

SUPPORTED_N = (64, 128, 256)
MAX_FILTERS_SCALE = 32  # a checkpoint declaring more would allocate terabytes
AMP_ACTIVATIONS = ("sigmoid", "swish", "softplus", "relu")
PRECISIONS = ("32-true", "bf16-mixed")  # TrainConfig.precision


def _speed(help_text: str) -> dict[str, Any]:
    """Metadata of a speed setting of TrainConfig (on/off; :data:`PLAIN_SPEED` turns all off)."""
    return {"help": help_text, "speed": True}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True)
class ModelConfig:
    """Shape and head options of the network (ARCHITECTURE.md, "The network")."""

    N: int = field(
        default=64, metadata={"help": "diffraction pattern / object patch size in pixels"}
    )
    gridsize: int = field(
        default=1, metadata={"help": "patches per sample along each axis; gridsize**2 channels"}
    )
    n_filters_scale: int = field(
        default=2, metadata={"help": "multiplies every filter count of the network"}
    )
    amp_activation: str = field(
        default="sigmoid",
        metadata={"help": "activation of the amplitude centre path", "choices": AMP_ACTIVATIONS},
    )
    object_big: bool = field(
        default=True, metadata={"help": "the decoder predicts C patches (else one shared patch)"}
    )
    probe_big: bool = field(
        default=True, metadata={"help": "the outer (border) path of the decoder head is present"}
    )
    pad_object: bool = field(
        default=True,
        metadata={"help": "the 'pad object / big probe' head (centre conv + zero pad)"},
    )
    intensity_scale: float = field(
        default=1.0, metadata={"help": "initial value of exp(log_scale)"}
    )
    intensity_scale_trainable: bool = field(
        default=False, metadata={"help": "log_scale receives gradients"}
    )
    # The original normalises the probe to probeGuess / (probe_scale * mean|disk * probeGuess|)
    probe_scale: float = field(default=4.0, metadata={"help": "the original's probe normalisation"})
    offset: int = field(
        default=4,
        metadata={"help": "the original's nominal scan step; sizes the reassembly canvas"},
    )
    max_position_jitter: int = field(
        default=10, metadata={"help": "extra canvas margin of the original (pixels)"}
    )
    probe_mask: bool = field(
        default=False,
        metadata={"help": "multiply the exit wave by the disk mask (radius N/4) in the forward"},
    )
    gaussian_smoothing_sigma: float = field(
        default=0.0, metadata={"help": "> 0: smooth the exit wave (3x3 Gaussian), as the original"}
    )

    def __post_init__(self) -> None:
        _require(
            self.N in SUPPORTED_N,
            f"ModelConfig.N must be one of {SUPPORTED_N}, got {self.N!r}",
        )
        _require(
            isinstance(self.gridsize, int) and self.gridsize >= 1,
            f"ModelConfig.gridsize must be an int >= 1, got {self.gridsize!r}",
        )
        _require(
            isinstance(self.n_filters_scale, int)
            and 1 <= self.n_filters_scale <= MAX_FILTERS_SCALE,
            f"ModelConfig.n_filters_scale must be an int in 1..{MAX_FILTERS_SCALE} "
            f"(s=32 is already ~6e8 parameters at N=64), got {self.n_filters_scale!r}",
        )
        _require(
            self.amp_activation in AMP_ACTIVATIONS,
            f"ModelConfig.amp_activation must be one of {AMP_ACTIVATIONS}, "
            f"got {self.amp_activation!r}",
        )
        _require(
            math.isfinite(self.intensity_scale) and self.intensity_scale > 0,
            f"ModelConfig.intensity_scale must be finite and > 0, got {self.intensity_scale!r}",
        )
        _require(
            math.isfinite(self.probe_scale) and self.probe_scale > 0,
            f"ModelConfig.probe_scale must be finite and > 0, got {self.probe_scale!r}",
        )
        _require(
            isinstance(self.offset, int) and self.offset >= 0,
            f"ModelConfig.offset must be an int >= 0, got {self.offset!r}",
        )
        _require(
            isinstance(self.max_position_jitter, int) and self.max_position_jitter >= 0,
            f"ModelConfig.max_position_jitter must be an int >= 0, got {self.max_position_jitter!r}",
        )
        margin = (self.gridsize - 1) * self.offset + self.max_position_jitter
        _require(
            margin > 0 and margin % 2 == 0,
            "ModelConfig: the reassembly canvas margin (gridsize-1)*offset + max_position_jitter "
            f"must be even and > 0 (the original cannot run otherwise), got {margin}; "
            "adjust offset or max_position_jitter",
        )
        _require(
            self.gaussian_smoothing_sigma >= 0,
            "ModelConfig.gaussian_smoothing_sigma must be >= 0, "
            f"got {self.gaussian_smoothing_sigma!r}",
        )

    @property
    def C(self) -> int:
        """Channels per sample: gridsize**2 patches."""
        return self.gridsize * self.gridsize

    @property
    def padded_size(self) -> int:
        """Side of the original's reassembly canvas: ``N + (gridsize-1)*offset + jitter``."""
        return self.N + (self.gridsize - 1) * self.offset + self.max_position_jitter

    @property
    def out_channels(self) -> int:
        """Channels the decoder heads produce."""
        return self.C if self.object_big else 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        _require(not unknown, f"unknown ModelConfig fields {unknown}; known: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class DataConfig:
    """How NPZ scans become training samples."""

    batch_size: int = field(default=16, metadata={"help": "samples per optimisation step"})
    neighbours: int = field(
        default=6, metadata={"help": "nearest scan points a group is drawn from (gridsize > 1)"}
    )
    # the original: model.fit(validation_split=0.05), its last 5% (ours: a seeded random 5%)
    val_fraction: float = field(
        default=0.05, metadata={"help": "held-out fraction of samples (validation loss)"}
    )
    seed: int = field(default=0, metadata={"help": "grouping and split seed"})

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"DataConfig.batch_size must be >= 1, got {self.batch_size}")
        _require(self.neighbours >= 1, f"DataConfig.neighbours must be >= 1, got {self.neighbours}")
        _require(
            0.0 <= self.val_fraction < 1.0,
            f"DataConfig.val_fraction must be in [0, 1), got {self.val_fraction}",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings."""

    epochs: int = field(default=10, metadata={"help": "passes over the training samples"})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    mae_weight: float = field(
        default=0.0, metadata={"help": "weight of the amplitude MAE added to the Poisson NLL"}
    )
    nll_weight: float = field(default=1.0, metadata={"help": "weight of the Poisson NLL term"})
    seed: int = field(default=0, metadata={"help": "torch seed for initialisation and shuffling"})
    # The schedule of the original's ptycho/model.py train(): Keras ReduceLROnPlateau(
    # monitor="val_loss", factor=0.5, patience=2, min_lr=1e-4) and EarlyStopping(monitor="loss",
    # patience=3), Keras' min_delta defaults (1e-4 absolute; 0).
    lr_factor: float = field(
        default=0.5,
        metadata={"help": "multiply the learning rate by this after a val_loss plateau; 1: off"},
    )
    lr_patience: int = field(
        default=2, metadata={"help": "epochs without val_loss improvement before the lr drops"}
    )
    lr_min_delta: float = field(
        default=1e-4, metadata={"help": "a val_loss decrease smaller than this is no improvement"}
    )
    min_lr: float = field(default=1e-4, metadata={"help": "the learning rate never drops below"})
    early_stop_patience: int = field(
        default=3,
        metadata={"help": "stop after this many epochs without improvement; 0: never stop early"},
    )
    early_stop_monitor: str = field(
        default="train_loss",
        metadata={
            "help": "the loss early stopping watches (the original: the training loss)",
            "choices": ("train_loss", "val_loss"),
        },
    )
    # Speed settings (ptycho_torch.fast_step; docs/training.md, "Speed settings"): each but
    # precision changes float32 rounding only, never what a step computes.
    channels_last: bool = field(default=True, metadata=_speed("weights, activations channels-last"))
    narrow_convs: bool = field(default=True, metadata=_speed("1-channel convs as matrix products"))
    fused_conv_relu: bool = field(default=True, metadata=_speed("conv + ReLU as one oneDNN op"))
    fused_adam: bool = field(default=True, metadata=_speed("Adam's fused kernel"))
    in_memory_data: bool = field(default=True, metadata=_speed("inputs made once; batch = gather"))
    compile: bool = field(
        default=False, metadata=_speed("torch.compile the loss (eager on failure)")
    )
    precision: str = field(
        default="32-true",
        metadata={
            "help": "bf16-mixed: the network in bfloat16 (autocast), the physics, loss and "
            "weights in float32; changes the results",
            "choices": PRECISIONS,
        },
    )

    def __post_init__(self) -> None:
        _require(self.epochs >= 1, f"TrainConfig.epochs must be >= 1, got {self.epochs}")
        _require(
            self.precision in PRECISIONS,
            f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}",
        )
        _require(
            0 < self.lr_factor <= 1,
            f"TrainConfig.lr_factor must be in (0, 1], got {self.lr_factor}",
        )
        _require(
            self.lr_patience >= 0 and self.early_stop_patience >= 0,
            "TrainConfig patiences must be >= 0, got "
            f"lr_patience={self.lr_patience}, early_stop_patience={self.early_stop_patience}",
        )
        _require(
            self.lr_min_delta >= 0 and self.min_lr >= 0,
            "TrainConfig.lr_min_delta and min_lr must be >= 0, "
            f"got lr_min_delta={self.lr_min_delta}, min_lr={self.min_lr}",
        )
        _require(
            self.early_stop_monitor in ("train_loss", "val_loss"),
            "TrainConfig.early_stop_monitor must be 'train_loss' or 'val_loss', "
            f"got {self.early_stop_monitor!r}",
        )
        _require(
            self.learning_rate > 0,
            f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}",
        )
        _require(
            self.mae_weight >= 0 and self.nll_weight >= 0,
            "TrainConfig loss weights must be >= 0, "
            f"got mae_weight={self.mae_weight}, nll_weight={self.nll_weight}",
        )
        _require(
            self.mae_weight + self.nll_weight > 0,
            "TrainConfig: at least one of mae_weight, nll_weight must be > 0",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# TrainConfig's speed settings all off: the step as first written, the reference that the tests
# and `bench-train` compare the defaults with (precision stays as given)
PLAIN_SPEED: Mapping[str, Any] = MappingProxyType(
    {f.name: False for f in dataclasses.fields(TrainConfig) if f.metadata.get("speed")}
)
