"""Weak types: a Python scalar passed to jit/make_jaxpr/vmap promotes as it does eagerly."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import core
from funcgrad.ir import check_jaxpr


def scale(x, s):
    return x * s


def sgd(x, lr):
    return x - lr * x


def eval_jaxpr_dtype(f, *args):
    closed = fg.make_jaxpr(f)(*args)
    check_jaxpr(closed.jaxpr)
    return closed.jaxpr.outvars[0].aval.dtype


@pytest.mark.parametrize("f", [scale, sgd])
@pytest.mark.parametrize("s", [0.1, np.float64(0.1)])
def test_python_float_argument_promotes_like_eager(f, s):
    x = np.ones(3, np.float32)
    want = f(x, s).dtype
    assert want == (np.float32 if type(s) is float else np.float64)
    assert fg.jit(f)(x, s).dtype == want
    assert eval_jaxpr_dtype(f, x, s) == want
    assert fg.vmap(f, in_axes=(0, None))(x, s).dtype == want
    np.testing.assert_allclose(fg.jit(f)(x, s), f(x, s), rtol=1e-6)


def test_int32_plus_python_int_stays_int32():
    x = np.arange(3, dtype=np.int32)
    f = fg.jit(lambda a, b: a + b)
    assert f(x, 1).dtype == np.int32
    assert eval_jaxpr_dtype(lambda a, b: a + b, x, 1) == np.int32
    assert f(x, np.int64(1)).dtype == np.int64


def test_jit_cache_distinguishes_weak_and_strong_scalars():
    x = np.ones(3, np.float32)
    f = fg.jit(scale)
    assert f(x, 2.0).dtype == np.float32
    assert f(x, np.float64(2.0)).dtype == np.float64
    assert f(x, 2.0).dtype == np.float32
    assert len(f._cache) == 2
    assert f(x, 3.0).dtype == np.float32
    assert len(f._cache) == 2


def test_weak_avals():
    a = core.get_aval(1.0)
    assert a.weak_type and a.strip().weak_type
    assert not core.get_aval(np.float64(1.0)).weak_type
    assert core.ShapedArray((), np.float64, True) != core.ShapedArray((), np.float64)
    assert hash(core.ShapedArray((), np.float64, True)) == hash(
        core.ShapedArray((), np.float64, True)
    )
    # Weakness survives ops on weak operands only.
    closed = fg.make_jaxpr(lambda s, t: (s * t, -s))(2.0, 3.0)
    assert all(v.aval.weak_type for v in closed.jaxpr.outvars)
    closed = fg.make_jaxpr(lambda s, t: s * t)(2.0, np.float64(3.0))
    assert not closed.jaxpr.outvars[0].aval.weak_type


def adam_like(x, lr):
    # Python arithmetic on the traced scalar before it meets the array: still weak.
    return x - (lr * 2) * x / (1.0 - lr) + (3 - lr) ** 2


def int_offset(x, n):
    return x + (n + 1) * 2


@pytest.mark.parametrize(
    "f, x, s",
    [
        (adam_like, np.ones(3, np.float32), 0.1),
        (int_offset, np.arange(3, dtype=np.int32), 3),
        (int_offset, np.arange(3, dtype=np.int16), 3),
    ],
)
def test_arithmetic_on_weak_scalars_stays_weak(f, x, s):
    want = f(x, s)  # eager: Python arithmetic on Python scalars, then NEP 50
    assert eval_jaxpr_dtype(f, x, s) == want.dtype
    got = fg.jit(f)(x, s)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # Under grad and vmap of jit too.
    if x.dtype.kind == "f":
        g = fg.grad(lambda x: fg.jit(f)(x, s).sum())(x)
        assert g.dtype == x.dtype
        v = fg.vmap(fg.jit(f), in_axes=(0, None))(np.stack([x, x]), s)
        assert v.dtype == x.dtype


def test_weak_scalar_with_a_strong_array_is_strong():
    # A traced Python float meeting a float64 array gives float64, as eagerly.
    f = lambda s: np.ones(2) * (s * 2)
    assert fg.jit(f)(0.5).dtype == np.float64
