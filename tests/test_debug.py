"""funcgrad.debug.print / debug.callback: concrete values eagerly and under grad, vmap, jit."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import debug


def _f(seen):
    def f(x):
        y = fnp.sin(x)
        debug.callback(lambda v: seen.append(("y", v)), y)
        debug.callback(lambda s, scale: seen.append(("s", s * scale)), fnp.sum(y), scale=2)
        return fnp.sum(y * y)

    return f


X = np.array([0.1, 0.2, 0.3], np.float32)


@pytest.mark.parametrize("mode", ["eager", "grad", "jit", "jit_grad"])
def test_callback_sees_concrete_values(mode):
    seen = []
    f = _f(seen)
    run = {
        "eager": f,
        "grad": fg.grad(f),
        "jit": fg.jit(f),
        "jit_grad": fg.jit(fg.grad(f)),
    }[mode]
    out = run(X)
    expected = 2 * np.sin(X) * np.cos(X) if "grad" in mode else np.sum(np.sin(X) ** 2)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert [k for k, _ in seen] == ["y", "s"]
    for _k, v in seen:
        assert isinstance(v, np.ndarray | np.generic) and not isinstance(v, fg.core.Tracer)
    np.testing.assert_allclose(seen[0][1], np.sin(X), rtol=1e-6)
    np.testing.assert_allclose(seen[1][1], 2 * np.sum(np.sin(X)), rtol=1e-6)


def test_jit_calls_every_time_from_the_kernel():
    seen = []
    f = fg.jit(_f(seen))
    f(X)
    f(2 * X)
    np.testing.assert_allclose(seen[2][1], np.sin(2 * X), rtol=1e-6)
    assert len(seen) == 4
    assert "fg_debug_callback" in f.lower(X).as_text()  # called from inside the kernel


@pytest.mark.parametrize("jit", [False, True])
def test_vmap_calls_once_per_example(jit):
    seen = []
    xs = np.stack([X, 2 * X, 3 * X])
    f = fg.vmap(_f(seen), in_axes=0)
    (fg.jit(f) if jit else f)(xs)
    ys = [v for k, v in seen if k == "y"]
    assert len(ys) == 3
    for i in range(3):
        np.testing.assert_allclose(ys[i], np.sin(xs[i]), rtol=1e-6)


def test_print_formats_values(capsys):
    def f(x):
        debug.print("x = {}, total = {t:.2f}", x, t=fnp.sum(x))
        return x * 2

    x = np.array([1.0, 2.0])
    f(x)
    fg.jit(f)(x)
    out = capsys.readouterr().out.splitlines()
    assert out == ["x = [1. 2.], total = 3.00"] * 2


def test_unused_print_is_kept_and_shown_in_jaxpr(capsys):
    def f(x):
        debug.print("seen {}", x)
        return x + 1

    closed = fg.make_jaxpr(f)(np.ones(2))
    assert "debug_callback[callback=print]" in str(closed)
    fg.jit(f)(np.ones(2))
    assert capsys.readouterr().out == "seen [1. 1.]\n"


def test_errors():
    with pytest.raises(TypeError, match="format string"):
        debug.print(np.ones(2))
    with pytest.raises(TypeError, match="function"):
        debug.callback(3, np.ones(2))

    def boom(v):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        fg.jit(lambda x: (debug.callback(boom, x), x * 2)[1])(np.ones(2))


@pytest.mark.parametrize("jit", [False, True])
def test_inside_scan_and_cond(jit):
    from funcgrad import lax

    seen = []

    def f(x):
        def body(c, xi):
            debug.callback(lambda a, b: seen.append((float(a), float(b))), c, xi)
            return c + xi, c * xi

        c, _ = lax.scan(body, 0.0, x)
        return lax.cond(c > 0, lambda v: (debug.callback(seen.append, v), v)[1], lambda v: -v, c)

    run = fg.jit(f) if jit else f
    assert float(run(np.arange(3.0))) == 3.0
    assert seen[:3] == [(0.0, 0.0), (0.0, 1.0), (1.0, 2.0)]  # carry and element, in order
    assert len(seen) == 4 and float(seen[3]) == 3.0  # the taken branch only
