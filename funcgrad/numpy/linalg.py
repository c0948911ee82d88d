"""funcgrad.numpy.linalg: norms (and NumPy's linalg aliases of the product functions).

Decisions: ``norm`` follows ``numpy.linalg.norm``: integer inputs are computed in float64;
vector norms for ``ord`` None/2, 1, inf, -inf, 0 and any other p; matrix norms for
``ord`` None/'fro', 1, -1, inf, -inf. The matrix 2-norm, -2 and 'nuc' need singular values,
which funcgrad has no primitive for: they raise NotImplementedError.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.numpy import util
from funcgrad.numpy.products import matmul as matmul
from funcgrad.numpy.products import outer as outer
from funcgrad.numpy.products import tensordot as tensordot
from funcgrad.numpy.products import vecdot as vecdot
from funcgrad.numpy.shape import diagonal as _diagonal
from funcgrad.numpy.shape import matrix_transpose as matrix_transpose
from funcgrad.numpy.shape import trace as _trace
from funcgrad.numpy.util import shape_of, to_operand


def diagonal(x: Any, /, *, offset: int = 0) -> Any:
    """The diagonal of the last two axes."""
    return _diagonal(x, offset, -2, -1)


def trace(x: Any, /, *, offset: int = 0, dtype: Any = None) -> Any:
    """The trace of the last two axes."""
    return _trace(x, offset, -2, -1, dtype=dtype)


def _keep(x: Any, s: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> Any:
    if not keepdims:
        return x
    return lax.reshape(x, tuple(1 if i in axes else d for i, d in enumerate(s)))


def _sum(x: Any, axes: tuple[int, ...]) -> Any:
    return lax.reduce_sum(x, axes)


def _vector_norm(x: Any, ord: Any, axes: tuple[int, ...]) -> Any:
    if isinstance(ord, str):
        raise ValueError(f"fnp.linalg.norm: invalid norm order {ord!r} for vectors")
    dtype = util.dtype_of(x)
    if ord is None or ord == 2:
        return lax.sqrt(_sum(lax.mul(x, x), axes))
    if ord == np.inf:
        return lax.reduce_max(lax.abs(x), axes)
    if ord == -np.inf:
        return lax.reduce_min(lax.abs(x), axes)
    if ord == 0:
        return _sum(lax.convert_element_type(lax.ne(x, np.zeros((), dtype)[()]), dtype), axes)
    if ord == 1:
        return _sum(lax.abs(x), axes)
    p = np.array(ord, dtype)[()]
    s = _sum(lax.pow(lax.abs(x), p), axes)
    return lax.pow(s, lax.div(np.ones((), dtype)[()], p))


def _matrix_norm(x: Any, ord: Any, row: int, col: int) -> Any:
    if ord is None or ord == "fro":
        return lax.sqrt(_sum(lax.mul(x, x), (row, col)))
    if ord in (2, -2, "nuc"):
        raise NotImplementedError(
            f"fnp.linalg.norm: the matrix norm ord={ord!r} needs singular values, which "
            "funcgrad does not provide; use ord='fro', 1, -1, inf or -inf"
        )
    if ord in (1, -1):
        red = lax.reduce_max if ord == 1 else lax.reduce_min
        sums = _sum(lax.abs(x), (row,))
        return red(sums, (col - 1 if col > row else col,))
    if ord in (np.inf, -np.inf):
        red = lax.reduce_max if ord == np.inf else lax.reduce_min
        sums = _sum(lax.abs(x), (col,))
        return red(sums, (row - 1 if row > col else row,))
    raise ValueError(f"fnp.linalg.norm: invalid norm order {ord!r} for matrices")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """Vector or matrix norm (NumPy's ``linalg.norm``)."""
    x = to_operand(x, "fnp.linalg.norm")
    dtype = util.dtype_of(x)
    if dtype.kind not in "fc":
        x = util.convert(x, np.dtype(np.float64))
    s = tuple(shape_of(x))
    n = len(s)
    if axis is None:
        if ord is None:
            axes = tuple(range(n))
            return _keep(lax.sqrt(_sum(lax.mul(x, x), axes)), s, axes, keepdims)
        if n == 1:
            axes = (0,)
        elif n == 2:
            axes = (0, 1)
        else:
            raise ValueError(
                f"fnp.linalg.norm: improper number of dimensions to norm ({util.short(x)} "
                f"with ord={ord!r}); give axis= (one axis for vectors, two for matrices)"
            )
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        axes = tuple(util.canonicalize_axis(a, n, "linalg.norm") for a in axes)
    if len(axes) == 1:
        if s[axes[0]] == 0 and ord in (np.inf, -np.inf):
            raise ValueError("fnp.linalg.norm: max/min norm of an empty axis is undefined")
        return _keep(_vector_norm(x, ord, axes), s, axes, keepdims)
    if len(axes) == 2:
        if axes[0] == axes[1]:
            raise ValueError("fnp.linalg.norm: duplicate axes given")
        return _keep(_matrix_norm(x, ord, axes[0], axes[1]), s, tuple(sorted(axes)), keepdims)
    raise ValueError(
        f"fnp.linalg.norm: improper number of dimensions to norm: axis={axis!r}; give one "
        "axis (vector norm) or two (matrix norm)"
    )


def vector_norm(x: Any, /, *, axis: Any = None, keepdims: bool = False, ord: Any = 2) -> Any:
    """Vector norm over ``axis`` (all axes, flattened, when None)."""
    x = to_operand(x, "fnp.linalg.vector_norm")
    if util.dtype_of(x).kind not in "fc":
        x = util.convert(x, np.dtype(np.float64))
    s = tuple(shape_of(x))
    axes = util.canonicalize_axes(axis, len(s), "linalg.vector_norm")
    if axis is None:
        flat = lax.reshape(x, (math.prod(s),))
        r = _vector_norm(flat, ord, (0,))
        return _keep(r, s, axes, keepdims)
    return _keep(_vector_norm(x, ord, axes), s, axes, keepdims)


def matrix_norm(x: Any, /, *, keepdims: bool = False, ord: Any = "fro") -> Any:
    """Matrix norm over the last two axes."""
    return norm(x, ord=ord, axis=(-2, -1), keepdims=keepdims)
