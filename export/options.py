"""What ``python -m export build`` is asked to do: the build's options, torch-free.

Each option's default and help live on its field; ``ptychopinn.build`` derives the command line
from them (:class:`ptycho_torch.cli_options.ConfigOptions`). Importing this module does not
import torch, so ``python -m export predict|verify`` stay torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from export.errors import ExportError
from export.publish import DEFAULT_KEEP
from export.signature import HEADS, Head

__all__ = ["DEFAULT_OPSET", "DEMO_DIR", "MEMORY_FORMATS", "BuildOptions"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEFAULT_OPSET = 18  # tested default: DFT-17/18 for the physics head, supported by ORT >= 1.16
MEMORY_FORMATS = ("channels-last", "contiguous")  # of model.ts's and model.pt2's conv weights


@dataclass(frozen=True)
class BuildOptions:
    """What ``python -m export build`` was asked to do."""

    checkpoint: Path = field(
        default=DEMO_DIR / "model.pt",
        metadata={"help": "Lightning .ckpt or model file; the bundled demo model by default"},
    )
    inputs: Path = field(
        default=DEMO_DIR / "inputs.npz",
        metadata={"help": "feed NPZ or scan NPZ; the bundled demo batch by default"},
    )
    out: Path = field(
        default=Path("artifacts"),
        metadata={"help": "artifacts: a link switched atomically to the new build"},
    )
    batch: int | None = field(
        default=None,
        metadata={
            "help": "fixed batch size of the artifacts (default: the inputs' batch, "
            "or 4 for a scan NPZ)"
        },
    )
    head: Head = field(
        default="object",
        metadata={
            "help": "object: diffraction -> amplitude, phase; "
            "physics: also positions -> pred_amplitude",
            "choices": HEADS,
        },
    )
    opset: int = field(default=DEFAULT_OPSET, metadata={"help": "ONNX opset (17..23)"})
    memory_format: str = field(
        default="channels-last",
        metadata={
            "help": "layout of the convolution weights in model.ts and model.pt2: channels-last "
            "(activations follow; 1.8x faster on the CPU here) or contiguous; the signature "
            "and model.onnx do not change",
            "choices": MEMORY_FORMATS,
        },
    )
    force: bool = field(
        default=False,
        metadata={"help": "publish even if --out holds files that are not build artifacts"},
    )
    reference: str = field(
        default="auto",
        metadata={
            "help": "auto (bundled for the demo, else generated with TensorFlow when "
            "installed), none, or a reference.npz"
        },
    )
    keep: int = field(
        default=DEFAULT_KEEP,
        metadata={"help": "previous builds kept in .OUT.versions/ beside --out"},
    )

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ExportError(f"--head must be one of {list(HEADS)}, got {self.head!r}")
        if self.memory_format not in MEMORY_FORMATS:
            raise ExportError(
                f"--memory-format must be one of {list(MEMORY_FORMATS)}, got {self.memory_format!r}"
            )
        if self.keep < 0:
            raise ExportError(f"--keep must be >= 0, got {self.keep}")
        if self.batch is not None and self.batch < 1:
            raise ExportError(f"--batch must be >= 1, got {self.batch}")
        if not 17 <= self.opset <= 23:
            raise ExportError(f"--opset must be between 17 and 23 (DFT needs 17), got {self.opset}")
