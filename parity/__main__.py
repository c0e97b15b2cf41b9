"""``python -m parity``."""

from ptycho_torch.cli import launch

launch("parity.cli:main")
