"""The command lines of ``ptycho_torch``: argument parsing and exit codes, nothing else.

Each module has ``main(argv) -> int`` for ``python -m ptycho_torch.<name>`` (the library module
of the same name forwards to it): :mod:`~ptycho_torch.commands.simulate`,
:mod:`~ptycho_torch.commands.train` and :mod:`~ptycho_torch.commands.infer`. Options come from
the frozen option dataclasses through :class:`ptycho_torch.cli_options.ConfigOptions`.
"""

__all__: list[str] = []
