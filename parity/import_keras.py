"""Keras weights saved from the twin's layout, with a ModelConfig JSON, into a PyTorch model file.

The original PtychoPINN's own files (its ``config.json``, ``wts.h5.zip``, ``params.dill``, run
folder) are not this layout: they are refused in one line naming the ``import_tf`` command that
imports them (:func:`ptycho_torch.import_tf.originals.import_command`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from parity.errors import ParityError
from ptycho_torch.config import ModelConfig
from ptycho_torch.jsonio import read_json_object

__all__ = ["ImportKerasOptions", "import_keras", "read_model_config"]


@dataclass(frozen=True)
class ImportKerasOptions:
    """What ``import-keras`` converts, and where the model file goes."""

    weights: Path = field(metadata={"help": "Keras .weights.h5 written from the twin layout"})
    config: Path = field(metadata={"help": "JSON file with the ModelConfig fields"})
    out: Path = field(metadata={"help": "model file for --checkpoint of `export build`"})


def import_keras(options: ImportKerasOptions) -> Path:
    """Write ``options.out`` from twin-layout Keras weights and a ModelConfig JSON.

    Raises:
        ParityError: ``--config`` or ``--weights`` is one of the original PtychoPINN's files
            (the message names the command that imports it), or ``--config`` is not a JSON
            object of ModelConfig fields.
    """
    from parity.tf_twin.weights import keras_weights_to_model_file
    from ptycho_torch.import_tf.originals import identify, import_command

    for flag, path in (("--config", options.config), ("--weights", options.weights)):
        found = identify(path)
        if found is not None:
            raise ParityError(
                f"{flag} {path} is {found.describe()}; import-keras converts weights saved from "
                "the twin layout with a ModelConfig JSON; import the original's model with "
                f"`{import_command(found, str(options.out))}`"
            )
    config = read_model_config(options.config)
    keras_weights_to_model_file(options.weights, config, options.out)
    return options.out


def read_model_config(path: Path) -> ModelConfig:
    """A JSON object of ModelConfig fields (``ParityError``, exit 2, otherwise)."""
    doc = read_json_object(path, ParityError, "--config takes a JSON object of ModelConfig fields")
    try:
        return ModelConfig.from_dict(doc)
    except (TypeError, ValueError) as exc:
        raise ParityError(f"--config {path}: {exc}") from None
