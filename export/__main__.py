"""``python -m export``: the documented main command.

The command composes export with the parity check, so its code lives one layer up in
:mod:`pipeline.cli`; this shim is the one import from ``export`` to a higher layer (named in
``.importlinter``).
"""

from ptycho_torch.cli import launch

launch("pipeline.cli:main")
