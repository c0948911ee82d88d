"""Shape-generic kernels: a new batch size regenerates the same source and reuses the
compiled kernel; a size that changes the plan recompiles and says why.

Compiles are counted through numba's one wrapper (``compile.njit``) and the identity of the
kernels ``compile_source`` returns, never by timing. Each model carries a constant of its
own so its kernel text is new to the process (the first signature must compile).
"""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import nn
from funcgrad.backend.numba import compile as nbcompile
from funcgrad.backend.numba import sizes


@pytest.fixture
def njit_calls(monkeypatch, tmp_path):
    """Count numba compiles (every kernel and sub-function goes through ``njit``); an
    empty disk cache so nothing loads from an earlier run."""
    monkeypatch.setenv("FUNCGRAD_CACHE_DIR", str(tmp_path))
    calls = []
    real = nbcompile.njit

    def counting(fn, **kw):
        calls.append(getattr(fn, "__name__", "?"))
        return real(fn, **kw)

    monkeypatch.setattr(nbcompile, "njit", counting)
    return calls


def _kernels(f, arg_sets):
    """The lowering and kernel of ``jit(f)`` for each argument set, and numba's compile count
    after each (``lower`` traces and generates source; ``compile`` hits the kernel table
    when the source was seen)."""
    out = []
    for args in arg_sets:
        lowering = fg.jit(f).lower(*args).lowering
        out.append((lowering, lowering.compile()))
    return out


# ----------------------------------------------------------------------------------------
# The seed MLP train step: Dense(10) -> relu -> Dense(1), MSE mean, Adam

LR = 1.25e-3
B1, B2, EPS = 0.9, 0.999, 1e-8


def _mlp_params(rng):
    return {
        "w1": (rng.standard_normal((3, 10)) / np.sqrt(3)).astype(np.float32),
        "b1": np.zeros(10, np.float32),
        "w2": (rng.standard_normal((10, 1)) / np.sqrt(10)).astype(np.float32),
        "b2": np.zeros(1, np.float32),
    }


def _mlp_loss(p, x, y):
    h = fnp.maximum(x @ p["w1"] + p["b1"], 0.0)
    return fnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)


def _adam_step(p, m, v, t, x, y):
    loss, g = fg.value_and_grad(_mlp_loss)(p, x, y)
    tm = fg.tree_util.tree_map
    m = tm(lambda m, g: B1 * m + (1 - B1) * g, m, g)
    v = tm(lambda v, g: B2 * v + (1 - B2) * g * g, v, g)
    c1, c2 = 1 - B1**t, 1 - B2**t
    p = tm(lambda p, m, v: p - LR * (m / c1) / (fnp.sqrt(v / c2) + EPS), p, m, v)
    return p, m, v, loss


def _adam_step_numpy(p, m, v, t, x, y):
    """The same step with a hand-written backward pass, in float64."""
    p64 = {k: a.astype(np.float64) for k, a in p.items()}
    z = x @ p64["w1"] + p64["b1"]
    h = np.maximum(z, 0)
    err = h @ p64["w2"] + p64["b2"] - y
    d = 2.0 * err / err.size
    dz = (d @ p64["w2"].T) * (z > 0)
    g = {"w1": x.T @ dz, "b1": dz.sum(0), "w2": h.T @ d, "b2": d.sum(0)}
    m = {k: B1 * m[k] + (1 - B1) * g[k] for k in p}
    v = {k: B2 * v[k] + (1 - B2) * g[k] ** 2 for k in p}
    c1, c2 = 1 - B1**t, 1 - B2**t
    new = {k: p64[k] - LR * (m[k] / c1) / (np.sqrt(v[k] / c2) + EPS) for k in p}
    return new, m, v, np.mean(err**2)


