"""A small convolutional network's training step, jitted: Conv2D(8, 3x3, valid) -> relu ->
max-pool 2x2 -> dense 10, softmax cross-entropy, SGD, batch 32 of 28x28x1, float32.

funcgrad's convolution is an im2col (slices, concatenate, one matrix product) and its max
pool a maximum over strided slices (``funcgrad/nn/conv.py``); JAX lowers to XLA's
convolution and reduce-window, torch to its own kernels. The NumPy reference is written by
hand (forward and backward). No target in the issue; it shows where a conv net stands.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.workloads import Workload, optional_import
from benchmarks.workloads._models import torch_sgd

LR = 0.1
B, H, C, K = 32, 28, 8, 10


def _params(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "w": (rng.standard_normal((3, 3, 1, C)) * 0.3).astype(np.float32),
        "b": np.zeros(C, np.float32),
        "w2": (rng.standard_normal((13 * 13 * C, K)) * 0.01).astype(np.float32),
        "b2": np.zeros(K, np.float32),
    }


def numpy_step(p: dict, x: np.ndarray, onehot: np.ndarray) -> tuple[dict, Any]:
    """Forward and hand-written backward in NumPy (the reference)."""
    patches = np.lib.stride_tricks.sliding_window_view(x[..., 0], (3, 3), axis=(1, 2))
    cols = patches.reshape(B * 26 * 26, 9)
    pre = (cols @ p["w"].reshape(9, C)).reshape(B, 26, 26, C) + p["b"]
    act = np.maximum(pre, 0)
    win = act.reshape(B, 13, 2, 13, 2, C)
    pooled = win.max(axis=(2, 4))
    flat = pooled.reshape(B, -1)
    logits = flat @ p["w2"] + p["b2"]
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = -(onehot * logp).sum(1).mean()
    dlogits = (np.exp(logp) - onehot) / B
    g = {"w2": flat.T @ dlogits, "b2": dlogits.sum(0)}
    dpooled = (dlogits @ p["w2"].T).reshape(B, 13, 1, 13, 1, C)
    mask = win == pooled[:, :, None, :, None, :]
    dact = (mask * dpooled).reshape(B, 26, 26, C)
    dpre = dact * (pre > 0)
    g["b"] = dpre.sum((0, 1, 2))
    g["w"] = (cols.T @ dpre.reshape(-1, C)).reshape(3, 3, 1, C)
    return {k: p[k] - LR * g[k] for k in p}, loss


def setup(quick: bool) -> dict[str, Any]:
    import funcgrad as fg
    import funcgrad.numpy as fnp
    from funcgrad import nn

    rng = np.random.default_rng(0)
    params = _params(rng)
    x = rng.standard_normal((B, H, H, 1)).astype(np.float32)
    onehot = np.eye(K, dtype=np.float32)[rng.integers(0, K, B)]

    def fg_loss(p, x, onehot):
        h = nn.relu(nn.conv2d(x, p["w"], padding="VALID") + p["b"])
        h = nn.max_pool(h, (2, 2), strides=(2, 2))
        logits = h.reshape(B, -1) @ p["w2"] + p["b2"]
        return -(onehot * nn.log_softmax(logits)).sum(1).mean()

    @fg.jit
    def fg_step(p, x, onehot):
        loss, g = fg.value_and_grad(fg_loss)(p, x, onehot)
        return fg.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss

    del fnp
    impls: dict[str, Any] = {
        "funcgrad": lambda: fg_step(params, x, onehot),
        "numpy": lambda: numpy_step(params, x, onehot),
    }
    jax = optional_import("jax")
    if jax is not None:
        jnp, lax = jax.numpy, jax.lax

        def j_loss(p, x, onehot):
            dn = ("NHWC", "HWIO", "NHWC")
            h = lax.conv_general_dilated(x, p["w"], (1, 1), "VALID", dimension_numbers=dn)
            h = jax.nn.relu(h + p["b"])
            h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
            logits = h.reshape(B, -1) @ p["w2"] + p["b2"]
            return -(onehot * jax.nn.log_softmax(logits)).sum(1).mean()

        @jax.jit
        def j_step(p, x, onehot):
            loss, g = jax.value_and_grad(j_loss)(p, x, onehot)
            return jax.tree_util.tree_map(lambda a, b: a - LR * b, p, g), loss

        jp = jax.tree_util.tree_map(jnp.asarray, (params, x, onehot))
        impls["jax (jit)"] = lambda: jax.block_until_ready(j_step(*jp))
    torch = optional_import("torch")
    if torch is not None:
        F = torch.nn.functional
        tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        ot = torch.from_numpy(onehot)

        def torch_step():
            w = tp["w"].permute(3, 2, 0, 1)  # HWIO -> OIHW
            h = F.max_pool2d(F.relu(F.conv2d(xt, w) + tp["b"][:, None, None]), 2)
            flat = h.permute(0, 2, 3, 1).reshape(B, -1)  # NHWC order, as the others
            logits = flat @ tp["w2"] + tp["b2"]
            loss = -(ot * torch.log_softmax(logits, dim=1)).sum(1).mean()
            return torch_sgd(torch, tp, loss, LR)

        impls["torch (eager)"] = torch_step
    return impls


WORKLOADS = [
    Workload(
        name="cnn_train_step",
        description="Conv2D(8,3x3) relu maxpool2 dense10, softmax CE, SGD, batch 32, jitted",
        setup=setup,
        rtol=2e-3,
        atol=1e-5,
    )
]
