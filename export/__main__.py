"""``python -m export <command>``: the documented spelling of every command (``ptychopinn``).

The commands live one layer up, in the command tree :mod:`ptychopinn`; this forwarder hands over
at run time (:func:`ptycho_torch.cli.launch`), so ``export`` imports nothing above it.
"""

from ptycho_torch.cli import launch

launch("ptychopinn.main:main", prog="python -m export")