def test_mlp_train_step_compiles_once_for_three_batch_sizes(njit_calls):
    rng = np.random.default_rng(0)
    p = _mlp_params(rng)
    m = {k: np.zeros_like(a) for k, a in p.items()}
    v = {k: np.full_like(a, 0.01) for k, a in p.items()}
    t = np.float32(3.0)
    arg_sets = []
    for batch in (32, 17, 20):
        x = rng.standard_normal((batch, 3)).astype(np.float32)
        y = rng.standard_normal((batch, 1)).astype(np.float32)
        arg_sets.append((p, m, v, t, x, y))
    counts = []
    results = []
    for args in arg_sets:
        ((lowering, kernel),) = _kernels(_adam_step, [args])
        counts.append(len(njit_calls))
        results.append((lowering, kernel))
    assert counts[0] >= 1  # the first batch size compiled
    assert counts[1] == counts[0] and counts[2] == counts[0], counts  # the others did not
    kernels = {id(k) for _, k in results}
    assert len(kernels) == 1
    texts = {lw.as_text() for lw, _ in results}
    assert len(texts) == 1
    assert "range(32)" not in results[0][0].as_text()
    for args in arg_sets:
        got = fg.jit(_adam_step).lower(*args).compile()(*args)
        want = _adam_step_numpy(*args)
        for k in p:
            np.testing.assert_allclose(got[0][k], want[0][k], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[1][k], want[1][k], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got[2][k], want[2][k], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(got[3], want[3], rtol=1e-5)


def test_size_that_changes_the_plan_recompiles_and_says_why(njit_calls):
    """From M*N*K >= DOT_BLAS_MIN the product calls BLAS: another kernel, and the lowering
    names the decision."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 8)).astype(np.float32)

    def f(x):
        return fnp.tanh(x @ w) * 1.75

    small = [rng.standard_normal((n, 8)).astype(np.float32) for n in (20, 30)]
    large = [rng.standard_normal((n, 8)).astype(np.float32) for n in (300, 500)]
    got = _kernels(f, [(x,) for x in small + large])
    ids = [id(k) for _, k in got]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    assert any("inlined loops" in r and "DOT_BLAS_MIN" in r for r in got[0][0].specialized_on)
    assert any(" BLAS (" in r for r in got[2][0].specialized_on)
    for (_, kernel), x in zip(got, small + large, strict=True):
        np.testing.assert_allclose(kernel(w, x), np.tanh(x @ w) * 1.75, rtol=1e-5, atol=1e-6)


def test_sizes_below_sixteen_are_compiled_in_and_listed(njit_calls):
    """A short loop runs fastest with a constant trip count: a batch of 5 gets a kernel of
    its own (saying so), every size from 16 on shares one."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 4)).astype(np.float32)

    def f(x):
        return fnp.tanh(x @ w) * 1.8125

    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 20, 40)]
    got = _kernels(f, [(x,) for x in xs])
    ids = [id(k) for _, k in got]
    assert ids[0] != ids[1] and ids[1] == ids[2]
    assert any(r.startswith("input sizes below 16") and "5" in r for r in got[0][0].specialized_on)
    assert "range(5)" in got[0][0].as_text() or "5" in got[0][0].as_text()
    for (_, kernel), x in zip(got, xs, strict=True):
        np.testing.assert_allclose(kernel(w, x), np.tanh(x @ w) * 1.8125, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------
# A small CNN train step and a reduction-heavy model


def _cnn_loss(p, x, onehot):
    h = nn.relu(nn.conv2d(x, p["w"], padding="VALID") + p["b"])
    h = nn.max_pool(h, (2, 2), strides=(2, 2))
    logits = h.reshape(x.shape[0], -1) @ p["w2"] + p["b2"]
    return -(onehot * nn.log_softmax(logits)).sum(1).mean()


def _cnn_step(p, x, onehot):
    loss, g = fg.value_and_grad(_cnn_loss)(p, x, onehot)
    return fg.tree_util.tree_map(lambda a, b: a - 0.0625 * b, p, g), loss


def test_cnn_train_step_compiles_once_for_three_batch_sizes(njit_calls):
    rng = np.random.default_rng(2)
    p = {
        "w": (rng.standard_normal((3, 3, 1, 4)) * 0.3).astype(np.float32),
        "b": np.zeros(4, np.float32),
        "w2": (rng.standard_normal((4 * 4 * 4, 3)) * 0.1).astype(np.float32),
        "b2": np.zeros(3, np.float32),
    }
    arg_sets = []
    for batch in (17, 19, 21):
        x = rng.standard_normal((batch, 10, 10, 1)).astype(np.float32)
        onehot = np.eye(3, dtype=np.float32)[rng.integers(0, 3, batch)]
        arg_sets.append((p, x, onehot))
    got = _kernels(_cnn_step, arg_sets[:1])
    first = len(njit_calls)
    got += _kernels(_cnn_step, arg_sets[1:])
    assert first >= 1 and len(njit_calls) == first
    assert len({id(k) for _, k in got}) == 1
    for args in arg_sets:
        out = fg.jit(_cnn_step).lower(*args).compile()(*args)
        want = _cnn_step(*args)  # eager: the primitives' NumPy implementations
        for k in p:
            np.testing.assert_allclose(out[0][k], want[0][k], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(out[1], want[1], rtol=1e-5)


def _norm_stats(x, scale):
    """Layer-norm-like statistics: means and variances over rows, columns and everything."""
    mu = fnp.mean(x, axis=1, keepdims=True)
    var = fnp.mean((x - mu) ** 2, axis=1, keepdims=True)
    z = (x - mu) / fnp.sqrt(var + 1e-5) * scale
    col = fnp.mean(z, axis=0)
    return z, col, fnp.mean(x), fnp.max(x, axis=0), fnp.sum(x[::-1, 1:], axis=1)


def test_reductions_and_means_compile_once(njit_calls):
    rng = np.random.default_rng(3)
    scale = np.float64(1.375)
    arg_sets = [(rng.standard_normal((n, 6)), scale) for n in (19, 24, 33)]
    got = _kernels(_norm_stats, arg_sets[:1])
    first = len(njit_calls)
    got += _kernels(_norm_stats, arg_sets[1:])
    assert first >= 1 and len(njit_calls) == first
    assert len({id(k) for _, k in got}) == 1
    for (_, kernel), (x, s) in zip(got, arg_sets, strict=True):
        z, col, mean, mx, rsum = kernel(x, np.asarray(s))
        mu = x.mean(1, keepdims=True)
        want_z = (x - mu) / np.sqrt(x.var(1, keepdims=True) + 1e-5) * s
        np.testing.assert_allclose(z, want_z, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(col, want_z.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mean, x.mean(), rtol=1e-13)
        np.testing.assert_array_equal(mx, x.max(0))
        np.testing.assert_allclose(rsum, x[::-1, 1:].sum(1), rtol=1e-13)


def _dense_mean(w, x):
    return fnp.mean(fnp.tanh(x @ w) ** 2) * 1.0625


def test_mean_over_sizes_of_two_inputs_compiles_once(njit_calls):
    """The divisor of a mean over batch x features (a product of two inputs' sizes)."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    arg_sets = [(w, rng.standard_normal((n, 3)).astype(np.float32)) for n in (32, 17, 20)]
    got = _kernels(_dense_mean, arg_sets[:1])
    first = len(njit_calls)
    got += _kernels(_dense_mean, arg_sets[1:])
    assert first >= 1 and len(njit_calls) == first
    assert len({id(k) for _, k in got}) == 1
    for (_, kernel), (w_, x) in zip(got, arg_sets, strict=True):
        want = np.mean(np.tanh(x @ w_) ** 2) * 1.0625
        np.testing.assert_allclose(kernel(w_, x), want, rtol=1e-5)


# ----------------------------------------------------------------------------------------
# The size renderer


def test_dim_arithmetic_keeps_its_expression_and_value():
    n = sizes.Dim(32, "N0")
    m = sizes.Dim(10, "N1")
    for d, value, expr in [
        (n - 1, 31, "(N0 - 1)"),
        (1 + n, 33, "(N0 + 1)"),
        (n * m, 320, "(N0 * N1)"),
        (2 * n, 64, "(N0 * 2)"),
        (n * m // 4, 80, "((N0 * N1) // 4)"),
        (-n, -32, "(-N0)"),
        (7 - n, -25, "(7 - N0)"),
    ]:
        assert int(d) == value and str(d) == expr
        assert eval(expr, {"N0": 32, "N1": 10}) == value
    assert n * 1 is n and n + 0 is n and sizes.prod([n, 1, m]) == 320
    assert f"range({n})" == "range(N0)" and n == 32 and hash(n) == hash(32)


def test_literals_equal_to_a_size_are_written_from_it():
    table = sizes.Sizes()
    table.input_shape(0, (32, 10, 24))
    table.note_products()
    assert table.literal_form(32.0, np.float32) == "np.float32(N0)"
    assert table.literal_form(1 / 32, np.float32) == "np.float32(1.0 / N0)"
    assert table.literal_form(768, np.int64) == "np.int64((N0 * N1))"
    # sizes below 16 are compiled in, and products with them are written from the symbol
    assert table.literal_form(320, np.int64) == "np.int64((N0 * 10))"
    assert table.literal_form(1.0, np.float32) is None  # 0 and 1 stay literal
    assert table.literal_form(3.5, np.float64) is None


def test_scan_over_a_new_sequence_length_reuses_the_kernel(njit_calls):
    """The trip count is read from the stacked operand's shape."""

    def f(c, xs):
        def body(c, x):
            c = c * 0.625 + x
            return c, c * 2.0

        return fg.lax.scan(body, c, xs)

    rng = np.random.default_rng(4)
    arg_sets = [(np.zeros(4), rng.standard_normal((t, 4))) for t in (17, 21, 30)]
    got = _kernels(f, arg_sets[:1])
    first = len(njit_calls)
    got += _kernels(f, arg_sets[1:])
    assert first >= 1 and len(njit_calls) == first
    assert len({id(k) for _, k in got}) == 1
    for (_, kernel), (c, xs) in zip(got, arg_sets, strict=True):
        carry, ys = kernel(c, xs)
        want = []
        for x in xs:  # a Python loop is the reference
            c = c * 0.625 + x
            want.append(c * 2.0)
        np.testing.assert_allclose(carry, c, rtol=1e-14)
        np.testing.assert_allclose(ys, np.array(want), rtol=1e-14)


def test_caller_allocated_buffers_key_the_kernel(njit_calls):
    """Results of 4 MiB and more are allocated by the caller from the source's buffer
    shapes: two such sizes must not share a kernel (and each must be right)."""
    small = [np.linspace(0, 1, n, dtype=np.float32) for n in (1000, 3000)]
    large = [np.linspace(0, 1, n, dtype=np.float32) for n in (1 << 21, 3 << 20)]

    def f(x):
        return x * 2.5 + 1.0

    got = _kernels(f, [(x,) for x in small + large])
    ids = [id(k) for _, k in got]
    assert ids[0] == ids[1] and len({ids[0], ids[2], ids[3]}) == 3
    assert any("allocated by the caller" in r for r in got[2][0].specialized_on)
    assert got[0][0].specialized_on == []
    for (_, kernel), x in zip(got, small + large, strict=True):
        np.testing.assert_allclose(kernel(x), x * np.float32(2.5) + np.float32(1.0), rtol=1e-6)
