"""Speed and accuracy of ``funcgrad.backend.numba.mathlib`` against NumPy, single thread.

    python benchmarks/mathlib_bench.py [--n 4194304] [--repeat 20] [--no-accuracy]

For each function and dtype it times, per element on ``n`` elements:

- ``mathlib``: a numba loop ``out[i] = f(x[i])`` calling the mathlib function,
- ``numba+libm``: the same loop calling ``np.<f>`` (what numba gives without mathlib: a
  scalar libm call per element, no SIMD),
- ``numpy``: the NumPy ufunc writing into a preallocated ``out`` (SciPy's ``expit`` and
  ``erf`` for logistic and erf),

and prints the ratios (``> 1``: mathlib is faster). A last line times the fused expression
``sin(x) * exp(-x*x) + tanh(x)`` on 10M float32 values as one numba loop against NumPy.

With accuracy on (the default) it also prints the largest error in ulps of mathlib and of
NumPy/SciPy on a sample spread over the whole float range plus the function's main
interval, against a long double reference (float64 for float32 erf, mpmath for float64
erf). The times are best-of-``repeat`` in interleaved rounds, so a busy machine slows all
columns alike; on a shared machine rerun before trusting a ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
from numba import njit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from funcgrad.backend.numba import mathlib

try:
    import scipy.special as _sc
except ImportError:  # pragma: no cover
    _sc = None

NAMES = ["exp", "expm1", "log", "log1p", "sin", "cos", "tanh", "logistic", "erf"]

# Typical inputs for timing (the functions are branch-free: the time does not depend on
# the values, except for denormal operands).
DOMAIN = {
    "exp": (-20.0, 20.0),
    "expm1": (-5.0, 5.0),
    "log": (1e-3, 1e3),
    "log1p": (-0.9, 1e3),
    "sin": (-100.0, 100.0),
    "cos": (-100.0, 100.0),
    "tanh": (-5.0, 5.0),
    "logistic": (-20.0, 20.0),
    "erf": (-4.0, 4.0),
}
# The interval sampled densely for accuracy (besides the whole float range).
ACC_DOMAIN = {
    "exp": {"float32": (-104.0, 89.0), "float64": (-746.0, 710.0)},
    "expm1": {"float32": (-18.0, 89.0), "float64": (-38.0, 710.0)},
    "log": {"float32": (0.0, 4.0), "float64": (0.0, 4.0)},
    "log1p": {"float32": (-1.0, 4.0), "float64": (-1.0, 4.0)},
    "sin": {"float32": (-(2.0**20), 2.0**20), "float64": (-(2.0**40), 2.0**40)},
    "cos": {"float32": (-(2.0**20), 2.0**20), "float64": (-(2.0**40), 2.0**40)},
    "tanh": {"float32": (-10.0, 10.0), "float64": (-20.0, 20.0)},
    "logistic": {"float32": (-104.0, 20.0), "float64": (-746.0, 40.0)},
    "erf": {"float32": (-5.0, 5.0), "float64": (-7.0, 7.0)},
}


def numpy_fn(name):
    if name == "logistic":
        return None if _sc is None else _sc.expit
    if name == "erf":
        return None if _sc is None else _sc.erf
    return getattr(np, name)


def _libm_loops():
    """numba loops over ``np.<f>``: scalar libm calls (numba has no ``erf`` on arrays and
    ``math.erf`` is the same libm call, so erf has no column)."""

    @njit
    def exp(x, out):
        for i in range(x.shape[0]):
            out[i] = np.exp(x[i])

    @njit
    def expm1(x, out):
        for i in range(x.shape[0]):
            out[i] = np.expm1(x[i])

    @njit
    def log(x, out):
        for i in range(x.shape[0]):
            out[i] = np.log(x[i])

    @njit
    def log1p(x, out):
        for i in range(x.shape[0]):
            out[i] = np.log1p(x[i])

    @njit
    def sin(x, out):
        for i in range(x.shape[0]):
            out[i] = np.sin(x[i])

    @njit
    def cos(x, out):
        for i in range(x.shape[0]):
            out[i] = np.cos(x[i])

    @njit
    def tanh(x, out):
        for i in range(x.shape[0]):
            out[i] = np.tanh(x[i])

    @njit
    def logistic(x, out):
        one = np.ones(1, x.dtype)[0]
        for i in range(x.shape[0]):
            out[i] = one / (one + np.exp(-x[i]))

    return {
        "exp": exp,
        "expm1": expm1,
        "log": log,
        "log1p": log1p,
        "sin": sin,
        "cos": cos,
        "tanh": tanh,
        "logistic": logistic,
        "erf": None,
    }


def make_loop(f):
    @njit
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return loop


def best_times(fns, repeat):
    """Best wall time of each callable, measured in interleaved rounds (a load spike then
    hits all of them alike); None entries give nan."""
    live = [f for f in fns if f is not None]
    for f in live:
        f()
    best = {id(f): float("inf") for f in live}
    for _ in range(repeat):
        for f in live:
            t0 = time.perf_counter()
            f()
            best[id(f)] = min(best[id(f)], time.perf_counter() - t0)
    return [best[id(f)] if f is not None else float("nan") for f in fns]


# --- accuracy ---------------------------------------------------------------------------

LD = np.longdouble


def reference(name, x):
    if name == "erf":
        if x.dtype == np.float32:
            return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(LD)
        try:
            import mpmath as mp
        except ImportError:  # libm's erf: within 1 ulp
            return np.vectorize(math.erf, otypes=[np.float64])(x).astype(LD)
        mp.mp.dps = 40
        return np.array(
            [LD(mp.nstr(mp.erf(float(v)), 25)) if np.isfinite(v) else LD(np.sign(v)) for v in x],
            dtype=LD,
        )
    xl = x.astype(LD)
    with np.errstate(all="ignore"):
        if name == "logistic":
            return LD(1) / (LD(1) + np.exp(-xl))
        return getattr(np, name)(xl)


def ulp_errors(y, ref, dtype):
    """|y - ref| in units of the last place of ref in ``dtype`` (denormal spacing below the
    normal range); 0 where both round to the same non-finite value, inf where one does."""
    info = np.finfo(dtype)
    p = info.nmant + 1
    emin = int(np.log2(info.smallest_subnormal))
    with np.errstate(all="ignore"):
        expected = ref.astype(dtype)
        _, e = np.frexp(ref)
        ulp = np.ldexp(LD(1), np.maximum(e.astype(np.int64) - p, emin))
        err = np.abs(y.astype(LD) - ref) / ulp
    special = ~np.isfinite(y) | ~np.isfinite(expected)
    same = (np.isnan(y) & np.isnan(expected)) | (y == expected)
    return np.where(special, np.where(same, 0.0, np.inf), err)


def accuracy_sample(name, dtype, n, rng):
    ity = np.int32 if dtype == np.float32 else np.int64
    top = int(np.array(np.inf, dtype=dtype).view(ity))
    whole = rng.integers(0, top, n, dtype=ity).view(dtype)  # log-uniform over the range
    whole = whole * rng.choice(np.array([-1, 1], dtype=dtype), n)
    lo, hi = ACC_DOMAIN[name][np.dtype(dtype).name]
    dense = rng.uniform(lo, hi, n).astype(dtype)
    x = np.concatenate([whole, dense])
    if name in ("sin", "cos"):
        x = x[np.abs(x) <= mathlib.SINCOS_MAX[np.dtype(dtype).name]]
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1 << 22)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--only", default=",".join(NAMES))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    libm = _libm_loops()
    names = args.only.split(",")
    print(f"n = {args.n}, best of {args.repeat}, single thread; times in ns per element")
    head = (
        f"{'function':9s} {'dtype':8s} {'mathlib':>8s} {'numba+libm':>10s} {'numpy':>8s}"
        f" {'vs libm':>8s} {'vs numpy':>8s}"
    )
    if not args.no_accuracy:
        head += f" {'ulp mathlib':>11s} {'ulp numpy':>9s}"
    print(head)
    for dtype in (np.float32, np.float64):
        dname = np.dtype(dtype).name
        for name in names:
            lo, hi = DOMAIN[name]
            x = rng.uniform(lo, hi, args.n).astype(dtype)
            out = np.empty_like(x)
            loop = make_loop(mathlib.MATH[(name, dname)])
            ref_fn = numpy_fn(name)
            lm = libm[name]
            fns = [
                lambda: loop(x, out),
                None if lm is None else (lambda: lm(x, out)),
                None if ref_fn is None else (lambda: ref_fn(x, out=out)),
            ]
            t_ml, t_libm, t_np = (t / args.n * 1e9 for t in best_times(fns, args.repeat))
            line = (
                f"{name:9s} {dname:8s} {t_ml:8.3f} {t_libm:10.3f} {t_np:8.3f}"
                f" {t_libm / t_ml:7.2f}x {t_np / t_ml:7.2f}x"
            )
            if not args.no_accuracy:
                m = 20000 if (name == "erf" and dtype == np.float64) else 1 << 19
                xs = accuracy_sample(name, dtype, m, rng)
                ys = np.empty_like(xs)
                loop(xs, ys)
                ref = reference(name, xs)
                err_ml = ulp_errors(ys, ref, dtype).max()
                err_np = float("nan")
                if ref_fn is not None:
                    with np.errstate(all="ignore"):
                        err_np = ulp_errors(ref_fn(xs), ref, dtype).max()
                line += f" {err_ml:11.3f} {err_np:9.3f}"
            print(line, flush=True)
    fused(max(3, args.repeat // 4))


@njit
def _fused_mathlib(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = mathlib.sin_f32(v) * mathlib.exp_f32(-v * v) + mathlib.tanh_f32(v)


@njit
def _fused_libm(x, out):
    for i in range(x.shape[0]):
        v = x[i]
        out[i] = np.sin(v) * np.exp(-v * v) + np.tanh(v)


def fused(repeat):
    x = np.random.default_rng(0).standard_normal(10_000_000).astype(np.float32)
    out = np.empty_like(x)
    fns = [
        lambda: _fused_mathlib(x, out),
        lambda: _fused_libm(x, out),
        lambda: np.sin(x) * np.exp(-x * x) + np.tanh(x),
    ]
    t_ml, t_libm, t_np = (t * 1e3 for t in best_times(fns, repeat))
    print(
        f"fused sin(x)*exp(-x*x)+tanh(x), 10M float32: mathlib {t_ml:.1f} ms, numba+libm"
        f" {t_libm:.1f} ms, numpy {t_np:.1f} ms: {t_np / t_ml:.2f}x numpy"
    )


if __name__ == "__main__":
    main()
