"""Linear algebra side by side, single-threaded: funcgrad (eager and jit) vs NumPy/SciPy
and JAX (when installed), in one process.

    python benchmarks/linalg_bench.py [--quick] [--repeat 7]

Workloads:

- ``chol_solve``: ``cho_solve(cho_factor(K), y)`` for a 500x500 SPD ``K`` (value);
- ``chol_solve_grad``: the gradient of ``y . K^-1 y + log det K`` with respect to ``K``
  (SciPy: the closed form ``-a a^T + K^-1`` through ``cho_solve``; the others by AD);
- ``eigh_batched``: eigenvalues and eigenvectors of 64 symmetric 32x32 matrices;
- ``rfft_filter``: ``irfft(rfft(x) * h)`` over 64 signals of 4096 samples (funcgrad's
  kernel calls NumPy's pocketfft through ``numba.objmode``: this line is that call-out's
  cost against NumPy running the same transforms directly).

Times are the best of ``repeat`` calls after a warm-up call (which compiles); each line
prints the ratio ``other / funcgrad-jit`` (> 1: funcgrad is faster).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.run import pin_threads  # noqa: E402

if __name__ == "__main__":
    pin_threads(1)

import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402


def _best(fn, args, repeat):
    out = fn(*args)  # warm-up (compiles)
    _block(out)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _block(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def _block(out):
    for leaf in out if isinstance(out, (tuple, list)) else (out,):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()


def _workloads(n: int, batch: int, m: int):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    k = a @ a.T / n + np.eye(n)
    y = rng.standard_normal(n)
    s = rng.standard_normal((batch, m, m))
    sym = (s + np.swapaxes(s, -1, -2)) / 2
    sig = rng.standard_normal((64, 4096))
    h = np.exp(-np.linspace(0, 8, 2049))
    return k, y, sym, sig, h


def _funcgrad(k, y):
    import funcgrad as fg
    import funcgrad.numpy as fnp
    import funcgrad.scipy.linalg as fsla

    def solve(k, y):
        return fsla.cho_solve(fsla.cho_factor(k, lower=True), y)

    def objective(k, y):
        c, low = fsla.cho_factor(k, lower=True)
        alpha = fsla.cho_solve((c, low), y)
        return fnp.dot(y, alpha) + 2 * fnp.sum(fnp.log(fnp.diagonal(c)))

    def eigh(x):
        return tuple(fnp.linalg.eigh(x))

    def rfft_filter(x, h):
        return fnp.fft.irfft(fnp.fft.rfft(x) * h, 4096)

    grad = fg.grad(objective)
    return {
        "chol_solve": (solve, fg.jit(solve)),
        "chol_solve_grad": (grad, fg.jit(grad)),
        "eigh_batched": (eigh, fg.jit(eigh)),
        "rfft_filter": (rfft_filter, fg.jit(rfft_filter)),
    }


def _scipy():
    def solve(k, y):
        return sla.cho_solve(sla.cho_factor(k, lower=True), y)

    def grad(k, y):
        c = sla.cho_factor(k, lower=True)
        alpha = sla.cho_solve(c, y)
        kinv = sla.cho_solve(c, np.eye(len(y)))
        return -np.outer(alpha, alpha) + kinv

    def eigh(x):
        return np.linalg.eigh(x)

    def rfft_filter(x, h):
        return np.fft.irfft(np.fft.rfft(x) * h, 4096)

    return {
        "chol_solve": solve,
        "chol_solve_grad": grad,
        "eigh_batched": eigh,
        "rfft_filter": rfft_filter,
    }


def _jax():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.scipy.linalg as jsla

    def solve(k, y):
        return jsla.cho_solve(jsla.cho_factor(k, lower=True), y)

    def objective(k, y):
        c, low = jsla.cho_factor(k, lower=True)
        alpha = jsla.cho_solve((c, low), y)
        return jnp.dot(y, alpha) + 2 * jnp.sum(jnp.log(jnp.diagonal(c)))

    def eigh(x):
        return tuple(jnp.linalg.eigh(x))

    def rfft_filter(x, h):
        return jnp.fft.irfft(jnp.fft.rfft(x) * h, 4096)

    return {
        "chol_solve": jax.jit(solve),
        "chol_solve_grad": jax.jit(jax.grad(objective)),
        "eigh_batched": jax.jit(eigh),
        "rfft_filter": jax.jit(rfft_filter),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    repeat = 3 if args.quick else args.repeat
    k, y, sym, sig, h = _workloads(500, 64, 32)
    inputs = {
        "chol_solve": (k, y),
        "chol_solve_grad": (k, y),
        "eigh_batched": (sym,),
        "rfft_filter": (sig, h),
    }
    fg_fns = _funcgrad(k, y)
    sp_fns = _scipy()
    jx_fns = _jax()
    # Check the answers agree before timing them.
    for name, (_, jitted) in fg_fns.items():
        ref = sp_fns[name](*inputs[name])
        got = jitted(*inputs[name])
        if name == "eigh_batched":  # eigenvector signs may differ: compare the values
            ref, got = ref[0], got[0]
        elif name == "chol_solve_grad":
            got = (np.asarray(got) + np.asarray(got).T) / 2  # AD's gradient is symmetrized
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-6, atol=1e-8)
    print(f"single-threaded, best of {repeat}; ratio = other / funcgrad-jit (> 1: funcgrad faster)")
    header = f"{'workload':18s}{'fg-jit ms':>11s}{'fg-eager':>11s}{'numpy/scipy':>13s}"
    header += f"{'jax':>11s}" if jx_fns else "   (jax not installed)"
    print(header)
    for name, (eager, jitted) in fg_fns.items():
        a = inputs[name]
        t_jit = _best(jitted, a, repeat)
        t_eager = _best(eager, a, repeat)
        t_sp = _best(sp_fns[name], a, repeat)
        line = f"{name:18s}{t_jit * 1e3:11.3f}{t_eager / t_jit:10.2f}x{t_sp / t_jit:12.2f}x"
        if jx_fns:
            t_jx = _best(jx_fns[name], a, repeat)
            line += f"{t_jx / t_jit:10.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
