"""The tour: ``python -m funcgrad`` walks through what funcgrad does, with real output."""

from __future__ import annotations

import time

import numpy as np

import funcgrad as fg
import funcgrad.numpy as fnp


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def tour() -> None:
    print(f"funcgrad {fg.__version__}: composable grad, vmap and jit on NumPy and numba")

    section("1. An array function, its jaxpr, its value")

    def f(x):
        return fnp.sin(x) * 2.0

    x = np.linspace(0.0, 1.0, 3, dtype=np.float32)
    print(">>> def f(x): return fnp.sin(x) * 2.0")
    print(">>> fg.make_jaxpr(f)(x)")
    print(fg.make_jaxpr(f)(x))
    print(">>> f(x)")
    print(repr(f(x)))

    if hasattr(fg, "grad"):
        section("2. grad: derivatives as IR transformations")

        def loss(w):
            return fnp.sum(fnp.tanh(w) ** 2)

        w = np.array([0.5, -1.0, 2.0])
        print(">>> loss = lambda w: fnp.sum(fnp.tanh(w) ** 2)")
        print(">>> fg.grad(loss)(w)")
        print(repr(fg.grad(loss)(w)))
        print(">>> fg.make_jaxpr(fg.grad(fnp.sin))(1.0)   # forward and backward equations")
        print(fg.make_jaxpr(fg.grad(fnp.sin))(1.0))
        print(">>> fg.grad(fg.grad(fnp.sin))(1.0) == -sin(1.0)")
        print(fg.grad(fg.grad(fnp.sin))(1.0), -np.sin(1.0))

    section("3. vmap: batching without loops")

    def predict(w, x):
        return fnp.tanh(x @ w)

    w = np.ones((3, 2))
    xs = np.arange(12.0).reshape(4, 3) / 10
    print(">>> fg.vmap(predict, in_axes=(None, 0))(w, xs).shape")
    print(fg.vmap(predict, in_axes=(None, 0))(w, xs).shape)
    print(">>> fg.make_jaxpr(fg.vmap(fnp.matmul, in_axes=(0, None)))(xs, w)  # one dot_general")
    print(fg.make_jaxpr(fg.vmap(fnp.matmul, in_axes=(0, None)))(xs, w))

    if hasattr(fg, "grad"):
        print(">>> per-example gradients: fg.vmap(fg.grad(loss_one), in_axes=(None, 0, 0))")

        def loss_one(w, x, y):
            return (fnp.dot(x, w[:, 0]) - y) ** 2

        ys = np.arange(4.0)
        per_example = fg.vmap(fg.grad(loss_one), in_axes=(None, 0, 0))(w, xs, ys)
        print(f"shape {per_example.shape}; example 1:")
        print(repr(per_example[1]))

    if hasattr(fg, "jit"):
        section("4. jit: fused numba kernels")

        def g(x):
            return fnp.tanh(x) * fnp.exp(-x * x) + 0.5 * x

        big = np.random.default_rng(0).standard_normal(500_000).astype(np.float32)
        g_jit = fg.jit(g)
        t0 = time.perf_counter()
        g_jit(big)
        first = time.perf_counter() - t0
        if g_jit.tier() == "interpreter":
            print(
                f"first call: {first * 1e3:.0f} ms on the NumPy interpreter tier; numba compiles "
                "the kernel in the background (cached on disk for the next run)"
            )
            g_jit.wait()
            print(f"kernel ready {time.perf_counter() - t0:.2f} s after the first call; switched")
        else:
            print(f"first call (kernel from memory, or compiled: sync mode): {first:.2f} s")
        t_eager = _best_of(lambda: g(big))
        t_jit = _best_of(lambda: g_jit(big))
        print(
            f"eager NumPy ops: {t_eager * 1e3:.1f} ms   jit: {t_jit * 1e3:.1f} ms   "
            f"speed-up {t_eager / t_jit:.1f}x"
        )
        print(">>> fg.jit(g).lower(x).as_text()   # the generated source")
        print(g_jit.lower(x).as_text())

        section("5. Loops: lax.scan under jit and grad")

        def rnn_loss(w, xs):
            def step(h, x):
                h = fnp.tanh(w * h + x)
                return h, h

            _, hs = fg.lax.scan(step, 0.0, xs)
            return fnp.sum(hs**2)

        xs = np.linspace(-1.0, 1.0, 1000)
        print(">>> fg.jit(fg.grad(rnn_loss))(0.5, xs)    # 1000-step scan, compiled once")
        print(repr(fg.jit(fg.grad(rnn_loss))(0.5, xs)))

    section("6. Random numbers: explicit, splittable keys")
    key = fg.random.key(0)
    k1, k2 = fg.random.split(key)
    print(">>> k1, k2 = fg.random.split(fg.random.key(0)); fg.random.normal(k1, (3,))")
    print(repr(fg.random.normal(k1, (3,))))
    keys = fg.random.split(k2, 4)
    draw = fg.vmap(lambda k: fg.random.uniform(k, (2,)))
    print(">>> fg.vmap(lambda k: fg.random.uniform(k, (2,)))(fg.random.split(k2, 4))")
    print(repr(draw(keys)))
    if hasattr(fg, "jit"):
        same = np.array_equal(fg.jit(draw)(keys), draw(keys))
        print(f">>> same bits under jit: {same}")

    print("\nDone. See README.md for more.")


def _best_of(fn, n: int = 5) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["serve"]:  # python -m funcgrad serve MODEL --port 8000
        from funcgrad.export.server import main

        sys.exit(main(sys.argv[2:]))
    tour()
