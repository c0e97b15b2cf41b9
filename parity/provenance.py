"""Freshness, checked before anything runs: the inputs fit the signature (else exit 2), and the
reference and the checkpoint belong to the artifacts (else exit 4, stale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ReferenceFormatError, StaleReferenceError
from export.manifest import Manifest
from export.signature import Signature
from parity.errors import ParityError, WeightsMismatchError
from parity.reference import ReferenceFile
from ptycho_torch.digest import ArraysDigest
from ptycho_torch.npz import NpzRowReader

__all__ = ["check_inputs", "check_reference_fresh", "check_weights", "inputs_sha256"]

_DIGEST_ROWS = 256  # rows per read while hashing the inputs


def check_inputs(inputs: NpzRowReader, signature: Signature) -> int:
    """The number of samples in ``inputs`` once every signature input is there, float32, of the
    signature's per-sample shape and the same sample count.

    Raises:
        ParityError: (exit 2) naming the array and what was expected.
    """
    path = inputs.path
    counts = set()
    for spec in signature.inputs:
        if spec.name not in inputs.members:
            held = sorted(inputs.members)
            raise ParityError(f"inputs {path} lacks {spec.name!r}; it holds {held}")
        member = inputs.member(spec.name)
        shape, dtype = member.shape, member.dtype
        if dtype != np.float32 or tuple(shape[1:]) != spec.shape[1:]:
            raise ParityError(
                f"inputs {path}: {spec.name!r} is {dtype}{list(shape)}, expected float32"
                f"[n, {', '.join(map(str, spec.shape[1:]))}]"
            )
        counts.add(shape[0])
    if len(counts) != 1:
        raise ParityError(f"inputs {path}: arrays hold different sample counts {sorted(counts)}")
    return counts.pop()


def check_reference_layout(reference: ReferenceFile, signature: Signature, n: int) -> None:
    """Every signature output is in the reference as float32 ``[n, *per-sample shape]``.

    Raises:
        ReferenceFormatError: (exit 2) naming every missing or misshapen array at once.
    """
    problems = []
    for spec in signature.outputs:
        expected = [n, *spec.shape[1:]]
        if spec.name not in reference.shapes:
            problems.append(f"no {spec.name!r} array (it holds {sorted(reference.shapes)})")
            continue
        shape, dtype = list(reference.shapes[spec.name]), reference.dtypes[spec.name]
        if dtype != np.float32 or shape != expected:
            problems.append(f"{spec.name!r} is {dtype}{shape}, expected float32{expected}")
    if problems:
        raise ReferenceFormatError(
            f"reference {reference.path} does not fit the artifacts' {signature.head!r} head and "
            f"{n} input samples: {'; '.join(problems)}; regenerate it for these inputs with "
            "`python -m export reference`"
        )


def inputs_sha256(inputs: NpzRowReader, names: list[str]) -> str:
    """``ptycho_torch.digest.arrays_sha256`` of the arrays ``names``, read a few rows at a time."""
    digest = ArraysDigest()
    for name in sorted(names):
        member = inputs.member(name)
        shape = member.shape
        digest.begin(name, member.dtype, shape)
        for start in range(0, shape[0], _DIGEST_ROWS):
            digest.update(inputs.rows(name, start, start + _DIGEST_ROWS))
    return digest.hexdigest()


def check_reference_fresh(
    provenance: dict[str, Any], manifest: Manifest, inputs_sha: str, path: Path
) -> None:
    """The reference was made from the artifacts' weights, these inputs and the same head.

    Raises:
        StaleReferenceError: (exit 4) naming every mismatch and how to regenerate it.
    """
    problems = manifest.reference_problems(provenance, inputs_sha)
    if problems:
        remedy = provenance.get("remedy") or (
            "Regenerate it with `python -m export reference --checkpoint CKPT --inputs "
            "ARTIFACTS/inputs.npz --out reference.npz` (needs the 'tf' extra)"
        )
        raise StaleReferenceError(
            f"reference {path} is stale: " + "; ".join(problems) + f". {remedy}"
        )


def check_weights(checkpoint: Path, manifest: Manifest) -> None:
    """The checkpoint holds the weights the artifacts were built from.

    Raises:
        WeightsMismatchError: (exit 4) other weights; rebuild, or pass the right checkpoint.
    """
    from ptycho_torch.checkpoint import load_model, model_state_sha256

    digest = model_state_sha256(load_model(checkpoint))
    if digest != manifest.checkpoint.weights_sha256:
        raise WeightsMismatchError(
            f"checkpoint {checkpoint} holds weights {digest[:12]}, but the artifacts were built from "
            f"{manifest.checkpoint.weights_sha256[:12]}; rebuild with `python -m export build`"
        )
