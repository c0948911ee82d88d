"""jit and the numba backend: composition, fusion plans, caches, errors, and every
primitive's lowering against eager evaluation.

numba compiles are slow, so kernels are shared: the lowering test compiles one kernel per
spec family and dtype (all of that family's cases side by side), and tests/conftest.py
points FUNCGRAD_CACHE_DIR at a folder that persists across runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from functools import lru_cache

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import core, lax
from funcgrad.backend.numba import lower, lowering
from funcgrad.errors import ConcretizationTypeError, LoweringError
from funcgrad.interpreters.jit import Executable, jit_p
from funcgrad.interpreters.partial_eval import trace_to_jaxpr
from tests.test_primitives import CASE_DTYPES, CASES, _make

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
        for f, n in zip(funs, counts):
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


@lru_cache(maxsize=None)
def _group_result(key):
    fam, dt, _ = key
    cases = GROUPS[key]
    dtype = np.dtype(dt)
    try:
        outs = _compiled(cases, dtype)
        return {c.id: o for c, o in zip(cases, outs)}
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


@pytest.mark.parametrize("case,dtype", CASE_DTYPES, ids=[f"{c.id}-{d.name}" for c, d in
                                                        CASE_DTYPES])
def test_lowering_matches_eager(case, dtype):
    got = _group_result(GROUP_OF[(case.id, dtype.name)])[case.id]
    if isinstance(got, Exception):
        raise got
    prim = core.primitives[case.prim]
    args = _make(case, dtype)
    expected = prim.impl(*args, **case.get_params(dtype))
    expected = list(expected) if prim.multiple_results else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.shape == e.shape and g.dtype == e.dtype, (g.shape, g.dtype, e.shape, e.dtype)
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, equal_nan=True, **_tol(e.dtype))
        else:
            np.testing.assert_array_equal(g, e)
