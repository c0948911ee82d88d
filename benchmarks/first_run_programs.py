"""The programs of ``benchmarks/first_run.py``, written once over a small library adapter
(funcgrad, funcgrad eager, JAX, torch), with the same synthetic data and step counts.

``main(program, lib)`` runs one program in this (fresh) process and prints a JSON line:
``total_s`` from process start (``t0``: imports included) to the end, a ``check`` value
(the final loss) and, for ``first_call``, ``first_ms`` and ``new_batch_ms``. Exit status 3
means the library is not installed.
"""

from __future__ import annotations

import json
import sys
import time
from types import SimpleNamespace
from typing import Any

import numpy as np


def _lib(name: str) -> Any:
    if name in ("fg", "fg_eager"):
        import funcgrad as fg
        import funcgrad.numpy as fnp

        return SimpleNamespace(
            name=name,
            fg=fg,
            np=fnp,
            jit=fg.jit if name == "fg" else (lambda f, **k: f),
            grad=fg.grad,
            vag=fg.value_and_grad,
            vmap=fg.vmap,
            tmap=fg.tree_util.tree_map,
            tleaves=fg.tree_util.tree_leaves,
        )
    if name == "jax":
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            sys.exit(3)
        return SimpleNamespace(
            name=name,
            jax=jax,
            np=jnp,
            jit=jax.jit,
            grad=jax.grad,
            vag=jax.value_and_grad,
            vmap=jax.vmap,
            tmap=jax.tree_util.tree_map,
            tleaves=jax.tree_util.tree_leaves,
        )
    if name == "torch":
        try:
            import torch
        except ImportError:
            sys.exit(3)
        torch.set_num_threads(1)
        return SimpleNamespace(name=name, torch=torch)
    raise ValueError(name)


def _dense(rng: np.random.Generator, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (
            (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32),
            np.zeros(n, np.float32),
        )
        for m, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def _mlp(L: Any, params: Any, x: Any) -> Any:
    for w, b in params[:-1]:
        x = L.np.maximum(x @ w + b, 0.0)
    w, b = params[-1]
    return x @ w + b


def _adam(L: Any, lr: float = 1e-3) -> tuple:
    b1, b2, eps = 0.9, 0.999, 1e-8

    def init(p: Any) -> Any:
        z = L.tmap(lambda a: a * 0.0, p)
        return (z, z, np.float32(0.0))

    def update(g: Any, s: Any, p: Any) -> tuple:
        m, v, t = s
        t = t + 1.0
        m = L.tmap(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        v = L.tmap(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t
        p = L.tmap(lambda p, m, v: p - lr * (m / c1) / (L.np.sqrt(v / c2) + eps), p, m, v)
        return p, (m, v, t)

    return init, update


def _momentum(L: Any, lr: float, mass: float = 0.9) -> tuple:
    def init(p: Any) -> Any:
        return L.tmap(lambda a: a * 0.0, p)

    def update(g: Any, vel: Any, p: Any) -> tuple:
        vel = L.tmap(lambda v, g: mass * v + g, vel, g)
        return L.tmap(lambda p, v: p - lr * v, p, vel), vel

    return init, update


# ----------------------------------------------------------------------------------------
# Programs: each returns the final loss (float)


def seed_fit(L: Any, quick: bool) -> float:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 10)).astype(np.float32)
    y = (x @ rng.standard_normal((10, 1)) + 0.1 * rng.standard_normal((1000, 1))).astype(np.float32)
    epochs = 10 if quick else 100
    if L.name == "fg":
        fg = L.fg
        model = fg.nn.Sequential([fg.nn.Dense(10), fg.nn.relu, fg.nn.Dense(1)])
        params = model.init(fg.random.key(0), x[:1])
        _, hist = fg.train.fit(
            model,
            params,
            x,
            y,
            loss="mse",
            optimizer=fg.optim.adam(1e-3),
            epochs=epochs,
            batch_size=32,
            verbose=0,
        )
        return float(hist.history["loss"][-1])
    import optax

    jax, jnp = L.jax, L.np
    params = _dense(rng, [10, 10, 1])
    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        def loss(p):
            return jnp.mean((_mlp(L, p, xb) - yb) ** 2)

        v, g = jax.value_and_grad(loss)(params)
        u, state = opt.update(g, state, params)
        return optax.apply_updates(params, u), state, v

    n, bs = 1000, 32
    nb = -(-n // bs)
    order_rng = np.random.default_rng(1)
    for _ in range(epochs):
        order = order_rng.permutation(n)
        order = np.concatenate([order, order[: nb * bs - n]]).reshape(nb, bs)
        total = 0.0
        for b in range(nb):
            params, state, v = step(params, state, x[order[b]], y[order[b]])
            total += float(v)
    return total / nb


def torch_loop(L: Any, quick: bool) -> float:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 10)).astype(np.float32)
    y = (x @ rng.standard_normal((10, 1))).astype(np.float32)
    steps = 20 if quick else 100
    params = _dense(rng, [10, 10, 1])
    if L.name == "torch":
        torch = L.torch
        model = torch.nn.Sequential(
            torch.nn.Linear(10, 10), torch.nn.ReLU(), torch.nn.Linear(10, 1)
        )
        with torch.no_grad():
            for layer, (w, b) in zip([model[0], model[2]], params, strict=True):
                layer.weight.copy_(torch.from_numpy(w.T.copy()))
                layer.bias.copy_(torch.from_numpy(b))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.mean((model(xt) - yt) ** 2)
            loss.backward()
            opt.step()
        return float(loss)
    init, update = _adam(L)

    def step(params, s, x, y):
        v, g = L.vag(lambda p: L.np.mean((_mlp(L, p, x) - y) ** 2))(params)
        params, s = update(g, s, params)
        return params, s, v

    step = L.jit(step)
    s = init(params)
    for _ in range(steps):
        params, s, v = step(params, s, x, y)
    return float(v)


