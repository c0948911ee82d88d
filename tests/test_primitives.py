"""The registry-driven primitive test: every primitive, every rule, against outside references.

Cases come from ``tests/specs/*.py`` (see ``tests/specs/__init__.py``). For each primitive in
``funcgrad.core.primitives`` this checks impl (vs NumPy), abstract eval (vs impl), jvp (vs
finite differences, to second order), transpose (dot-product identity) and batching (vs a
Python loop). ``test_rule_coverage`` fails when a primitive lacks a case or a rule.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

import funcgrad
import funcgrad.lax  # noqa: F401
from funcgrad import core
from funcgrad.core import shaped_aval
from funcgrad.interpreters import ad, batching
from tests import specs
from tests.specs import Case

# Higher-order primitives (they carry jaxprs or functions) are checked in their own modules;
# the lowering of every primitive, higher-order ones included, is checked in test_jit.py.
HIGHER_ORDER = {
    "jit": "tests/test_jit.py",
    "custom_jvp_call": "tests/test_autodiff.py",
    "custom_vjp_call": "tests/test_autodiff.py",
    "custom_lin": "tests/test_autodiff.py",
    "checkpoint": "tests/test_autodiff.py",
    "remat": "tests/test_autodiff.py",
    "cond": "tests/test_control_flow.py",
    "while": "tests/test_control_flow.py",
    "scan": "tests/test_control_flow.py",
}


def _load_cases() -> list[Case]:
    cases: list[Case] = []
    for info in pkgutil.iter_modules(specs.__path__):
        mod = importlib.import_module(f"tests.specs.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
    return cases


CASES = _load_cases()
CASE_DTYPES = [(c, np.dtype(d)) for c in CASES for d in c.dtypes]


def _ids(items):
    return [f"{c.id}-{d.name}" for c, d in items]


def _make(case: Case, dtype: np.dtype, seed: int = 0) -> tuple:
    return tuple(case.make(np.random.default_rng(seed), dtype))


def _tols(case: Case, dtype: np.dtype) -> dict:
    lo = dtype == np.float32
    rtol = case.rtol if case.rtol is not None else (2e-5 if lo else 1e-10)
    atol = case.atol if case.atol is not None else (2e-6 if lo else 1e-12)
    return {"rtol": rtol, "atol": atol}


def _assert_same(out, expected, case, dtype, what):
    out_list = list(out) if isinstance(out, (list, tuple)) else [out]
    exp_list = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    assert len(out_list) == len(exp_list), f"{case.id} {what}: number of outputs"
    for o, e in zip(out_list, exp_list, strict=True):
        o, e = np.asarray(o), np.asarray(e)
        assert o.shape == e.shape, f"{case.id} {what}: shape {o.shape} != {e.shape}"
        assert o.dtype == e.dtype, f"{case.id} {what}: dtype {o.dtype} != {e.dtype}"
        if o.dtype.kind in "fc":
            np.testing.assert_allclose(o, e, equal_nan=True, **_tols(case, dtype), err_msg=what)
        else:
            np.testing.assert_array_equal(o, e, err_msg=what)


def _prim(case: Case) -> core.Primitive:
    assert case.prim in core.primitives, f"spec names unknown primitive {case.prim!r}"
    return core.primitives[case.prim]


# ----------------------------------------------------------------------------------------
# impl and abstract eval


@pytest.mark.parametrize("case,dtype", CASE_DTYPES, ids=_ids(CASE_DTYPES))
def test_impl(case: Case, dtype: np.dtype) -> None:
    prim = _prim(case)
    args = _make(case, dtype)
    copies = [np.array(a, copy=True) for a in args]
    params = case.get_params(dtype)
    out = prim.impl(*args, **params)
    expected = case.ref(*copies, **params)
    _assert_same(out, expected, case, dtype, "impl vs reference")
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c, err_msg=f"{case.id}: impl mutated an input")
    for o in out if prim.multiple_results else [out]:
        for a in args:
            if isinstance(o, np.ndarray) and isinstance(a, np.ndarray):
                assert not np.shares_memory(o, a), f"{case.id}: result aliases an input"


@pytest.mark.parametrize("case,dtype", CASE_DTYPES, ids=_ids(CASE_DTYPES))
def test_abstract_eval(case: Case, dtype: np.dtype) -> None:
    prim = _prim(case)
    args = _make(case, dtype)
    params = case.get_params(dtype)
    out = prim.impl(*args, **params)
    avals = prim.abstract_eval(*map(shaped_aval, args), **params)
    outs = out if prim.multiple_results else [out]
    avals = avals if prim.multiple_results else [avals]
    for o, a in zip(outs, avals, strict=True):
        assert a.shape == np.shape(o) and a.dtype == np.asarray(o).dtype, (
            f"{case.id}: abstract eval {a.str_short()} vs impl {np.asarray(o).dtype}{np.shape(o)}"
        )


# ----------------------------------------------------------------------------------------
# jvp (finite differences), transpose (dot-product identity)


def _diff_argnums(case: Case, args: tuple) -> tuple[int, ...]:
    if case.diff is not None:
        return case.diff
    return tuple(i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f")


JVP_CASES = [c for c in CASES if np.float64 in [np.dtype(d) for d in c.dtypes]]


@pytest.mark.parametrize("case", JVP_CASES, ids=[c.id for c in JVP_CASES])
def test_jvp(case: Case) -> None:
    from tests.helpers import check_grads

    prim = _prim(case)
    args = _make(case, np.dtype(np.float64))
    argnums = _diff_argnums(case, args)
    if not argnums:
        pytest.skip("no differentiable operand")
    assert prim in ad.primitive_jvps, f"{prim} has no jvp rule"
    params = case.get_params(np.dtype(np.float64))

    def f(*diff_args):
        full = list(args)
        for i, x in zip(argnums, diff_args, strict=True):
            full[i] = x
        return prim.bind(*full, **params)

    check_grads(f, tuple(args[i] for i in argnums), order=case.grad_order, modes=("fwd",))


@pytest.mark.parametrize("case", JVP_CASES, ids=[c.id for c in JVP_CASES])
def test_jvp_keeps_dtype(case: Case) -> None:
    """A float32 primal gets a float32 tangent."""
    prim = _prim(case)
    if np.float32 not in [np.dtype(d) for d in case.dtypes]:
        pytest.skip("no float32 variant")
    args = _make(case, np.dtype(np.float32))
    argnums = _diff_argnums(case, args)
    if not argnums:
        pytest.skip("no differentiable operand")
    params = case.get_params(np.dtype(np.float32))
    tangents = [
        np.ones_like(a) if i in argnums else ad.Zero.from_value(a) for i, a in enumerate(args)
    ]

    def f(*a):
        out = prim.bind(*a, **params)
        return list(out) if prim.multiple_results else [out]

    outs, t_outs = ad.jvp_flat(f, list(args), tangents)
    for o, t in zip(outs, t_outs, strict=True):
        if type(t) is not ad.Zero and np.asarray(o).dtype.kind == "f":
            assert np.asarray(t).dtype == np.asarray(o).dtype


TRANSPOSE_CASES = [(c, g) for c in CASES for g in c.linear]


@pytest.mark.parametrize(
    "case,group", TRANSPOSE_CASES, ids=[f"{c.id}-{g}" for c, g in TRANSPOSE_CASES]
)
def test_transpose(case: Case, group: tuple[int, ...]) -> None:
    prim = _prim(case)
    assert prim in ad.primitive_transposes, f"{prim} is linear but has no transpose rule"
    dtype = np.dtype(np.float64)
    args = _make(case, dtype)
    params = case.get_params(dtype)
    rng = np.random.default_rng(1)
    xs = list(args)
    for i in group:
        xs[i] = _random_like(rng, args[i])
    ax = prim.impl(*xs, **params)
    ax_list = list(ax) if prim.multiple_results else [ax]
    ys = [_random_like(rng, o) for o in ax_list]
    undefined = [ad.UndefPrimal(shaped_aval(a)) if i in group else a for i, a in enumerate(args)]
    ct = ys if prim.multiple_results else ys[0]
    cts = ad.primitive_transposes[prim](ct, *undefined, **params)
    # Complex values pair as Re(sum(a * b)), under which JAX's transposes are adjoints.
    lhs = sum(_pair(o, y) for o, y in zip(ax_list, ys, strict=True))
    rhs = 0.0
    for i in group:
        c = cts[i]
        if c is None or type(c) is ad.Zero:
            continue
        assert np.shape(c) == np.shape(args[i]), f"{case.id}: cotangent shape for operand {i}"
        rhs += _pair(xs[i], c)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-8, atol=1e-8)


def _random_like(rng: np.random.Generator, x) -> np.ndarray:
    dtype = np.asarray(x).dtype
    shape = np.shape(x)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _pair(a, b) -> float:
    return float(np.real(np.sum(np.asarray(a, np.complex128) * np.asarray(b, np.complex128))))


# ----------------------------------------------------------------------------------------
# batching (vs a Python loop)

BATCH = 3


def _batch_configs(args: tuple) -> list[tuple[str, list[int | None]]]:
    n = len(args)
    ndims = [np.ndim(a) for a in args]
    configs = [
        ("first", [0] * n),
        ("last", list(ndims)),
        ("middle", [d // 2 for d in ndims]),
    ]
    if n > 1:
        for i in range(n):
            dims = [0] * n
            dims[i] = None
            configs.append((f"unbatched{i}", dims))
    return configs


BATCH_CASES = [(c, np.dtype(c.dtypes[-1])) for c in CASES if c.batch]


@pytest.mark.parametrize("case,dtype", BATCH_CASES, ids=_ids(BATCH_CASES))
def test_batch(case: Case, dtype: np.dtype) -> None:
    prim = _prim(case)
    assert prim in batching.primitive_batchers, f"{prim} has no batching rule"
    params = case.get_params(dtype)
    samples = [_make(case, dtype, seed) for seed in range(BATCH)]
    for label, dims in _batch_configs(samples[0]):
        batched = [
            samples[0][i] if d is None else np.stack([s[i] for s in samples], axis=d)
            for i, d in enumerate(dims)
        ]
        outs = batching.vmap_flat(
            lambda *a: (
                list(prim.bind(*a, **params))
                if prim.multiple_results
                else [prim.bind(*a, **params)]
            ),
            dims,
            _out_axes(prim, samples[0], params),
            BATCH,
            batched,
        )
        per_example = []
        for b in range(BATCH):
            ex = [samples[0][i] if d is None else samples[b][i] for i, d in enumerate(dims)]
            r = prim.impl(*ex, **params)
            per_example.append(list(r) if prim.multiple_results else [r])
        expected = [np.stack([p[k] for p in per_example]) for k in range(len(per_example[0]))]
        _assert_same(outs, expected, case, dtype, f"batch {label} {dims}")


def _out_axes(prim, args, params):
    out = prim.impl(*args, **params)
    n = len(out) if prim.multiple_results else 1
    return [0] * n


# ----------------------------------------------------------------------------------------
# Coverage: every primitive has a case and every rule slot it needs


def _lowering_table():
    from funcgrad.backend.numba import lowering

    return lowering.LOWERINGS


def rule_table() -> dict[str, dict[str, bool]]:
    lowerings = _lowering_table()
    table = {}
    for name, prim in sorted(core.primitives.items()):
        table[name] = {
            "impl": prim.impl is not None,
            "abstract_eval": prim.abstract_eval is not None,
            "jvp": prim in ad.primitive_jvps,
            "transpose": prim in ad.primitive_transposes,
            "batch": prim in batching.primitive_batchers,
            "lower": name in lowerings,
        }
    return table


def test_rule_coverage(capsys) -> None:
    table = rule_table()
    with capsys.disabled():
        slots = ["impl", "abstract_eval", "jvp", "transpose", "batch", "lower"]
        header = f"{'primitive':24s}" + " ".join(f"{s:>13s}" for s in slots)
        print("\nprimitive rule slots:\n" + header)
        for name, row in table.items():
            print(f"{name:24s}" + " ".join(f"{'yes' if row[s] else '-':>13s}" for s in slots))
    covered = {c.prim for c in CASES}
    linear_cased = {c.prim for c in CASES if c.linear}
    problems = []
    for name, row in table.items():
        if name in HIGHER_ORDER:
            continue
        if name not in covered:
            problems.append(f"{name}: no spec case in tests/specs")
        for slot in ("impl", "abstract_eval", "jvp", "batch", "lower"):
            if not row[slot]:
                problems.append(f"{name}: missing {slot} rule")
        if row["transpose"] and name not in linear_cased:
            problems.append(f"{name}: has a transpose rule but no linear case to check it")
    assert not problems, "\n".join(problems)
