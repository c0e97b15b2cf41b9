"""Command-line options derived from frozen option dataclasses, so each default lives in one place.

A field declares its default and its help once::

    epochs: int = field(default=10, metadata={"help": "passes over the training samples"})

:class:`ConfigOptions` turns chosen fields into ``argparse`` options (``n_filters_scale`` ->
``--n-filters-scale``, type from the annotation, help from ``metadata["help"]`` with the default
appended) whose argparse default is *absent*, and builds the dataclass from the parsed arguments
with only the options the user gave. Precedence: dataclass default < preset < given option <
values the command fixes (e.g. ``N`` from the data). A given value, 0 and negatives included,
always reaches ``__post_init__``; its ``ValueError`` becomes a :class:`~ptycho_torch.cli.UsageError`
(exit code 2) that names the option and the value.

Supported annotations: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``), ``Path`` (any
class built from one string), ``X | None``, ``Literal[...]`` (choices) and ``tuple[X, X]`` (a
fixed number of values, ``--from KIND DIR``); ``metadata["choices"]`` adds choices to any type
and ``metadata["metavar"]`` names the values. A field without a default is a required option.
Torch-free: standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ptycho_torch.cli import UsageError

__all__ = ["ConfigOptions", "flag_for"]

T = TypeVar("T")

# argparse.ArgumentParser or the group returned by add_argument_group (private class)
ArgumentContainer = Any


def flag_for(name: str) -> str:
    """The option string of a field: ``n_filters_scale`` -> ``--n-filters-scale``, ``N`` -> ``--N``."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class ConfigOptions(Generic[T]):
    """The command-line options of one option dataclass: declared once, used to parse and build.

    Attributes:
        config: the frozen dataclass (validates in ``__post_init__``, raising ``ValueError``).
        fields: the fields that become options, in help order; empty: every field.
        flags: option strings that differ from :func:`flag_for` (``{"learning_rate": "--lr"}``).
        helps: help texts that replace the field's ``metadata["help"]`` on this command.
    """

    config: type[T]
    fields: Sequence[str] = ()
    flags: Mapping[str, str] = field(default_factory=dict)
    helps: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"{self.config!r} is not a dataclass")
        known = _fields_of(self.config)
        unknown = sorted((set(self.fields) | set(self.flags) | set(self.helps)) - set(known))
        if unknown:
            raise TypeError(f"{self.config.__name__} has no fields {unknown}")

    @property
    def names(self) -> tuple[str, ...]:
        """The fields that are options."""
        return tuple(self.fields) or tuple(_fields_of(self.config))

    def flag(self, name: str) -> str:
        """The option string of field ``name``."""
        return self.flags.get(name, flag_for(name))

    def add_to(
        self,
        parser: ArgumentContainer,
        *,
        presets: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Add one option per field to ``parser`` (a parser or an argument group).

        Args:
            parser: where to add the options.
            presets: preset name -> field values, shown in the help next to the default.
        """
        by_name = _fields_of(self.config)
        hints = typing.get_type_hints(self.config)
        for name in self.names:
            f = by_name[name]
            kwargs = _argument_kwargs(hints[name], f.metadata)
            kwargs["help"] = _help(self.helps.get(name, f.metadata.get("help")), f, presets or {})
            if "type" in kwargs and "choices" not in kwargs:  # --lr LR, not --lr LEARNING_RATE
                kwargs["metavar"] = self.flag(name).lstrip("-").replace("-", "_").upper()
            if "metavar" in f.metadata:
                kwargs["metavar"] = f.metadata["metavar"]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                kwargs["required"] = True
            parser.add_argument(self.flag(name), dest=name, default=argparse.SUPPRESS, **kwargs)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The options of this dataclass that the user gave, by field name (several values of
        one option as a tuple)."""
        given = {name: getattr(args, name) for name in self.names if hasattr(args, name)}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}

    def build(
        self,
        args: argparse.Namespace,
        *,
        preset: Mapping[str, Any] | None = None,
        **fixed: Any,
    ) -> T:
        """The dataclass from its defaults, then ``preset``, given options and ``fixed``.

        Args:
            args: the parsed arguments.
            preset: field values that replace the dataclass defaults (keys of other dataclasses
                are ignored, so one preset can serve several).
            fixed: values the command sets itself, for fields that are not options here.

        Raises:
            UsageError: the dataclass rejected the values; names the given options involved.
        """
        overlap = sorted(set(fixed) & set(self.names))
        if overlap:
            raise TypeError(f"fields {overlap} are options; they cannot also be fixed")
        known = _fields_of(self.config)
        given = self.given(args)
        values = {k: v for k, v in (preset or {}).items() if k in known}
        values.update(given)
        values.update(fixed)
        try:
            return self.config(**values)
        except ValueError as exc:
            raise UsageError(self._explain(str(exc), given)) from None

    def _explain(self, message: str, given: Mapping[str, Any]) -> str:
        """Prefix ``message`` with the given options it names (``--epochs 0: ...``)."""
        named = [
            f"{self.flag(name)} {value}"
            for name, value in given.items()
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message)
        ]
        return f"{', '.join(named)}: {message}" if named else message


def _fields_of(config: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(config)}


def _argument_kwargs(annotation: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """``add_argument`` keywords (type, choices or action) for a field annotation."""
    kind = _strip_optional(annotation)
    kwargs: dict[str, Any] = {}
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        kwargs.update(type=type(choices[0]), choices=choices)
    elif kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is tuple and len(set(typing.get_args(kind))) == 1:
        kwargs.update(type=typing.get_args(kind)[0], nargs=len(typing.get_args(kind)))
    elif isinstance(kind, type) and typing.get_origin(kind) is None:
        kwargs["type"] = kind
    else:
        raise TypeError(f"no command-line option for a field of type {annotation!r}")
    if "choices" in metadata:
        kwargs["choices"] = tuple(metadata["choices"])
    return kwargs


def _strip_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise TypeError(f"no command-line option for a field of type {annotation!r}")
    return annotation


def _help(
    text: str | None, f: dataclasses.Field[Any], presets: Mapping[str, Mapping[str, Any]]
) -> str:
    """The help text with the dataclass default and any preset values appended."""
    parts = []
    if f.default is not dataclasses.MISSING and f.default is not None:
        parts.append(f"default: {f.default}")
    parts += [
        f"{preset} preset: {values[f.name]}"
        for preset, values in presets.items()
        if f.name in values
    ]
    suffix = f" ({'; '.join(parts)})" if parts else ""
    return ((text or "") + suffix).strip().replace("%", "%%")
