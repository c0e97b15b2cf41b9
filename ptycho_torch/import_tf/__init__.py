"""Import a model trained by the original TensorFlow PtychoPINN (``wts.h5.zip`` or Keras 3
``model.weights.h5``) into a ptycho_torch checkpoint, without TensorFlow and without running any
code from the files: zip and HDF5 are read as data, ``params.dill`` through an unpickler that
admits plain data only, and every convolution is mapped by its role in the original's graph and
checked by shape.

Command line: ``python -m export import-tf --archive wts.h5.zip --out model.pt``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ptycho_torch.import_tf.errors import (
        GraphStructureError,
        ImportTFError,
        MissingValueError,
        UnsafePickleError,
        UnsupportedModelError,
        WeightMismatchError,
    )
    from ptycho_torch.import_tf.importer import (
        ImportedModel,
        import_archive,
        import_weights,
        write_checkpoint,
    )
    from ptycho_torch.import_tf.unpickle import loads_plain_data
    from ptycho_torch.import_tf.values import read_probe_npz

# Imported on first use, so that ``python -m export import-tf`` parses its options without h5py or
# torch, and a missing one is exit 3 with its install line (ptycho_torch.cli.run_cli).
_LAZY = {
    "ImportTFError": "errors",
    "MissingValueError": "errors",
    "UnsafePickleError": "errors",
    "UnsupportedModelError": "errors",
    "WeightMismatchError": "errors",
    "ImportedModel": "importer",
    "import_archive": "importer",
    "import_weights": "importer",
    "read_probe_npz": "values",
    "write_checkpoint": "importer",
    "GraphStructureError": "errors",
    "loads_plain_data": "unpickle",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GraphStructureError",
    "ImportTFError",
    "ImportedModel",
    "MissingValueError",
    "UnsafePickleError",
    "UnsupportedModelError",
    "WeightMismatchError",
    "import_archive",
    "import_weights",
    "loads_plain_data",
    "read_probe_npz",
    "write_checkpoint",
]
