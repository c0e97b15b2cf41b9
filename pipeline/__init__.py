"""The composition layer above ``ptycho_torch``, ``export`` and ``parity``.

``python -m export build`` is the documented main command: build the artifacts (``export``),
make a reference with the TensorFlow twin when TensorFlow is installed (``parity.tf_twin``),
then run the parity check (``parity``). Only this package knows all three; the layers below
never import upward (``.importlinter``, run by ``.ci/run``).
"""
