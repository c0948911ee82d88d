"""Test helpers: derivatives checked against central finite differences (float64).

``check_grads(f, args, order)`` checks forward mode (``jvp`` against the finite-difference
directional derivative) and reverse mode (``vjp`` against the same, through the identity
``<u, J v> == <J^T u, v>``) along random directions, then recurses on the derivative
functions themselves up to ``order``: the jvp as a function of (primals, tangents), and
``x -> vjp(f, x)(f(x))``. The reference never uses funcgrad's derivative code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import funcgrad as fg
from funcgrad import tree_util

_DEFAULT_EPS = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 1e-3}
_DEFAULT_RTOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 2e-2}


def _is_float(x: Any) -> bool:
    return np.asarray(x).dtype.kind == "f"


def _to_f64(x: Any) -> Any:
    """Float leaves to float64 (the finite differences need the precision)."""
    a = np.asarray(x)
    if a.dtype.kind == "c":  # complex leaves are differentiated too (JAX's convention)
        return a.astype(np.complex128)
    return a.astype(np.float64) if a.dtype.kind == "f" else x


def _rand_like(rng: np.random.Generator, x: Any) -> Any:
    a = np.asarray(x)
    if a.dtype.kind == "c":
        return (rng.standard_normal(a.shape) + 1j * rng.standard_normal(a.shape)).astype(a.dtype)
    if a.dtype.kind != "f":
        return np.zeros(a.shape, a.dtype)
    return rng.standard_normal(a.shape).astype(a.dtype)


def _vdot(xs: Sequence[Any], ys: Sequence[Any]) -> float:
    total = 0.0
    for x, y in zip(xs, ys, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "fc" and y.dtype.kind in "fc":
            # Complex values pair as Re(sum(x * y)): JAX's (unconjugated) transposes are
            # the adjoints under that real bilinear form.
            total += float(np.real(np.sum(x.astype(np.complex128) * y)))
    return total


def _add_scaled(xs: Sequence[Any], vs: Sequence[Any], scale: float) -> list[Any]:
    out = []
    for x, v in zip(xs, vs, strict=False):
        a = np.asarray(x)
        out.append(a + scale * np.asarray(v, a.dtype) if a.dtype.kind in "fc" else x)
    return out


def numerical_jvp(f: Callable, args: tuple, tangents: tuple, eps: float) -> list[np.ndarray]:
    """Central difference ``(f(x + eps t) - f(x - eps t)) / (2 eps)``, flat over outputs."""
    flat, tree = tree_util.tree_flatten(args)
    flat_t = tree_util.tree_leaves(tangents)
    plus = f(*tree_util.tree_unflatten(tree, _add_scaled(flat, flat_t, eps)))
    minus = f(*tree_util.tree_unflatten(tree, _add_scaled(flat, flat_t, -eps)))
    out = []
    for p, m in zip(tree_util.tree_leaves(plus), tree_util.tree_leaves(minus), strict=True):
        p, m = np.asarray(p), np.asarray(m)
        if p.dtype.kind == "c":
            out.append((p.astype(np.complex128) - m.astype(np.complex128)) / (2 * eps))
        elif p.dtype.kind == "f":
            out.append((p.astype(np.float64) - m.astype(np.float64)) / (2 * eps))
        else:
            out.append(np.zeros(p.shape))
    return out


def _assert_close(actual: Sequence[Any], expected: Sequence[Any], rtol: float, atol, what: str):
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs vs {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=False)):
        kind = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(e) else np.float64
        a = np.asarray(a, kind)
        e = np.asarray(e, kind)
        assert a.shape == e.shape, f"{what}: output {i} has shape {a.shape}, expected {e.shape}"
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        tol = atol if atol is not None else rtol * scale
        np.testing.assert_allclose(a, e, rtol=rtol, atol=tol, err_msg=f"{what} (output {i})")


def check_jvp(f: Callable, args: tuple, eps: float, rtol: float, atol=None, seed: int = 0):
    """funcgrad's jvp of ``f`` at ``args`` against finite differences, along a random
    tangent; returns the tangent used."""
    rng = np.random.default_rng(seed)
    tangents = tree_util.tree_map(lambda x: _rand_like(rng, x), args)
    _, t_out = fg.jvp(f, args, tangents)
    expected = numerical_jvp(f, args, tangents, eps)
    actual = [np.asarray(t) for t in tree_util.tree_leaves(t_out)]
    _assert_close(actual, expected, rtol, atol, f"jvp of {getattr(f, '__name__', f)}")
    return tangents


def check_vjp(f: Callable, args: tuple, eps: float, rtol: float, atol=None, seed: int = 0):
    """``<u, J v>`` (finite differences) against ``<vjp(u), v>`` (funcgrad), random u, v."""
    rng = np.random.default_rng(seed + 1)
    out, vjp_fun = fg.vjp(f, *args)
    cts = tree_util.tree_map(lambda x: _rand_like(rng, x), out)
    tangents = tree_util.tree_map(lambda x: _rand_like(rng, x), args)
    cts_in = vjp_fun(cts)
    lhs = _vdot(tree_util.tree_leaves(cts_in), tree_util.tree_leaves(tangents))
    fd = numerical_jvp(f, args, tangents, eps)
    rhs = _vdot(tree_util.tree_leaves(cts), fd)
    for c, a in zip(tree_util.tree_leaves(cts_in), tree_util.tree_leaves(args), strict=False):
        assert np.shape(c) == np.shape(a), "vjp: cotangent shape differs from its primal"
    scale = max(
        1.0,
        sum(abs(float(np.sum(np.abs(x)))) for x in tree_util.tree_leaves(cts_in)),
    )
    tol = atol if atol is not None else rtol * scale
    np.testing.assert_allclose(lhs, rhs, rtol=rtol, atol=tol, err_msg="vjp vs finite differences")


def check_grads(
    f: Callable,
    args: Sequence[Any],
    order: int,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Check funcgrad's derivatives of ``f`` at ``args`` up to ``order`` against central
    finite differences, in forward (``"fwd"``) and/or reverse (``"rev"``) mode.

    ``args`` is a tuple of arrays (or pytrees of them); float leaves are converted to
    float64 first. ``f`` may return an array or a pytree of arrays (non-float output
    leaves are ignored).
    """
    args = tuple(tree_util.tree_map(_to_f64, tuple(args)))
    dtype = np.dtype(np.float64)
    eps = _DEFAULT_EPS[dtype] if eps is None else eps
    rtol = _DEFAULT_RTOL[dtype] if rtol is None else rtol
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"check_grads: unknown mode {m!r}; use 'fwd' and/or 'rev'")
    _check_grads(f, args, order, tuple(modes), eps, rtol, atol, seed=0)


def _check_grads(f, args, order, modes, eps, rtol, atol, seed):
    if order <= 0:
        return
    if "fwd" in modes:
        tangents = check_jvp(f, args, eps, rtol, atol, seed)
        if order > 1:

            def f_jvp(primals, tangents_):
                return fg.jvp(f, primals, tangents_)

            _check_grads(f_jvp, (args, tangents), order - 1, ("fwd",), eps, rtol, atol, seed + 7)
    if "rev" in modes:
        check_vjp(f, args, eps, rtol, atol, seed)
        if order > 1:
            rng = np.random.default_rng(seed + 3)
            out = f(*args)
            cts = tree_util.tree_map(lambda x: _rand_like(rng, x), out)

            def f_vjp(*primals):
                _, vjp_fun = fg.vjp(f, *primals)
                return vjp_fun(cts)

            _check_grads(f_vjp, args, order - 1, ("rev",), eps, rtol, atol, seed + 11)
