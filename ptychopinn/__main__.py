"""``python -m ptychopinn``: the same commands as the ``ptychopinn`` console script."""

from ptycho_torch.cli import launch

launch("ptychopinn.main:main", prog="python -m ptychopinn")
