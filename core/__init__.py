"""The torch-free core at the bottom of the layers: numpy and the standard library only.

It holds the comparison kernel, the one definition of "pass" that ``parity check``,
``export verify``, ``parity bisect``, the build's load-back check and a reproducer folder's
``rerun.py`` all use:

- :mod:`core.tolerances`: the element bound (:class:`~core.tolerances.Tolerance`), the
  documented default table and tolerance files (:class:`~core.tolerances.ToleranceTable`);
- :mod:`core.running_stats`: the element rule (wrap-aware, amplitude-weighted phase; NaN/Inf
  positions) as float64 running statistics over chunks;
- :mod:`core.compare`: dtype and shape before values, and the verdict of one output;
- :mod:`core.output_comparison`: that verdict as a record with a JSON round trip;
- :mod:`core.json_codec`: strict JSON for non-finite floats;
- :mod:`core.device`: a device named by a string, checked once where it comes in (not part of
  the kernel a reproducer carries).

The kernel's modules import nothing but numpy, the standard library and each other, and this
file imports nothing, so that a reproducer folder can carry them (:data:`KERNEL_MODULES`).
"""

__all__ = ["KERNEL_MODULES"]

# what a reproducer folder carries in its own core/ (parity.repro); a test runs its rerun.py with
# this project's packages out of reach, so a missing name here fails there
KERNEL_MODULES = ("compare", "json_codec", "output_comparison", "running_stats", "tolerances")
