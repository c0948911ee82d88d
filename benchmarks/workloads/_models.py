"""Models shared by the jit workloads, written once over an array module ``xp``
(``funcgrad.numpy`` or ``jax.numpy``), plus the hand-written NumPy gradients they are
checked against."""

from __future__ import annotations

from typing import Any

import numpy as np


def dense_params(rng: np.random.Generator, sizes: list[int]) -> dict[str, np.ndarray]:
    """float32 ``w{i}`` (in, out) and ``b{i}`` for consecutive ``sizes``."""
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        params[f"w{i}"] = (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32)
        params[f"b{i}"] = np.zeros(n, np.float32)
    return params


def seed_loss(xp: Any, params: dict, x: Any, y: Any) -> Any:
    """The seed model: 10 -> Dense(10, relu) -> Dense(1), mean squared error."""
    h = xp.maximum(x @ params["w1"] + params["b1"], 0.0)
    pred = h @ params["w2"] + params["b2"]
    return xp.mean((pred - y) ** 2)


def seed_grad_numpy(params: dict, x: np.ndarray, y: np.ndarray) -> tuple[Any, dict]:
    """Hand-written forward and backward pass of :func:`seed_loss`."""
    z = x @ params["w1"] + params["b1"]
    h = np.maximum(z, 0)
    pred = h @ params["w2"] + params["b2"]
    err = pred - y
    d_pred = (2.0 / err.size) * err
    dh = d_pred @ params["w2"].T
    dz = dh * (z > 0)
    grads = {
        "w1": x.T @ dz,
        "b1": dz.sum(0),
        "w2": h.T @ d_pred,
        "b2": d_pred.sum(0),
    }
    return np.mean(err**2), grads


def adam(tree_map: Any, xp: Any, grads: Any, m: Any, v: Any, t: Any, lr: float = 1e-3) -> Any:
    """One Adam update (b1=0.9, b2=0.999, eps=1e-8): ``(updates, m, v)``; ``t`` counts from 1."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1**t, 1 - b2**t
    updates = tree_map(lambda m, v: -lr * (m / c1) / (xp.sqrt(v / c2) + eps), m, v)
    return updates, m, v


def mlp_loss(xp: Any, params: dict, x: Any, onehot: Any) -> Any:
    """784-512-512-10 relu MLP, softmax cross-entropy."""
    h = xp.maximum(x @ params["w1"] + params["b1"], 0.0)
    h = xp.maximum(h @ params["w2"] + params["b2"], 0.0)
    logits = h @ params["w3"] + params["b3"]
    m = xp.max(logits, axis=1, keepdims=True)
    logp = logits - m - xp.log(xp.sum(xp.exp(logits - m), axis=1, keepdims=True))
    return -xp.mean(xp.sum(onehot * logp, axis=1))


def mlp_step_numpy(params: dict, x: np.ndarray, onehot: np.ndarray, lr: float) -> tuple:
    """Hand-written SGD step of :func:`mlp_loss`: ``(new params, loss)``."""
    z1 = x @ params["w1"] + params["b1"]
    h1 = np.maximum(z1, 0)
    z2 = h1 @ params["w2"] + params["b2"]
    h2 = np.maximum(z2, 0)
    logits = h2 @ params["w3"] + params["b3"]
    m = logits.max(1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(1, keepdims=True)
    logp = logits - m - np.log(s)
    n = x.shape[0]
    loss = -np.mean(np.sum(onehot * logp, axis=1))
    dlogits = (e / s - onehot) / n
    dh2 = dlogits @ params["w3"].T
    dz2 = dh2 * (z2 > 0)
    dh1 = dz2 @ params["w2"].T
    dz1 = dh1 * (z1 > 0)
    grads = {
        "w3": h2.T @ dlogits,
        "b3": dlogits.sum(0),
        "w2": h1.T @ dz2,
        "b2": dz2.sum(0),
        "w1": x.T @ dz1,
        "b1": dz1.sum(0),
    }
    return {k: params[k] - lr * grads[k] for k in params}, loss


def torch_sgd(torch: Any, params: dict, loss: Any, lr: float) -> tuple[dict, Any]:
    """One plain-SGD update of a dict of torch leaf tensors from ``loss`` (eager autograd)."""
    grads = torch.autograd.grad(loss, list(params.values()))
    with torch.no_grad():
        new = {k: p - lr * g for (k, p), g in zip(params.items(), grads, strict=True)}
    return new, loss
