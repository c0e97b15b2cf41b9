"""``python -m export serve``: the ONNX model behind a real Triton server (PyTriton), torch-free.

:mod:`~export.serving.environment` (the Python 3.12 and ``LD_LIBRARY_PATH`` PyTriton's backend
stub needs), :mod:`~export.serving.options` (how it serves: ports, batching, instances, device),
:mod:`~export.serving.handler` (the inference callable: request checks, the fixed batch through
:mod:`export.fixed_batch`, throughput and latency lines), :mod:`~export.serving.server` (verify,
then serve until stopped) on :mod:`~export.serving.triton_server` (PyTriton's server bound,
ready, drained and stopped), :mod:`~export.serving.client` (a served model as
:class:`export.predict.Predictor`'s runner), :mod:`~export.serving.process` (``serve`` in a child
process) and :mod:`~export.serving.load` (the load test; its results:
:mod:`~export.serving.load_report`). The served model is described once, by
:class:`export.triton_model.TritonModel`, as the repository ``python -m export triton`` writes.
PyTriton and tritonclient are imported only where a server or a client starts (the ``serve``
extra: docs/serving.md).
"""

__all__: list[str] = []
