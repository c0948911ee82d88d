"""Generated code that is cheap for numba to compile: BLAS through the fg_gemm/fg_gemv
helpers (every operand layout), loops instead of slice assignments, and large kernels split
into chunk functions. Results are checked against eager evaluation; timings are not tested
(see benchmarks/jit_compile_time.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import funcgrad as fg
from funcgrad import lax

# (lhs shape, rhs shape, ((lhs contracting, rhs contracting), (lhs batch, rhs batch))),
# all with M*N*K above DOT_BLAS_MIN so they take the BLAS path.
DOTS = [
    ((20, 30), (30, 40), (((1,), (0,)), ((), ()))),  # plain gemm
    ((30, 20), (30, 40), (((0,), (0,)), ((), ()))),  # lhs transposed in place
    ((20, 30), (40, 30), (((1,), (1,)), ((), ()))),  # rhs transposed in place
    ((30, 20), (40, 30), (((0,), (1,)), ((), ()))),  # both transposed
    ((64, 80), (80,), (((1,), (0,)), ((), ()))),  # gemv
    ((80, 64), (80,), (((0,), (0,)), ((), ()))),  # gemv, transposed matrix
    ((80,), (80, 64), (((0,), (0,)), ((), ()))),  # vector @ matrix
    ((80,), (64, 80), (((0,), (1,)), ((), ()))),  # vector @ transposed matrix
    ((5000,), (5000,), (((0,), (0,)), ((), ()))),  # a dot product (M = N = 1)
    ((3, 16, 20), (3, 20, 24), (((2,), (1,)), ((0,), (0,)))),  # batched
    ((16, 3, 20), (20, 3, 24), (((2,), (0,)), ((1,), (1,)))),  # batched, copies
    ((4, 8, 30), (8, 30, 20), (((1, 2), (0, 1)), ((), ()))),  # two contracting axes
    ((8, 30, 40), (8, 30, 20), (((0, 1), (0, 1)), ((), ()))),  # transposed, two axes
    ((8, 40, 30), (8, 30, 20), (((0, 2), (0, 1)), ((), ()))),  # needs a permuted copy
    ((8, 9, 60), (9, 8, 60), (((0, 1), (1, 0)), ((), ()))),  # contracting order differs
    ((9, 8), (8, 9, 60), (((1, 0), (0, 1)), ((), ()))),  # vector in another order
    ((1, 64, 1, 80), (80, 1, 70), (((3,), (0,)), ((), ()))),  # unit axes
]


def _operands(dtype, rng):
    out = []
    for ls, rs, _ in DOTS:
        a = rng.standard_normal(ls)
        b = rng.standard_normal(rs)
        if np.dtype(dtype).kind == "c":
            a = a + 1j * rng.standard_normal(ls)
            b = b + 1j * rng.standard_normal(rs)
        out.append((a.astype(dtype), b.astype(dtype)))
    return out


def _dots(ops):
    return [lax.dot_general(a, b, dims) for (a, b), (_, _, dims) in zip(ops, DOTS, strict=True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_blas_dot_general_layouts_match_eager(dtype):
    ops = _operands(dtype, np.random.default_rng(0))
    got = fg.jit(_dots)(ops)
    want = _dots(ops)
    tol = 2e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.shape == w.shape and g.dtype == w.dtype, i
        scale = max(1.0, float(np.max(np.abs(w))))
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale, err_msg=f"case {i}")


def test_blas_dot_uses_the_helpers_not_np_dot():
    a = np.ones((64, 128), np.float32)
    b = np.ones((128, 16), np.float32)
    text = fg.jit(lambda a, b: (a @ b, a.T @ a, a @ b[:, 0])).lower(a, b).as_text()
    assert "fg_gemm(" in text and "fg_gemv(" in text
    assert "np.dot(" not in text


def _code(text: str) -> list[str]:
    """The source's code lines (not the jaxpr header or comments)."""
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


_SLICE_ASSIGN = re.compile(r"\[[^\]]*:[^\]]*\]\s*=[^=]")


def test_concatenate_pad_and_updates_assign_with_loops():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)

    def f(x):
        c = lax.concatenate([x, x * 2.0, x[:, :1]], 1)
        p = lax.pad(x, np.float32(-1.0), ((0, 0, 0), (1, 2, 1), (0, 0, 0)))
        q = lax.pad(x, np.float32(0.0), ((0, 0, 0), (0, 0, 0), (0, 0, 0)))
        u = lax.dynamic_update_slice(x, x[:1, :2] + 1.0, (1, 1, 0))
        s = lax.dynamic_slice(x, (0, 1, 2), (2, 2, 2))
        return c, p, q, u, s

    text = fg.jit(f).lower(x).as_text()
    bad = [ln for ln in _code(text) if _SLICE_ASSIGN.search(ln)]
    assert not bad, bad
    for g, w in zip(fg.jit(f)(x), f(x), strict=True):
        np.testing.assert_array_equal(g, w)


def test_scan_stacks_outputs_with_loops():
    xs = np.arange(30, dtype=np.float32).reshape(5, 2, 3)

    def f(xs):
        def body(c, x):
            return c + x, (c * x, c.sum())

        return lax.scan(body, np.zeros((2, 3), np.float32), xs)

    text = fg.jit(f).lower(xs).as_text()
    bad = [ln for ln in _code(text) if re.search(r"\]\s*=\s*y\d*\s*$", ln)]
    assert not bad, bad
    got, want = fg.jit(f)(xs), f(xs)
    for g, w in zip(fg.tree_util.tree_leaves(got), fg.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_long_functions_are_split_into_chunks(monkeypatch):
    from funcgrad.backend.numba import codegen

    monkeypatch.setattr(codegen, "SPLIT_MIN_LINES", 12)
    monkeypatch.setattr(codegen, "CHUNK_LINES", 10)
    big = np.linspace(-1.0, 1.0, 1 << 20, dtype=np.float32).reshape(1024, 1024)
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 10.0

    def f(x, big):
        ys = []
        for j in range(6):
            x = lax.tanh(x) * lax.reduce_sum(x, (0,)) + np.float32(j)
            ys.append(x)
        # an input returned as is, a caller-allocated (4 MiB) result, a scalar
        return x, ys[2], big, big * 2.0, lax.reduce_sum(ys[1], (0, 1))

    text = fg.jit(f).lower(x, big).as_text()
    parts = re.findall(r"^def (\w+_part\d+)\(", text, re.M)
    assert len(parts) >= 2, text
    got, want = fg.jit(f)(x, big), f(x, big)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert got[2] is not big and not np.shares_memory(got[2], big)