def first_call(L: Any, quick: bool) -> dict:
    rng = np.random.default_rng(0)
    params = _dense(rng, [10, 10, 1])
    x = rng.standard_normal((32, 10)).astype(np.float32)
    y = rng.standard_normal((32, 1)).astype(np.float32)
    init, update = _adam(L)

    def step(params, s, x, y):
        v, g = L.vag(lambda p: L.np.mean((_mlp(L, p, x) - y) ** 2))(params)
        params, s = update(g, s, params)
        return params, s, v

    s = init(params)
    t0 = time.perf_counter()
    jstep = L.jit(step)
    out = jstep(params, s, x, y)
    first = time.perf_counter() - t0
    t1 = time.perf_counter()
    out2 = jstep(params, s, x[:20], y[:20])
    new = time.perf_counter() - t1
    return {"first_ms": first * 1e3, "new_batch_ms": new * 1e3, "check": float(out[2] + out2[2])}


def mlp(L: Any, quick: bool) -> float:
    """JAX's mnist_classifier: relu MLP, softmax cross-entropy, SGD with momentum."""
    rng = np.random.default_rng(0)
    n, bs = 2048, 128
    x = rng.random((n, 784), dtype=np.float32)
    labels = rng.integers(0, 10, n)
    onehot = np.eye(10, dtype=np.float32)[labels]
    params = _dense(rng, [784, 512, 512, 10])
    init, update = _momentum(L, 1e-3)

    def loss(p, x, t):
        logits = _mlp(L, p, x)
        m = L.np.max(logits, axis=1, keepdims=True)
        logp = logits - m - L.np.log(L.np.sum(L.np.exp(logits - m), axis=1, keepdims=True))
        return -L.np.mean(L.np.sum(t * logp, axis=1))

    @L.jit
    def step(p, s, x, t):
        v, g = L.vag(loss)(p, x, t)
        p, s = update(g, s, p)
        return p, s, v

    s = init(params)
    for _ in range(1 if quick else 5):
        for b in range(n // bs):
            params, s, v = step(params, s, x[b * bs : (b + 1) * bs], onehot[b * bs : (b + 1) * bs])
    return float(v)


def vae(L: Any, quick: bool) -> float:
    """JAX's mnist_vae: 784-512-512-(10, 10) encoder, 10-512-512-784 decoder, Adam."""
    rng = np.random.default_rng(0)
    n, bs, z = 1024, 32, 10
    x = (rng.random((n, 784)) < 0.3).astype(np.float32)
    enc = _dense(rng, [784, 512, 512, 2 * z])
    dec = _dense(rng, [z, 512, 512, 784])
    params = (enc, dec)
    init, update = _adam(L, 1e-3)

    def elbo(p, xb, eps):
        h = _mlp(L, p[0], xb)
        mu, logvar = h[:, :z], h[:, z:]
        zs = mu + L.np.exp(0.5 * logvar) * eps
        logits = _mlp(L, p[1], zs)
        # Bernoulli log-likelihood of the logits, and the Gaussian KL
        ll = L.np.sum(xb * logits - L.np.logaddexp(0.0, logits), axis=1)
        kl = 0.5 * L.np.sum(L.np.exp(logvar) + mu**2 - 1.0 - logvar, axis=1)
        return L.np.mean(ll - kl)

    @L.jit
    def step(p, s, xb, eps):
        v, g = L.vag(lambda p: -elbo(p, xb, eps))(p)
        p, s = update(g, s, p)
        return p, s, v

    s = init(params)
    noise = np.random.default_rng(1)
    for i in range(20 if quick else 100):
        b = i % (n // bs)
        eps = noise.standard_normal((bs, z)).astype(np.float32)
        params, s, v = step(params, s, x[b * bs : (b + 1) * bs], eps)
    return float(v)


def dpsgd(L: Any, quick: bool) -> float:
    """JAX's differentially_private_sgd: per-example gradients (vmap of grad), each clipped
    to an l2 norm, summed, Gaussian noise added, averaged."""
    rng = np.random.default_rng(0)
    n, bs = 1024, 64
    x = rng.standard_normal((n, 100)).astype(np.float32)
    t = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    params = _dense(rng, [100, 64, 10])
    clip, sigma, lr = 1.5, 1.1, 0.15

    def loss(p, xi, ti):
        logits = _mlp(L, p, xi[None])[0]
        m = L.np.max(logits)
        return -L.np.sum(ti * (logits - m - L.np.log(L.np.sum(L.np.exp(logits - m)))))

    @L.jit
    def step(p, xb, tb, noise):
        grads = L.vmap(L.grad(loss), in_axes=(None, 0, 0))(p, xb, tb)
        leaves = L.tleaves(grads)
        norms = L.np.sqrt(sum(L.np.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in leaves))
        scale = L.np.minimum(1.0, clip / (norms + 1e-6))
        it = iter(noise)

        def private(g):
            s = L.np.sum(g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), axis=0)
            return (s + sigma * clip * next(it)) / g.shape[0]

        priv = L.tmap(private, grads)
        new = L.tmap(lambda a, g: a - lr * g, p, priv)
        return new, L.np.mean(L.vmap(loss, in_axes=(None, 0, 0))(p, xb, tb))

    shapes = [a.shape for a in L.tleaves(params)]
    nrng = np.random.default_rng(1)
    for i in range(10 if quick else 60):
        b = i % (n // bs)
        noise = [nrng.standard_normal(s).astype(np.float32) for s in shapes]
        params, v = step(params, x[b * bs : (b + 1) * bs], t[b * bs : (b + 1) * bs], noise)
    return float(v)


def advi(L: Any, quick: bool) -> float:
    """JAX's advi example: a diagonal Gaussian fitted to a 2-D funnel by maximizing a
    Monte-Carlo ELBO (vmap over samples), Adam."""
    mean = np.array([-1.0, -1.0], np.float32)
    log_std = np.array([0.0, 0.0], np.float32)
    params = (mean, log_std)
    init, update = _adam(L, 0.1)

    def log_normal(x, mu, log_sigma):
        return -0.5 * ((x - mu) / L.np.exp(log_sigma)) ** 2 - log_sigma - 0.9189385

    def log_density(z):
        return log_normal(z[0], 0.0, z[1]) + log_normal(z[1], 0.0, np.float32(np.log(1.35)))

    def elbo(p, eps):
        mu, ls = p
        zs = mu + L.np.exp(ls) * eps
        return L.np.mean(L.vmap(log_density)(zs)) + L.np.sum(ls)

    @L.jit
    def step(p, s, eps):
        v, g = L.vag(lambda p: -elbo(p, eps))(p)
        p, s = update(g, s, p)
        return p, s, v

    s = init(params)
    nrng = np.random.default_rng(1)
    for _ in range(30 if quick else 300):
        eps = nrng.standard_normal((100, 2)).astype(np.float32)
        params, s, v = step(params, s, eps)
    return float(v)


def kernel_lsq(L: Any, quick: bool) -> float:
    """JAX's kernel_lsq: an RBF gram matrix by vmap of vmap, kernel least squares fitted by
    gradient descent on the dual weights."""
    rng = np.random.default_rng(0)
    n, d = 100, 5
    xs = rng.standard_normal((n, d)).astype(np.float32)
    ys = np.sin(xs.sum(1)).astype(np.float32)

    def rbf(a, b):
        return L.np.exp(-L.np.sum((a - b) ** 2))

    def gram(xs):
        return L.vmap(lambda a: L.vmap(lambda b: rbf(a, b))(xs))(xs)

    def loss(alpha, xs, ys):
        k = gram(xs)
        r = k @ alpha - ys
        return 0.5 * L.np.sum(r**2) + 1e-3 * alpha @ (k @ alpha)

    @L.jit
    def step(alpha, xs, ys):
        v, g = L.vag(loss)(alpha, xs, ys)
        return alpha - 2e-3 * g, v

    alpha = np.zeros(n, np.float32)
    for _ in range(30 if quick else 300):
        alpha, v = step(alpha, xs, ys)
    return float(v)


PROGRAMS = {
    f.__name__: f for f in (seed_fit, torch_loop, first_call, mlp, vae, dpsgd, advi, kernel_lsq)
}


def main(program: str, lib: str, quick: bool = False, t0: float | None = None) -> None:
    t0 = time.perf_counter() if t0 is None else t0
    L = _lib(lib)
    res = PROGRAMS[program](L, quick)
    if lib.startswith("fg"):
        from funcgrad.interpreters import tiers

        # Kernels still compiling at exit are handed to a detached compile process (the
        # default FUNCGRAD_JIT_AT_EXIT=detach): the program's time is its own.
        res_tiers = tiers.pending()
    else:
        res_tiers = 0
    out = res if isinstance(res, dict) else {"check": res}
    out["total_s"] = time.perf_counter() - t0
    out["compiles_pending_at_exit"] = res_tiers
    print(json.dumps(out))
