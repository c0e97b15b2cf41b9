"""``python -m ptycho_torch.import_tf``."""

from ptycho_torch.cli import launch

launch("ptycho_torch.import_tf.cli:main")
