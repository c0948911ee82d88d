"""Trace state is per thread: threads trace, call jitted functions and take gradients at once."""

from __future__ import annotations

import threading

import numpy as np

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import core


def _long(x):
    for i in range(40):
        x = fnp.sin(x) * 0.5 + float(i)
    return fnp.sum(x)


def _run_threads(workers, n_threads=8, rounds=1):
    errors: list[BaseException] = []
    barrier = threading.Barrier(n_threads)

    def body(i):
        try:
            barrier.wait()
            for _ in range(rounds):
                workers[i % len(workers)](i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_jit_calls_while_another_thread_traces():
    """The reproducer: make_jaxpr on one thread, a jitted function called on another."""
    f = fg.jit(lambda x: x * 2.0 + 1.0)
    x = np.arange(3.0)
    f(x)  # compile first: the race is about the trace state, not the compile
    stop = threading.Event()
    results: list = []

    def caller():
        for _ in range(2000):
            results.append(f(x))
        stop.set()

    def tracer():
        while not stop.is_set():
            jaxpr = fg.make_jaxpr(_long)(x)
            assert len(jaxpr.jaxpr.eqns) == 40 * 3 + 1

    t1, t2 = threading.Thread(target=caller), threading.Thread(target=tracer)
    t2.start()
    t1.start()
    t1.join(timeout=600)
    t2.join(timeout=600)
    assert len(results) == 2000
    for r in results:
        assert type(r) is np.ndarray
        np.testing.assert_array_equal(r, x * 2.0 + 1.0)
    # Eager mode still works afterwards, and the process-wide hint is back to eager.
    assert core.is_eager()
    np.testing.assert_allclose(fnp.sin(x), np.sin(x))


def test_eight_threads_trace_jit_and_grad_concurrently():
    x = np.linspace(-1.0, 1.0, 5)
    jitted = fg.jit(lambda v: fnp.sum(fnp.tanh(v) ** 2))
    jitted(x)
    grad_ref = 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)
    n_eqns = len(fg.make_jaxpr(_long)(x).jaxpr.eqns)

    def trace(i):
        for _ in range(20):
            assert len(fg.make_jaxpr(_long)(x + i).jaxpr.eqns) == n_eqns

    def call_jit(i):
        for _ in range(200):
            out = jitted(x)
            assert type(out) is np.ndarray
            np.testing.assert_allclose(out, np.sum(np.tanh(x) ** 2), rtol=1e-12)

    def take_grad(i):
        for _ in range(50):
            np.testing.assert_allclose(
                fg.grad(lambda v: fnp.sum(fnp.tanh(v) ** 2))(x), grad_ref, rtol=1e-12
            )
            np.testing.assert_allclose(fg.grad(jitted)(x), grad_ref, rtol=1e-12)

    def eager_and_vmap(i):
        for _ in range(50):
            np.testing.assert_allclose(fnp.exp(x) * 2, np.exp(x) * 2)
            out = fg.vmap(lambda v: v * float(i))(np.ones((3, 2)))
            np.testing.assert_array_equal(out, np.full((3, 2), float(i)))

    _run_threads([trace, call_jit, take_grad, eager_and_vmap])
    assert core.is_eager()
    assert len(core.trace_stack()) == 1 and core.dynamic_trace() is None


def test_threads_compile_new_signatures_concurrently():
    f = fg.jit(lambda v: fnp.cumsum(v * 3.0))

    def work(i):
        v = np.arange(float(i + 2))
        np.testing.assert_allclose(f(v), np.cumsum(v * 3.0))

    _run_threads([work])


def test_trace_stack_is_private_to_each_thread():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def traced(v):
        inside.set()
        release.wait(timeout=60)
        return v + 1.0

    t = threading.Thread(target=lambda: seen.setdefault("j", fg.make_jaxpr(traced)(1.0)))
    t.start()
    assert inside.wait(timeout=60)
    # The other thread is staging: this one is still eager and computes values.
    assert core.is_eager()
    assert core.dynamic_trace() is None
    assert type(fnp.add(np.float64(1.0), 2.0)) is not core.Tracer
    np.testing.assert_allclose(fnp.add(np.ones(2), 2.0), 3.0)
    release.set()
    t.join(timeout=60)
    assert "add" in str(seen["j"])
