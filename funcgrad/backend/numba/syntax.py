"""Pieces of Python source every emitter of the numba backend writes.

Typed literals, dtype and shape expressions and fill loops (``codegen.py`` for functions,
``nest.py`` for loop nests, opaque rules through their context), and the error that names
the equation being lowered when a rule fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from funcgrad.backend.numba import lowering, sizes
from funcgrad.errors import LoweringError
from funcgrad.ir import Eqn


def literal(val: Any, dtype: np.dtype) -> str:
    """A typed constant: ``np.float32(2.0)``, ``np.int32(-3)``, ``True``."""
    dtype = np.dtype(dtype)
    val = np.asarray(val, dtype)[()]
    if dtype.kind == "b":
        return "True" if val else "False"
    if dtype.kind == "f":
        f = float(val)
        if np.isnan(f):
            text = "np.nan"
        elif np.isinf(f):
            text = "np.inf" if f > 0 else "-np.inf"
        else:
            text = repr(f)
        return f"np.{sizes.dtype_name(dtype)}({text})"
    if dtype.kind in "iu":
        return f"np.{sizes.dtype_name(dtype)}({int(val)})"
    if dtype.kind == "c":
        return f"np.{sizes.dtype_name(dtype)}({complex(val)!r})"
    raise LoweringError(f"numba backend: no literal of dtype {dtype}")


def fill_lines(name: str, shape: tuple[int, ...], dtype: np.dtype, value: str, fresh) -> list[str]:
    """``name = a new array of shape filled with value`` as plain lines (``np.full`` is an
    overload numba compiles on first use in every process; a loop is not)."""
    lines = [f"{name} = np.empty({shape_expr(shape)}, {dtype_expr(dtype)})"]
    if not shape:
        return lines + [f"{name}[()] = {value}"]
    size = sizes.prod(shape)
    flat, i = fresh(name + "_f"), fresh("q")
    return lines + [
        f"{flat} = {name}.reshape(({size},))",
        f"for {i} in range({size}): {flat}[{i}] = {value}",
    ]


def dtype_expr(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return "np.bool_"
    if sizes.dtype_name(dtype) not in lowering.SUPPORTED_DTYPES:
        raise LoweringError(
            f"numba backend: dtype {dtype.name} is not supported in kernels; convert to "
            "float32/float64 or an integer type first"
        )
    return f"np.{sizes.dtype_name(dtype)}"


def shape_expr(shape: tuple[int, ...]) -> str:
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(map(str, shape)) + ")"


@contextmanager
def blame(eqn: Eqn | None) -> Iterator[None]:
    """Re-raise any failure while lowering ``eqn`` as a LoweringError that names it."""
    try:
        yield
    except LoweringError as e:
        if str(e).startswith("numba backend could not lower") or eqn is None:
            raise
        raise lowering_error(eqn, str(e).removeprefix("numba backend: ")) from None
    except Exception as e:  # noqa: BLE001 - a rule that cannot handle these operands
        raise lowering_error(eqn, f"{type(e).__name__}: {e}") from None


def lowering_error(eqn: Eqn | None, reason: str) -> LoweringError:
    if eqn is None:
        return LoweringError(f"numba backend: {reason}")
    ins = ", ".join(sizes.concrete(x.aval) for x in eqn.inputs) or "no operands"
    outs = ", ".join(sizes.concrete(v.aval) for v in eqn.outvars)
    return LoweringError(
        f"numba backend could not lower '{eqn.primitive.name}' ({ins} -> {outs}): {reason}"
    )
