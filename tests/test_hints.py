"""Errors a newcomer meets first carry a hint that names the fix."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp


def test_traced_shape_suggests_static_argnums():
    with pytest.raises(TypeError, match="static_argnums") as info:
        fg.jit(lambda x, n: fnp.zeros(n) + x)(1.0, 3)
    assert "fnp.zeros" in str(info.value)
    with pytest.raises(TypeError, match="static_argnums"):
        fg.jit(lambda x, n: x.reshape(n, -1))(np.ones(6), 2)
    # and the suggested fix works
    out = fg.jit(lambda x, n: fnp.zeros(n) + x, static_argnums=1)(1.0, 3)
    np.testing.assert_array_equal(out, np.ones(3))


@pytest.mark.parametrize("transform", ["grad", "value_and_grad", "jit"])
def test_python_list_says_pass_an_array(transform):
    f = lambda x: fnp.sum(x**2)
    t = getattr(fg, transform)
    with pytest.raises(TypeError, match=r"got 'x' as a Python list.*np\.array") as info:
        t(f)([1.0, 2.0])
    assert "unsupported operand" in str(info.value)  # the original error is kept
    np.testing.assert_allclose(fg.grad(f)(np.array([1.0, 2.0])), [2.0, 4.0])


def test_vmap_hints():
    with pytest.raises(ValueError, match=r"'xs' as a Python list.*np\.array"):
        fg.vmap(lambda xs: xs * 2)([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"scale is a scalar.*in_axes=\(None, 0\)"):
        fg.vmap(lambda scale, x: scale * x)(2.0, np.ones(3))
    out = fg.vmap(lambda scale, x: scale * x, in_axes=(None, 0))(2.0, np.ones(3))
    np.testing.assert_array_equal(out, 2 * np.ones(3))
