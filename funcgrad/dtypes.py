"""Dtype names and NumPy 2 (NEP 50) promotion, shared by eager code and every tracer.

Python scalars are *weak*: ``f32_array * 2.0`` stays float32 and ``i32_array + 1`` stays
int32, exactly as in NumPy 2. NumPy scalars and arrays are strong: ``int32 + float32`` is
float64, as in NumPy, also under ``jit``. A traced Python scalar (a ``jit`` or ``make_jaxpr``
argument) has a *weak* aval and promotes like the Python scalar it came from; values
computed from weak values and Python scalars alone stay weak (``lr * 2``), as the
Python arithmetic they stand for (:func:`weak_literal`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

bool_ = np.dtype(np.bool_)
int8, int16, int32, int64 = (np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
uint8, uint16, uint32, uint64 = (np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64))
float16, float32, float64 = (np.dtype(t) for t in (np.float16, np.float32, np.float64))
complex64, complex128 = np.dtype(np.complex64), np.dtype(np.complex128)

_SHORT = {
    "bool": "bool",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "uint16": "u16",
    "uint32": "u32",
    "uint64": "u64",
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "complex64": "c64",
    "complex128": "c128",
}


def short_name(dtype: np.dtype) -> str:
    """``float32`` -> ``f32``, as in JAX's printed jaxprs."""
    return _SHORT.get(dtype.name, dtype.name)


def is_integer(dtype: np.dtype) -> bool:
    return dtype.kind in "iu"


_PYTHON_SCALARS = (bool, int, float, complex)


def is_python_scalar(x: Any) -> bool:
    return type(x) in _PYTHON_SCALARS


def dtype_of(x: Any) -> np.dtype:
    """The dtype funcgrad gives a value: NumPy's rules, Python floats -> float64."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    t = type(x)
    if t is bool:
        return bool_
    if t is int:
        return int64
    if t is float:
        return float64
    if t is complex:
        return complex128
    return np.asarray(x).dtype


# A Python scalar of each kind, for weak values in promotion.
_WEAK_STANDIN = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}


def weak_standin(dtype: np.dtype) -> Any:
    """The Python scalar type a weak value of ``dtype`` promotes like."""
    return type(_WEAK_STANDIN[dtype.kind])


_PYTHON_TYPE_OF = {
    np.dtype(np.bool_): bool,
    np.dtype(np.int64): int,
    np.dtype(np.float64): float,
    np.dtype(np.complex128): complex,
}


def weak_literal(x: Any, dtype: np.dtype) -> Any:
    """The Python scalar ``x`` as an operand of a weak value of ``dtype``: still a Python
    scalar (staged as a weak literal) when ``dtype`` is its kind's default dtype, else a
    NumPy scalar of ``dtype``."""
    py = _PYTHON_TYPE_OF.get(dtype)
    return py(x) if py is not None else dtype.type(x)


def result_type(*args: Any) -> np.dtype:
    """NEP 50 promotion of arrays, tracers, dtypes and (weak) Python scalars."""
    keys = []
    for a in args:
        if type(a) in _PYTHON_SCALARS:
            keys.append(a)
        elif isinstance(a, np.dtype):
            keys.append(a)
        elif getattr(a, "_weak", False):  # a weak tracer promotes like a Python scalar
            keys.append(_WEAK_STANDIN[a.dtype.kind])
        else:
            keys.append(dtype_of(a))
    return np.result_type(*keys)


def to_inexact(dtype: np.dtype) -> np.dtype:
    """The dtype a function like ``sin`` computes in, as NumPy: int8 -> f16, int32 -> f64."""
    if dtype.kind in "fc":
        return dtype
    return np.result_type(dtype, float16)
