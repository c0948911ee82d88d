"""Elementwise primitives: unary and binary math.

Each primitive is one block: definition (impl + abstract eval + batching via the family
helper), then its jvp and, for linear ones, its transpose. Binary operands share a dtype
and broadcast by NumPy's rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.core import get_aval
from funcgrad.interpreters import ad
from funcgrad.interpreters.ad import defjvp, defjvp2
from funcgrad.lax._base import NUMBER, standard_naryop, standard_unop


def unbroadcast(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to ``shape``: the transpose of NumPy broadcasting."""
    from funcgrad.lax.reductions import reduce_sum
    from funcgrad.lax.shape import reshape

    xshape = get_aval(x).shape
    if xshape == shape:
        return x
    lead = len(xshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and xshape[lead + i] != 1
    )
    if axes:
        x = reduce_sum(x, axes)
    if get_aval(x).shape != shape:
        x = reshape(x, shape)
    return x


def _bcast_to(g: Any, ans_like: Any) -> Any:
    """Broadcast a tangent of one operand to the output's shape."""
    from funcgrad.lax.shape import broadcast_to

    shape = get_aval(ans_like).shape
    return g if get_aval(g).shape == shape else broadcast_to(g, shape)


# -- neg
neg_p = standard_unop("neg", np.negative, NUMBER)


def neg(x: Any) -> Any:
    """Elementwise negation."""
    return neg_p.bind(x)


ad.deflinear(neg_p, lambda ct, x: [neg(ct)])

# -- sin
sin_p = standard_unop("sin", np.sin)


def sin(x: Any) -> Any:
    """Elementwise sine."""
    return sin_p.bind(x)


defjvp(sin_p, lambda g, x: mul(g, cos(x)))

# -- cos
cos_p = standard_unop("cos", np.cos)


def cos(x: Any) -> Any:
    """Elementwise cosine."""
    return cos_p.bind(x)


defjvp(cos_p, lambda g, x: neg(mul(g, sin(x))))

# -- exp
exp_p = standard_unop("exp", np.exp)


def exp(x: Any) -> Any:
    """Elementwise ``e**x``."""
    return exp_p.bind(x)


defjvp2(exp_p, lambda g, ans, x: mul(g, ans))

# -- add
add_p = standard_naryop("add", np.add)


def add(x: Any, y: Any) -> Any:
    """Elementwise ``x + y`` (same dtype; shapes broadcast)."""
    return add_p.bind(x, y)


def _add_jvp(primals, tangents):
    x, y = primals
    ans = add(x, y)
    tx, ty = tangents
    if type(tx) is not ad.Zero:
        tx = _bcast_to(tx, ans)
    if type(ty) is not ad.Zero:
        ty = _bcast_to(ty, ans)
    return ans, ad.add_tangents(tx, ty)


def _add_transpose(ct, x, y):
    return [
        unbroadcast(ct, x.aval.shape) if ad.is_undefined_primal(x) else None,
        unbroadcast(ct, y.aval.shape) if ad.is_undefined_primal(y) else None,
    ]


ad.primitive_jvps[add_p] = _add_jvp
ad.primitive_transposes[add_p] = _add_transpose

# -- sub
sub_p = standard_naryop("sub", np.subtract)


def sub(x: Any, y: Any) -> Any:
    """Elementwise ``x - y``."""
    return sub_p.bind(x, y)


def _sub_jvp(primals, tangents):
    x, y = primals
    ans = sub(x, y)
    tx, ty = tangents
    if type(tx) is not ad.Zero:
        tx = _bcast_to(tx, ans)
    if type(ty) is not ad.Zero:
        ty = _bcast_to(neg(ty), ans)
    return ans, ad.add_tangents(tx, ty)


def _sub_transpose(ct, x, y):
    return [
        unbroadcast(ct, x.aval.shape) if ad.is_undefined_primal(x) else None,
        unbroadcast(neg(ct), y.aval.shape) if ad.is_undefined_primal(y) else None,
    ]


ad.primitive_jvps[sub_p] = _sub_jvp
ad.primitive_transposes[sub_p] = _sub_transpose

# -- mul
mul_p = standard_naryop("mul", np.multiply)


def mul(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``."""
    return mul_p.bind(x, y)


def _mul_transpose(ct, x, y):
    if ad.is_undefined_primal(x):
        return [unbroadcast(mul(ct, y), x.aval.shape), None]
    return [None, unbroadcast(mul(x, ct), y.aval.shape)]


defjvp(mul_p, lambda g, x, y: mul(g, y), lambda g, x, y: mul(x, g))
ad.primitive_transposes[mul_p] = _mul_transpose
