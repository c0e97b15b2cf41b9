"""Import a model trained by the original TensorFlow PtychoPINN (``wts.h5.zip`` or Keras 3
``model.weights.h5``) into a ptycho_torch checkpoint, without TensorFlow and without running any
code from the files: zip and HDF5 are read as data, ``params.dill`` through an unpickler that
admits plain data only, and every convolution is mapped by its role in the original's graph and
checked by shape.

Command line: ``python -m ptycho_torch.import_tf --archive wts.h5.zip --out model.pt``.
"""

from __future__ import annotations

from ptycho_torch.import_tf.errors import (
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
    read_probe_npz,
    write_checkpoint,
)
from ptycho_torch.import_tf.keras_graph import GraphStructureError
from ptycho_torch.import_tf.unpickle import admitted_globals, loads_plain_data

__all__ = [
    "GraphStructureError",
    "ImportTFError",
    "ImportedModel",
    "MissingValueError",
    "UnsafePickleError",
    "UnsupportedModelError",
    "WeightMismatchError",
    "admitted_globals",
    "import_archive",
    "import_weights",
    "loads_plain_data",
    "read_probe_npz",
    "write_checkpoint",
]
