"""Read plain data from the original's ``.dill`` pickles without executing any of their code.

The original saves ``params.cfg`` with dill. Opcode inspection (``pickletools.dis``) of the
fixture's ``params.dill`` shows exactly five globals: ``tensorflow.python.framework.ops.
convert_to_tensor`` (the pickled ``EagerTensor`` of the probe), ``dill._dill._create_array``,
``numpy._core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``; everything else is
dict/list/str/int/float/bool opcodes, which need no global. :class:`PlainDataUnpickler` never
imports a module named by the pickle: ``find_class`` answers from :data:`_ADMITTED`, a table of
local stand-ins that only build plain values, and refuses every other name before anything runs.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ptycho_torch.import_tf.errors import UnsafePickleError

__all__ = ["PlainDataUnpickler", "loads_plain_data"]


def _dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    """``numpy.dtype``: a dtype describes memory layout; object dtypes (references) are refused."""
    dtype = np.dtype(obj, align, copy)
    if dtype.hasobject:
        raise UnsafePickleError(f"refusing numpy dtype {dtype!r}: it holds Python objects")
    return dtype


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy...multiarray._reconstruct``: an empty ndarray that BUILD then fills from bytes.

    Only the base ``numpy.ndarray`` is accepted as subtype, so no subclass code can run.
    """
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refusing an ndarray subclass {subtype!r}")
    if isinstance(dtype, bytes):
        dtype = dtype.decode("ascii")
    return np.ndarray(shape, dtype=_dtype(dtype))


def _scalar(dtype: Any, data: Any) -> np.generic:
    """``numpy...multiarray.scalar``: a numpy scalar from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError(f"refusing numpy scalar of dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """``numpy...numeric._frombuffer`` (pickle protocol 5 arrays): bytes viewed as an array."""
    dtype = _dtype(dtype)
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order).copy()


def _create_array(
    f: Callable[..., np.ndarray], args: tuple[Any, ...], state: Any, npdict: Any = None
) -> np.ndarray:
    """``dill._dill._create_array``: dill's wrapper around ``f(*args)`` + ``__setstate__``.

    Safe because ``f`` must be our own :func:`_reconstruct` stand-in and ``state`` is plain data
    that ndarray's own ``__setstate__`` copies into the array buffer; the optional instance
    ``__dict__`` of an ndarray subclass is refused.
    """
    if f is not _reconstruct:
        raise UnsafePickleError(f"refusing dill._dill._create_array with constructor {f!r}")
    if npdict:
        raise UnsafePickleError("refusing dill._dill._create_array with an instance __dict__")
    array = f(*args)
    array.__setstate__(state)
    if array.dtype.hasobject:
        raise UnsafePickleError(f"refusing numpy array of dtype {array.dtype}")
    return array


def _latin1_bytes(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode``: protocol 0-2 pickles spell ``bytes`` as ``encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _tensor_as_array(value: Any) -> np.ndarray:
    """``tensorflow...convert_to_tensor``: a pickled ``EagerTensor`` is ``(convert_to_tensor,
    (numpy_value,))``; we keep the numpy value, TensorFlow is never imported."""
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise UnsafePickleError("refusing a pickled tensor whose value is not numeric")
    return array


_RECONSTRUCT_MODULES = ("numpy._core.multiarray", "numpy.core.multiarray")  # numpy 2 / numpy 1
_NUMERIC_MODULES = ("numpy._core.numeric", "numpy.core.numeric")

#: Every global a pickle may name, mapped to what it gets instead. Builtins listed are
#: constructors of plain values; ``numpy.ndarray`` is only ever used as the subtype argument of
#: :func:`_reconstruct` (or ``ndarray.__new__`` via NEWOBJ, which builds an empty array).
_ADMITTED: dict[tuple[str, str], Any] = {
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    **{(m, "_reconstruct"): _reconstruct for m in _RECONSTRUCT_MODULES},
    **{(m, "scalar"): _scalar for m in _RECONSTRUCT_MODULES},
    **{(m, "_frombuffer"): _frombuffer for m in _NUMERIC_MODULES},
    ("dill._dill", "_create_array"): _create_array,
    ("tensorflow.python.framework.ops", "convert_to_tensor"): _tensor_as_array,
}


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data only and refuses every other global by name."""

    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data))
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 0-2 pickles spell builtins the Python 2 way
            module = "builtins"
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to unpickle global '{module}.{name}': only plain data "
                "(numbers, strings, containers, numpy arrays) is read from the original's "
                "pickles, never code"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: refusing a persistent id in the pickle")


def loads_plain_data(data: bytes, source: str) -> Any:
    """Unpickle ``data`` with :class:`PlainDataUnpickler`; ``source`` names it in errors.

    Raises:
        UnsafePickleError: the pickle names a global that is not plain data (nothing was run),
            or it is not a readable pickle at all.
    """
    try:
        value = PlainDataUnpickler(data, source).load()
    except UnsafePickleError as exc:
        if str(exc).startswith(source):
            raise
        raise UnsafePickleError(f"{source}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt or exotic pickle is bad input
        raise UnsafePickleError(
            f"{source}: cannot read the pickle as plain data: {type(exc).__name__}: {exc}"
        ) from None
    _check_plain(value, source)
    return value


_PLAIN_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)


def _check_plain(value: Any, source: str) -> None:
    """Belt and braces: the loaded tree holds only containers, scalars and numeric arrays."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue  # pickles can hold shared or self-referencing containers
        seen.add(id(item))
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise UnsafePickleError(f"{source}: refusing a numpy array of Python objects")
        elif not isinstance(item, _PLAIN_SCALARS):
            raise UnsafePickleError(f"{source}: unexpected {type(item).__name__} in the pickle")
