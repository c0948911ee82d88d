"""funcgrad.scipy.linalg: SciPy's triangular and Cholesky solvers on ``funcgrad.lax.linalg``.

As SciPy: ``cholesky`` and ``cho_factor`` return the *upper* factor unless ``lower=True``;
``cho_factor`` returns ``(c, lower)`` with zeros in the unused triangle (SciPy leaves
whatever was there); ``b`` may be a vector or a matrix (``(..., m)`` only when 1-D).
Unlike SciPy, leading batch axes are allowed (they must match between ``a`` and ``b``),
and failures are values (NaN), as in ``funcgrad.numpy.linalg``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.lax.linalg import lu_pivots_to_permutation, take_rows
from funcgrad.numpy import linalg as fla
from funcgrad.numpy import util
from funcgrad.numpy.util import shape_of, to_operand

__all__ = ["cho_factor", "cho_solve", "cholesky", "lu_factor", "lu_solve", "solve_triangular"]


def _float_pair(name: str, a: Any, b: Any) -> tuple[Any, Any]:
    a = to_operand(a, f"funcgrad.scipy.linalg.{name}")
    b = to_operand(b, f"funcgrad.scipy.linalg.{name}")
    return tuple(util.promote_args_inexact(f"funcgrad.scipy.linalg.{name}", a, b))


def _as_matrix_rhs(name: str, a: Any, b: Any) -> tuple[Any, bool]:
    """``b`` as ``(..., m, k)`` for ``a`` ``(..., m, m)``; whether it was a vector."""
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) < 2 or sa[-1] != sa[-2]:
        raise ValueError(
            f"funcgrad.scipy.linalg.{name}: a must be a square matrix (or a stack), got "
            f"{util.short(a)}"
        )
    vector = len(sb) == 1
    if vector:
        b = lax.reshape(b, (sb[0], 1))
        sb = (sb[0], 1)
    if len(sb) < 2 or sb[-2] != sa[-1]:
        raise ValueError(
            f"funcgrad.scipy.linalg.{name}: a {util.short(a)} and b {util.short(b)} do not "
            f"match: b must have {sa[-1]} rows"
        )
    return b, vector


def _back(x: Any, vector: bool) -> Any:
    return lax.reshape(x, shape_of(x)[:-1]) if vector else x


def solve_triangular(
    a: Any,
    b: Any,
    trans: int | str = 0,
    lower: bool = False,
    unit_diagonal: bool = False,
    overwrite_b: bool = False,
    check_finite: bool = True,
) -> Any:
    """Solve ``op(a) x = b`` for triangular ``a`` (``trans``: 0/'N', 1/'T', 2/'C')."""
    del overwrite_b, check_finite
    a, b = _float_pair("solve_triangular", a, b)
    modes = {0: (False, False), "N": (False, False), 1: (True, False), "T": (True, False)}
    modes.update({2: (True, True), "C": (True, True)})
    if trans not in modes:
        raise ValueError(
            f"funcgrad.scipy.linalg.solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', "
            f"got {trans!r}"
        )
    transpose_a, conjugate_a = modes[trans]
    b, vector = _as_matrix_rhs("solve_triangular", a, b)
    x = lax.linalg.triangular_solve(
        a,
        b,
        left_side=True,
        lower=lower,
        transpose_a=transpose_a,
        conjugate_a=conjugate_a,
        unit_diagonal=unit_diagonal,
    )
    return _back(x, vector)


def cholesky(a: Any, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """The Cholesky factor of symmetric positive definite ``a``: upper (SciPy's default)
    or ``lower``."""

    del overwrite_a, check_finite
    return fla.cholesky(a, upper=not lower)


def cho_factor(
    a: Any, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True
) -> tuple[Any, bool]:
    """``(c, lower)`` for :func:`cho_solve`: the Cholesky factor and which triangle it is."""
    return cholesky(a, lower=lower), bool(lower)


def cho_solve(
    c_and_lower: tuple[Any, bool], b: Any, overwrite_b: bool = False, check_finite: bool = True
) -> Any:
    """Solve ``a x = b`` given ``(c, lower) = cho_factor(a)``: two triangular solves."""
    del overwrite_b, check_finite
    c, lower = c_and_lower
    c, b = _float_pair("cho_solve", c, b)
    b, vector = _as_matrix_rhs("cho_solve", c, b)
    # a = L L^H: L y = b, then L^H x = y (with c = L^H = U when upper).
    y = lax.linalg.triangular_solve(
        c, b, left_side=True, lower=lower, transpose_a=not lower, conjugate_a=not lower
    )
    x = lax.linalg.triangular_solve(
        c, y, left_side=True, lower=lower, transpose_a=lower, conjugate_a=lower
    )
    return _back(x, vector)


def lu_factor(a: Any, overwrite_a: bool = False, check_finite: bool = True) -> tuple[Any, Any]:
    """``(lu, piv)``: LAPACK's packed LU factors and 0-based row swaps (SciPy's)."""
    del overwrite_a, check_finite
    a = to_operand(a, "funcgrad.scipy.linalg.lu_factor")
    if util.dtype_of(a).kind not in "fc":
        a = util.convert(a, np.dtype(np.float64))
    lu_, piv, _ = lax.linalg.lu(a)
    return lu_, piv


def lu_solve(
    lu_and_piv: tuple[Any, Any],
    b: Any,
    trans: int = 0,
    overwrite_b: bool = False,
    check_finite: bool = True,
) -> Any:
    """Solve ``a x = b`` (``trans`` 0) or ``a^T x = b`` (1) from :func:`lu_factor`'s output."""

    del overwrite_b, check_finite
    lu_, piv = lu_and_piv
    lu_, b = _float_pair("lu_solve", lu_, b)
    b, vector = _as_matrix_rhs("lu_solve", lu_, b)
    m = shape_of(lu_)[-1]
    perm = _perm_from_pivots(piv, m)
    if trans in (0, "N"):
        x = fla._lu_solve(lu_, perm, b)
    elif trans in (1, "T", 2, "C"):
        # a^T = U^T L^T P: solve U^T z = b, L^T w = z, then x = P^T w.
        z = lax.linalg.triangular_solve(lu_, b, left_side=True, lower=False, transpose_a=True)
        w = lax.linalg.triangular_solve(
            lu_, z, left_side=True, lower=True, transpose_a=True, unit_diagonal=True
        )
        inv_perm = lax.argsort(perm, dimension=len(shape_of(perm)) - 1)
        x = take_rows(w, inv_perm)
    else:
        raise ValueError(f"funcgrad.scipy.linalg.lu_solve: trans must be 0, 1 or 2, got {trans!r}")
    return _back(x, vector)


def _perm_from_pivots(piv: Any, m: int) -> Any:
    """The row permutation LAPACK's swaps ``piv`` apply (``a[perm] == l @ u``)."""

    piv = to_operand(piv, "funcgrad.scipy.linalg.lu_solve")
    if not util.is_traced(piv):
        p = np.asarray(piv)
        flat = p.reshape(-1, p.shape[-1])
        out = np.stack([lu_pivots_to_permutation(r, m) for r in flat])
        return out.reshape(p.shape[:-1] + (m,))
    perm = fnp.broadcast_to(fnp.arange(m, dtype=np.int32), shape_of(piv)[:-1] + (m,))
    for i in range(shape_of(piv)[-1]):
        p = piv[..., i : i + 1]
        pi = perm[..., i : i + 1]
        pp = fnp.take_along_axis(perm, p, axis=-1)
        idx = fnp.arange(m)
        perm = fnp.where(idx == i, pp, fnp.where(idx == p, pi, perm))
    return perm
