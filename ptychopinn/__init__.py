"""The command tree: every command of the toolkit, on top of the layers.

``ptychopinn <command>`` (also ``python -m ptychopinn`` and ``python -m export``); the commands
are listed once, in :data:`ptychopinn.main.COMMANDS`, and grouped by area:
:mod:`~ptychopinn.build` (build, triton), :mod:`~ptychopinn.host` (predict, verify, pack;
torch-free), :mod:`~ptychopinn.parity` (check, reference, trace, bisect),
:mod:`~ptychopinn.from_tensorflow` (import-tf, import-keras, import-reference),
:mod:`~ptychopinn.train` (simulate, train, infer) and :mod:`~ptychopinn.bench` (bench). What
they share: :mod:`~ptychopinn.command` (parser, logging, ``--threads``, the exit-code edge) and
:mod:`~ptychopinn.options` (options derived from the option dataclasses). Only this package
parses arguments; the packages below return values or raise typed errors.
"""

__all__: list[str] = []
