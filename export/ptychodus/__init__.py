"""PtychoPINN's exported ONNX model inside Ptychodus, torch-free (the ``ptychodus`` extra).

- :mod:`export.ptychodus.library`: ``PtychoPINNOnnxLibrary``, the reconstructor library a
  facility registers in Ptychodus's ``ModelCore``; it runs the model in a child process.
- :mod:`export.ptychodus.reconstructor`: ``OnnxReconstructor``, the same in the calling process.
- :mod:`export.ptychodus.adapter`: Ptychodus's input to the predictor's scan and back.
- :mod:`export.ptychodus.files`: ``python -m export predict --product``'s files.

Nothing is imported here, so that the Ptychodus process can import the library without ONNX
Runtime (the reconstructor module imports it).
"""
