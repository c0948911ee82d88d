"""Argument handling shared by funcgrad.numpy: conversion and NEP 50 promotion."""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import core, dtypes
from funcgrad.core import Tracer


def is_traced(x: Any) -> bool:
    return isinstance(x, Tracer)


def to_operand(x: Any, name: str = "funcgrad.numpy") -> Any:
    """A tracer or a NumPy array/scalar; lists and Python scalars are converted by NumPy."""
    if isinstance(x, (Tracer, np.ndarray, np.generic)):
        return x
    if dtypes.is_python_scalar(x):
        return np.asarray(x)[()]
    if isinstance(x, (list, tuple)) and any(isinstance(e, Tracer) for e in _iter_nested(x)):
        from funcgrad.numpy.creation import array

        return array(x)
    try:
        arr = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name}: cannot convert {type(x).__name__} to an array: {e}") from e
    if arr.dtype == object:
        raise TypeError(
            f"{name}: {type(x).__name__} is not array-like (NumPy makes it an object array)"
        )
    return arr


def _iter_nested(x: Any):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _iter_nested(e)
        else:
            yield e


def convert(x: Any, dtype: np.dtype) -> Any:
    """``x`` as ``dtype``: a NumPy conversion for concrete values, a primitive for tracers."""
    if isinstance(x, Tracer):
        if x.aval.dtype == dtype:
            return x
        from funcgrad.lax.elementwise import convert_element_type

        return convert_element_type(x, dtype)
    if dtypes.is_python_scalar(x):
        return np.array(x, dtype)[()]
    x = np.asarray(x) if not isinstance(x, (np.ndarray, np.generic)) else x
    return x if x.dtype == dtype else x.astype(dtype)


def promote_args(name: str, *args: Any) -> list[Any]:
    """Convert ``args`` to one dtype by NumPy 2's rules (Python scalars are weak)."""
    ops = [a if dtypes.is_python_scalar(a) else to_operand(a, name) for a in args]
    dtype = dtypes.result_type(*ops)
    return [convert(a, dtype) for a in ops]


def promote_args_inexact(name: str, *args: Any) -> list[Any]:
    """Like :func:`promote_args`, then to a float dtype (as ``np.sin`` of ints)."""
    ops = [a if dtypes.is_python_scalar(a) else to_operand(a, name) for a in args]
    dtype = dtypes.to_inexact(dtypes.result_type(*ops))
    return [convert(a, dtype) for a in ops]


def lift_to_current(x: Any) -> Any:
    """Inside a transformation, box a constant as a value of the innermost trace."""
    if core._eager_only[0] or isinstance(x, Tracer):
        return x
    return core.full_raise(core.current_trace(), x)
