"""jit and the numba backend: composition, fusion plans, caches, errors, and every
primitive's lowering against eager evaluation.

numba compiles are slow, so kernels are shared: the lowering test compiles one kernel per
spec family and dtype (all of that family's cases side by side), and tests/conftest.py
points FUNCGRAD_CACHE_DIR at a folder that persists across runs.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import core
from funcgrad.backend.numba import lower, lowering
from funcgrad.errors import ConcretizationTypeError, LoweringError
from funcgrad.interpreters.jit import Executable
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from tests.test_primitives import CASE_DTYPES, _make

# ----------------------------------------------------------------------------------------
# Every primitive lowers, and agrees with eager evaluation


def test_every_primitive_has_a_lowering():
    missing = [n for n in sorted(core.primitives) if not lowering.has_lowering(n)]
    assert not missing, f"primitives without a numba lowering: {missing}"


def _family(case) -> str:
    return case.make.__module__.rsplit(".", 1)[-1]


_GROUP = 40  # cases per kernel: bounds the compile time of one kernel


def _groups():
    groups: dict[tuple, list] = {}
    for case, dtype in CASE_DTYPES:
        groups.setdefault((_family(case), dtype.name), []).append(case)
    out = {}
    for (fam, dt), cases in groups.items():
        for i in range(0, len(cases), _GROUP):
            out[(fam, dt, i // _GROUP)] = cases[i : i + _GROUP]
    return out


GROUPS = _groups()
GROUP_OF = {(c.id, dt): key for key, cs in GROUPS.items() for c in cs for dt in [key[1]]}


def _case_fun(case, params):
    prim = core.primitives[case.prim]

    def f(*args):
        out = prim.bind(*args, **params)
        return list(out) if prim.multiple_results else [out]

    return f


def _compiled(cases, dtype):
    """One kernel computing every case of ``cases``; returns per-case outputs."""
    operands = [_make(c, dtype) for c in cases]
    funs = [_case_fun(c, c.get_params(dtype)) for c in cases]
    counts = [len(a) for a in operands]
    flat = [x for args in operands for x in args]
    n_outs: list[int] = []

    def all_cases(*xs):
        outs, i = [], 0
        n_outs.clear()
        for f, n in zip(funs, counts, strict=True):
            o = f(*xs[i : i + n])
            n_outs.append(len(o))
            outs += o
            i += n
        return outs

    closed = trace_to_jaxpr(all_cases, [core.shaped_aval(x) for x in flat])
    lowered = lower(closed, "cases")
    res = Executable(lowered, lowered.compile()).call_flat(flat)
    per_case, i = [], 0
    for n in n_outs:
        per_case.append(res[i : i + n])
        i += n
    return per_case


@functools.cache
def _group_result(key):
    fam, dt, _ = key
    cases = GROUPS[key]
    dtype = np.dtype(dt)
    try:
        outs = _compiled(cases, dtype)
        return {c.id: o for c, o in zip(cases, outs, strict=True)}
    except LoweringError:
        # Localize the failure: one kernel per case.
        result = {}
        for c in cases:
            try:
                result[c.id] = _compiled([c], dtype)[0]
            except LoweringError as e:
                result[c.id] = e
        return result


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-6, "atol": 1e-9}


# Ordered by kernel group, so that pytest-xdist hands a group's cases to one worker (which
# compiles that group's kernel once) instead of every worker compiling every group.
LOWERING_CASES = sorted(
    CASE_DTYPES, key=lambda cd: list(GROUPS).index(GROUP_OF[(cd[0].id, cd[1].name)])
)


@pytest.mark.parametrize(
    "case,dtype", LOWERING_CASES, ids=[f"{c.id}-{d.name}" for c, d in LOWERING_CASES]
)
def test_lowering_matches_eager(case, dtype):
    got = _group_result(GROUP_OF[(case.id, dtype.name)])[case.id]
    if isinstance(got, Exception):
        raise got
    prim = core.primitives[case.prim]
    args = _make(case, dtype)
    expected = prim.impl(*args, **case.get_params(dtype))
    expected = list(expected) if prim.multiple_results else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        e = np.asarray(e)
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, equal_nan=True, **_tol(e.dtype))
        else:
            np.testing.assert_array_equal(g, e)


# ----------------------------------------------------------------------------------------
# Composition: f, jit(f), jit(jit(f)), grad(jit(f)), jit(grad(f)), vmap(jit(f)), jit(vmap(f))


def _chain(x):
    return fnp.sum(fnp.sin(x) * fnp.exp(-x * x) + fnp.tanh(x))


def _layer(params, x):
    return fnp.sum(fnp.tanh(x @ params["w"] + params["b"]) ** 2)


def _logsumexp(x):
    m = fnp.max(x, axis=-1, keepdims=True)
    return fnp.sum(fnp.log(fnp.sum(fnp.exp(x - m), axis=-1)) + m[..., 0])


def _slices(x):
    return fnp.sum(x[1:] * x[:-1]) + fnp.sum(fnp.concatenate([x, x[::-1] * 2.0]) ** 2)


RNG = np.random.default_rng(0)
FUNS = {
    "chain": (_chain, lambda: (RNG.standard_normal(7),)),
    "layer": (
        _layer,
        lambda: (
            {"w": RNG.standard_normal((3, 2)), "b": RNG.standard_normal(2)},
            RNG.standard_normal((4, 3)),
        ),
    ),
    "logsumexp": (_logsumexp, lambda: (RNG.standard_normal((3, 5)),)),
    "slices": (_slices, lambda: (RNG.standard_normal(6),)),
}


def _batched(args, n=3):
    """A batch of ``n`` argument tuples along a new leading axis of every leaf."""
    return fg.tree_util.tree_map(lambda a: np.stack([a * (1 + 0.1 * i) for i in range(n)]), args)


def _close(a, b):
    fg.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9), a, b)


TRANSFORMS = {
    "jit": (lambda f: fg.jit(f), lambda f: f),
    "jit_jit": (lambda f: fg.jit(fg.jit(f)), lambda f: f),
    "grad_jit": (lambda f: fg.grad(fg.jit(f)), lambda f: fg.grad(f)),
    "jit_grad": (lambda f: fg.jit(fg.grad(f)), lambda f: fg.grad(f)),
    "value_and_grad_jit": (lambda f: fg.value_and_grad(fg.jit(f)), lambda f: fg.value_and_grad(f)),
    "jit_grad_jit": (lambda f: fg.jit(fg.grad(fg.jit(f))), lambda f: fg.grad(f)),
}
BATCHED = {
    "vmap_jit": (lambda f: fg.vmap(fg.jit(f)), lambda f: fg.vmap(f)),
    "jit_vmap": (lambda f: fg.jit(fg.vmap(f)), lambda f: fg.vmap(f)),
    "vmap_grad_jit": (lambda f: fg.vmap(fg.grad(fg.jit(f))), lambda f: fg.vmap(fg.grad(f))),
}


@pytest.mark.parametrize("t", list(TRANSFORMS))
@pytest.mark.parametrize("name", list(FUNS))
def test_composition(name, t):
    f, make = FUNS[name]
    args = make()
    transformed, reference = TRANSFORMS[t]
    _close(transformed(f)(*args), reference(f)(*args))


@pytest.mark.parametrize("t", list(BATCHED))
@pytest.mark.parametrize("name", list(FUNS))
def test_batched_composition(name, t):
    f, make = FUNS[name]
    args = _batched(make())
    transformed, reference = BATCHED[t]
    _close(transformed(f)(*args), reference(f)(*args))


def test_jvp_of_jit():
    x, t = RNG.standard_normal(7), RNG.standard_normal(7)
    _close(fg.jvp(fg.jit(_chain), (x,), (t,)), fg.jvp(_chain, (x,), (t,)))


def test_second_order_through_jit():
    x = RNG.standard_normal(4)
    _close(
        fg.grad(lambda x: fnp.sum(fg.grad(fg.jit(_chain))(x)))(x),
        fg.grad(lambda x: fnp.sum(fg.grad(_chain)(x)))(x),
    )


def test_jit_closes_over_outer_tracer():
    # jit inside grad, closing over the differentiated value.
    g = fg.grad(lambda x: fg.jit(lambda y: x * y)(np.float64(2.0)))(3.0)
    np.testing.assert_allclose(g, 2.0)


def test_staged_jit_prints_as_equation():
    text = str(fg.make_jaxpr(fg.jit(fnp.sin))(np.ones(3, np.float32)))
    assert "jit[" in text and "name=sin" in text and "sin" in text


def test_float32_stays_float32():
    x = np.random.default_rng(1).standard_normal(8).astype(np.float32)
    f = lambda x: fnp.exp(-x * x) * 2.0 + fnp.sum(fnp.tanh(x))
    out = fg.jit(f)(x)
    assert out.dtype == np.float32
    # (the sum accumulates in float64 in the kernel: an ulp of it is the absolute floor)
    np.testing.assert_allclose(out, f(x), rtol=1e-5, atol=1e-6)
    assert fg.jit(fg.grad(lambda x: fnp.sum(f(x))))(x).dtype == np.float32


# ----------------------------------------------------------------------------------------
# Fusion, read off the plan


def test_elementwise_chain_is_one_loop_without_temporaries():
    def chain10(x):
        y = fnp.sin(x)
        y = y * 2.0
        y = y + 1.0
        y = fnp.exp(y)
        y = -y
        y = fnp.cos(y)
        y = y * x
        y = y - 0.5
        y = fnp.tanh(y)
        return fnp.abs(y)

    x = np.linspace(-1, 1, 400).reshape(20, 20)
    lowered = fg.jit(chain10).lower(x)
    assert len(lowered.jaxpr.eqns) == 10
    plan = lowered.plan
    assert len(plan.loop_nests) == 1 and len(plan.steps) == 1
    assert plan.temporaries == []
    # One loop over all 64 elements (the 8x8 axes collapse), its size read from the input.
    text = lowered.as_text()
    assert "range((N0 * N0)):" in text and "range(N0)" not in text


def test_reduction_fuses_with_producers():
    plan = fg.jit(lambda x: fnp.sum(fnp.exp(x - 1.0) * 2.0, axis=1)).lower(np.ones((4, 5))).plan
    assert len(plan.steps) == 1 and plan.temporaries == []


def test_views_are_read_in_place():
    # transpose, broadcasting, slicing and reversal are index maps, not copies.
    f = lambda x, y: x.T * y[None, ::-1] + x.T[:, :1]
    x, y = np.ones((3, 4)), np.arange(3.0)
    lowered = fg.jit(f).lower(x, y)
    assert len(lowered.plan.steps) == 1 and lowered.plan.temporaries == []
    np.testing.assert_array_equal(fg.jit(f)(x, y), f(x, y))


def test_source_is_readable():
    text = fg.jit(lambda x: fnp.sin(x) * 2.0).lower(np.ones(20, np.float32)).as_text()
    assert "def " in text and "# b:f32[N0] = sin a" in text and "N0 = a.shape[0]" in text
    assert "np.float32(2.0)" in text  # typed literal: float32 stays float32


# ----------------------------------------------------------------------------------------
# Caches and dispatch


def test_one_compile_per_signature():
    jf = fg.jit(lambda x, y: x * y + 1.0)
    a, b = np.ones(3), np.ones(3)
    jf(a, b)
    jf(a + 1, b)
    assert len(jf._cache) == 1
    jf(np.ones(4), np.ones(4))
    jf(np.ones(3, np.float32), np.ones(3, np.float32))
    jf((a,)[0], b)
    assert len(jf._cache) == 3


def test_static_args():
    def f(x, n, mode="sum"):
        y = x
        for _ in range(n):
            y = y * 2.0
        return fnp.sum(y) if mode == "sum" else y

    jf = fg.jit(f, static_argnums=1, static_argnames="mode")
    x = np.ones(3)
    assert jf(x, 2) == 12.0 and jf(x, 2) == 12.0 and jf(x, 3) == 24.0
    assert len(jf._cache) == 2
    np.testing.assert_array_equal(jf(x, 1, mode="all"), 2 * x)
    np.testing.assert_array_equal(jf(x, n=1, mode="all"), 2 * x)
    assert fg.jit(lambda x, f: f(x), static_argnums=1)(x, fnp.sin).shape == (3,)


def test_unhashable_static_arg_is_a_clear_error():
    jf = fg.jit(lambda x, shape: x.reshape(shape), static_argnums=1)
    with pytest.raises(ValueError, match="static argument 1 .*unhashable.*list.*tuple"):
        jf(np.ones(6), [2, 3])
    assert jf(np.ones(6), (2, 3)).shape == (2, 3)


def test_python_control_flow_on_traced_value_names_the_argument():
    def f(x, y):
        return x if y > 0 else -x

    with pytest.raises(ConcretizationTypeError, match="argument y.*static_argnums"):
        fg.jit(f)(np.ones(2), 1.0)


def test_results_are_fresh_arrays():
    a = np.arange(4.0)
    outs = fg.jit(lambda x: (x, x, x.reshape(2, 2)))(a)
    for o in outs:
        assert not np.shares_memory(o, a) and o.flags.writeable
    assert not np.shares_memory(outs[0], outs[1])


def test_argument_kinds():
    jf = fg.jit(lambda x, y: x * y)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(jf(x[:, ::2], 2.0), x[:, ::2] * 2.0)  # non-contiguous
    np.testing.assert_array_equal(jf(x, np.float64(3.0)), x * 3.0)  # NumPy scalar
    np.testing.assert_array_equal(jf([1.0, 2.0], 2), np.array([2.0, 4.0]))  # list, int
    assert fg.jit(lambda x: None)(x) is None
    out = fg.jit(lambda d: {"s": d["a"] + d["b"], "t": (d["a"],)})({"a": x, "b": 1.0})
    np.testing.assert_array_equal(out["s"], x + 1.0)
    np.testing.assert_array_equal(out["t"][0], x)


def test_lower_and_compile():
    f = fg.jit(lambda x: fnp.cos(x) + 1.0)
    x = np.ones(5, np.float32)
    compiled = f.lower(x).compile()
    np.testing.assert_allclose(compiled(x), np.cos(x) + 1.0)
    assert "def " in compiled.as_text()
    with pytest.raises(TypeError, match="lowered for"):
        compiled(np.ones(6, np.float32))


def test_jit_as_decorator_and_method():
    class Model:
        scale = 3.0

        @functools.partial(fg.jit, static_argnums=0)  # self is static (hashable)
        def apply(self, x):
            return x * self.scale

    np.testing.assert_array_equal(Model().apply(np.ones(2)), np.full(2, 3.0))

    @fg.jit
    def g(x):
        return x + 1

    assert g.__name__ == "g"


def test_lowering_error_names_the_primitive(monkeypatch):
    # A rule that emits code numba cannot type must surface as a LoweringError that names
    # the primitive, its shapes and dtypes, never as a numba traceback.
    monkeypatch.setitem(lowering.ELEMENTWISE, "sin", lambda ctx, x: f"np.not_a_function({x})")
    with pytest.raises(LoweringError, match=r"'sin' \(f32\[3\] -> f32\[3\]\)") as info:
        fg.jit(lambda x: fnp.sin(x) + 1.0)(np.ones(3, np.float32))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unsupported_dtype_is_a_lowering_error():
    with pytest.raises(LoweringError, match="'add'.*f16"):
        fg.jit(lambda x: x + 1)(np.ones(3, np.float16))


_CACHE_SCRIPT = textwrap.dedent(
    """
    import json, numpy as np, funcgrad as fg, funcgrad.numpy as fnp
    from funcgrad.backend.numba import compile as c
    f = fg.jit(lambda x: fnp.sum(fnp.sin(x) * 2.0))
    x = np.linspace(0, 1, 5)
    out = [float(f(x)), fg.grad(f)(x).tolist()]
    kernels = list(c._kernels.values())
    print(json.dumps({
        "out": out,
        "kernels": len(kernels),
        "from_disk": [k.from_disk for k in kernels],
        "misses": sum(sum(k.dispatcher.stats.cache_misses.values()) for k in kernels),
    }))
    """
)


def test_disk_cache_second_process_compiles_nothing(tmp_path):
    env = {**os.environ, "FUNCGRAD_CACHE_DIR": str(tmp_path / "cache")}

    def run():
        proc = subprocess.run(
            [sys.executable, "-c", _CACHE_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first["kernels"] == second["kernels"] >= 2
    assert not any(first["from_disk"]) and first["misses"] >= first["kernels"]
    assert all(second["from_disk"]) and second["misses"] == 0
    assert first["out"] == second["out"]
    assert len(list((tmp_path / "cache").glob("k_*.py"))) == first["kernels"]


_THREADS_SCRIPT = textwrap.dedent(
    """
    import os, numpy as np, funcgrad as fg, funcgrad.numpy as fnp

    def f(x, y):
        return fnp.sin(x) * y + fnp.sum(fnp.exp(-x * x), axis=1, keepdims=True)

    x = np.random.default_rng(0).standard_normal((64, 50)).astype(np.float32)
    y = np.linspace(0, 1, 50, dtype=np.float32)
    serial = fg.jit(f)(x, y)
    os.environ["FUNCGRAD_NUM_THREADS"] = "2"
    os.environ["FUNCGRAD_PARALLEL_MIN_WORK"] = "1"
    jf = fg.jit(f)
    assert "prange(" in jf.lower(x, y).as_text()
    assert np.array_equal(jf(x, y), serial), "threads changed the result"
    print("ok")
    """
)


def test_threads_give_the_serial_result(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FUNCGRAD_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_weight_gradient_is_written_in_place():
    # grad of x @ w w.r.t. w is transpose(dot(g, x)); folded into one dot, it needs no copy.
    x, w = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2))
    lowered = fg.jit(fg.grad(lambda w, x: fnp.sum(fnp.tanh(x @ w)))).lower(w, x)
    copies = [m for n in lowered.plan.loop_nests for m in n.members if m.name == "copy"]
    assert not copies
    prims = [e.primitive.name for e in lowered.lowering.jaxpr.eqns]
    assert "transpose" not in prims


# ----------------------------------------------------------------------------------------
# Large outputs: caller-allocated and recycled (funcgrad/backend/numba/buffers.py)


def _large_chain(x):
    return fnp.sin(x) * fnp.exp(-x * x) + fnp.tanh(x), fnp.sum(x)


def test_large_outputs_are_caller_allocated_and_recycled():
    from funcgrad.backend.numba import buffers
    from funcgrad.backend.numba.codegen import CALLER_ALLOC_MIN_BYTES

    n = CALLER_ALLOC_MIN_BYTES // 4 + 3  # just over the threshold, float32
    x = np.linspace(-3.0, 3.0, n, dtype=np.float32)
    x_before = x.copy()
    f = fg.jit(_large_chain)
    text = f.lower(x).as_text()
    entry = [line for line in text.splitlines() if line.startswith("def ")][-1]
    assert entry.endswith("_buf0):"), entry  # the result is a parameter; the sum is not
    want = np.sin(x) * np.exp(-x * x) + np.tanh(x)
    y1, s1 = f(x)
    np.testing.assert_allclose(y1, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s1, x.astype(np.float64).sum(), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(x, x_before)  # the input is untouched
    assert not np.shares_memory(y1, x)
    assert y1.base is not None and not y1.flags.owndata  # a view of a pooled block
    # While y1 (or anything derived from it) lives, its memory is never handed out again.
    view = y1[10:20]
    blocks = [id(y1.base)]  # ids: a reference would keep the block busy
    del y1
    y2, _ = f(x)
    assert not np.shares_memory(view, y2)
    np.testing.assert_allclose(view, want[10:20], rtol=1e-5, atol=1e-6)
    # Once every reference is gone, the block is reused (no fresh pages to fault in).
    blocks.append(id(y2.base))
    del view, y2
    y3, _ = f(x)
    assert id(y3.base) in blocks
    np.testing.assert_allclose(y3, want, rtol=1e-5, atol=1e-6)
    # A result fed back in is an input: the output gets another block.
    y4, _ = f(y3)
    assert not np.shares_memory(y4, y3)
    np.testing.assert_allclose(
        y4, np.sin(y3) * np.exp(-y3 * y3) + np.tanh(y3), rtol=1e-5, atol=1e-6
    )
    buffers.clear()
    assert buffers.pool.held == 0


def test_output_pool_budget_zero_gives_fresh_arrays():
    from funcgrad.backend.numba.buffers import OutputPool

    pool = OutputPool(0)
    a = pool.empty((1 << 20,), np.dtype(np.float32))
    assert a.flags.owndata and pool.held == 0
    pool = OutputPool(1 << 30)
    blocks = [pool.empty((1 << 20,), np.dtype(np.float32)) for _ in range(6)]
    # At most BLOCKS_PER_SHAPE blocks per shape are pooled; busy ones are never shared.
    assert sum(not b.flags.owndata for b in blocks) == 4
    assert len({id(b.base) for b in blocks if b.base is not None}) == 4


def test_large_temporaries_come_from_the_pool():
    from funcgrad.backend.numba import buffers
    from funcgrad.backend.numba.codegen import CALLER_ALLOC_MIN_BYTES

    n = CALLER_ALLOC_MIN_BYTES // 4 + 5
    key = fg.random.key(3)
    f = fg.jit(lambda k: fg.random.uniform(k, (n,), np.float32))
    entry = [line for line in f.lower(key).as_text().splitlines() if line.startswith("def ")][-1]
    assert entry.count("_buf") >= 3, entry  # counters, Threefry words, the result
    want = fg.random.uniform(key, (n,), np.float32)  # eager: its own fused kernel
    buffers.clear()
    got = [f(key) for _ in range(3)]  # the results stay alive: each gets its own block
    for g in got:
        np.testing.assert_array_equal(g, want)
    assert not np.shares_memory(got[0], got[1]) and not np.shares_memory(got[1], got[2])
    held = buffers.pool.held
    del got
    for _ in range(3):
        np.testing.assert_array_equal(f(key), want)
    assert buffers.pool.held == held  # temporaries and results were recycled


def test_sin_range_check_of_a_computed_argument_runs_before_the_nest():
    # The check of sin(3x)'s argument is recomputed in its own loop (the main loop then has
    # no reduction and vectorizes); an exp argument is not recomputed (too costly).
    x = np.linspace(-4, 4, 64, dtype=np.float32)
    f = fg.jit(lambda x: fnp.sin(3 * x) * 2 + fnp.cos(fnp.exp(x)))
    text = f.lower(x).as_text()
    assert "|= np.int32(np.abs((np.float32(3.0) * a[" in text
    assert "+= np.abs(exp_f32(" in text
    y = x.copy()
    y[3] = 3e7  # beyond the polynomial's range: the libm rerun
    with np.errstate(all="ignore"):
        for v in (x, y):
            want = np.sin(3 * v) * 2 + np.cos(np.exp(v))
            np.testing.assert_allclose(f(v), want, rtol=1e-5, atol=2e-5)


# ----------------------------------------------------------------------------------------
# Regressions: long chains, exact integer division


@pytest.mark.parametrize("n", [200, 1000])
def test_long_elementwise_chain_compiles(n):
    """A chain of n fused adds is one nest; the inlined expression is cut into locals
    (Python's parser refuses ~200 nested parentheses)."""

    def f(x):
        for _ in range(n):
            x = x + 1.0
        return x

    x = np.linspace(-1.0, 1.0, 7)
    expected = x.copy()
    for _ in range(n):
        expected = expected + 1.0
    np.testing.assert_array_equal(fg.jit(f)(x), expected)


_INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _int_grid(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of the dtype's extremes, small values of both signs and zero."""
    info = np.iinfo(dtype)
    vals = {info.min, info.min + 1, -7, -3, -1, 0, 1, 2, 3, 7, info.max - 1, info.max}
    vals = np.array(sorted(v for v in vals if info.min <= v <= info.max), dtype)
    a, b = np.meshgrid(vals, vals)
    return a.ravel(), b.ravel()


@pytest.mark.parametrize("dtype", _INT_DTYPES)
def test_integer_floor_division_and_remainder_are_exact(dtype):
    """``//`` and ``%`` stay in integers (uint64/int64 extremes exact), with NumPy's
    semantics for negative operands and 0 for division by zero."""
    import warnings

    a, b = _int_grid(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns on // 0 and overflow
        expected = [a // b, a % b]
    for f, want in zip([lambda a, b: a // b, lambda a, b: a % b], expected, strict=True):
        got = fg.jit(f)(a, b)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_lax_integer_div_and_rem_truncate_toward_zero():
    """lax.div/rem on integers: C semantics (truncation, sign of x), 0 for a zero divisor;
    the reference is Python's exact integer arithmetic."""
    a, b = _int_grid("int64")
    got_q = fg.jit(lambda a, b: fg.lax.div(a, b))(a, b)
    got_r = fg.jit(lambda a, b: fg.lax.rem(a, b))(a, b)
    for x, y, q, r in zip(a.tolist(), b.tolist(), got_q.tolist(), got_r.tolist(), strict=True):
        if y == 0:
            want_q = want_r = 0
        else:
            want_q = abs(x) // abs(y) * (1 if (x < 0) == (y < 0) else -1)
            want_r = x - want_q * y
        want_q = (want_q + 2**63) % 2**64 - 2**63  # INT_MIN / -1 wraps
        assert (q, r) == (want_q, want_r), (x, y)
    u = np.array([2**64 - 1], np.uint64)
    seven = np.array([7], np.uint64)
    assert fg.jit(lambda a, b: a // b)(u, seven)[0] == 2635249153387078802
