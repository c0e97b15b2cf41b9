"""Typed errors of the export package; ``ptycho_torch.cli.run_cli`` maps them to exit codes.

Torch-free (the host imports it): only :mod:`ptycho_torch.errors` below it.
"""

from __future__ import annotations

from ptycho_torch.errors import ExitCode, ToolError

__all__ = [
    "ArchiveError",
    "ArtifactsChangedError",
    "BuildError",
    "DtypeContractError",
    "ExportError",
    "ManifestError",
    "OutputMismatchError",
    "ReferenceFormatError",
    "RequestError",
    "ServeEnvironmentError",
    "ServerError",
    "SignatureError",
    "StaleReferenceError",
]


class ExportError(ToolError):
    """Base class of export failures that are the user's to fix (exit code 2)."""


class ManifestError(ExportError):
    """``manifest.json`` is missing, not JSON, or not the documented layout (exit code 2)."""


class ArchiveError(ExportError):
    """An artifacts archive is missing, unreadable, truncated, holds a member that is not a plain
    file the manifest lists, or would overwrite another file (exit code 2)."""


class ArtifactsChangedError(ExportError):
    """An artifact listed in the manifest is missing or its sha256 changed (exit code 4)."""

    exit_code = ExitCode.STALE


class SignatureError(ExportError, ValueError):
    """A feed does not match the fixed signature (name, dtype or shape)."""


class DtypeContractError(ExportError):
    """An exported artifact breaks the float32 contract (names the node or tensor)."""


class BuildError(ExportError):
    """A build step failed; the previous artifacts were left untouched."""


class ReferenceFormatError(ExportError):
    """A reference (bundled with the artifacts, or given to ``parity check``) is missing,
    unreadable, lacks its provenance or does not fit the artifacts (exit 2)."""


class StaleReferenceError(ExportError):
    """The reference was made from other weights, other inputs or another head than the
    artifacts (exit code 4)."""

    exit_code = ExitCode.STALE


class OutputMismatchError(ExportError):
    """An output of the model differs from the bundled reference beyond its tolerance, or has
    the wrong dtype or shape, or NaN/Inf (exit code 1, a parity failure)."""

    exit_code = ExitCode.PARITY_FAILURE


class ServeEnvironmentError(ExportError):
    """This Python cannot start the Triton server (not 3.12, no shared libpython, PyTriton
    missing) (exit code 3, an environment gap)."""

    exit_code = ExitCode.ENVIRONMENT


class ServerError(ExportError):
    """The Triton server did not start, stopped, or answered a request with an error; or a
    client could not reach it (exit code 3 when it is not there, else 2)."""


class RequestError(SignatureError):
    """One request to the served model is bad (its NaN/Inf, its size): the error response
    names the problem; the server serves on (exit code 2 where a command meets it)."""
