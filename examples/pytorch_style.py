"""The PyTorch training loop, written functionally in funcgrad.

In PyTorch the model owns its weights and the optimizer mutates them::

    model = nn.Sequential(nn.Linear(3, 10), nn.ReLU(), nn.Linear(10, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(20):
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

In funcgrad the weights are a value (a pytree of arrays) that goes in and comes out:

=================================  ======================================================
PyTorch                            funcgrad
=================================  ======================================================
``model(x)``                       ``model.apply(params, x)``
``model.parameters()``             ``params = model.init(key)``
``F.mse_loss(pred, y)``            ``losses.mse(pred, y)``
``torch.optim.Adam(..., lr)``      ``opt = optim.adam(lr)``; ``opt_state = opt.init(params)``
``loss.backward()``                ``loss, grads = fg.value_and_grad(loss_fn)(params, ...)``
``opt.step()``                     ``updates, opt_state = opt.update(grads, opt_state, params)``
                                   ``params = optim.apply_updates(params, updates)``
``opt.zero_grad()``                nothing: gradients are fresh values every step
``torch.compile(step)``            ``fg.jit(step)``: one fused numba kernel per step
=================================  ======================================================

Run: ``python examples/pytorch_style.py`` (the first run compiles the step; later runs load
it from the on-disk cache).
"""

import numpy as np

import funcgrad as fg
from funcgrad import losses, nn, optim

rng = np.random.default_rng(0)
x = rng.normal(size=(512, 3)).astype(np.float32)
y = (x @ np.array([2.0, -1.0, 0.5]) + 0.3 + 0.1 * rng.normal(size=512)).astype(np.float32)
y = y[:, None]  # (N, 1), like the model's output

model = nn.Sequential(nn.Linear(3, 10), nn.relu, nn.Linear(10, 1))
params = model.init(fg.random.key(0))
opt = optim.adam(1e-2)
opt_state = opt.init(params)


def loss_fn(params, xb, yb):
    return losses.mse(model.apply(params, xb), yb)


@fg.jit
def train_step(params, opt_state, xb, yb):
    loss, grads = fg.value_and_grad(loss_fn)(params, xb, yb)  # loss.backward()
    updates, opt_state = opt.update(grads, opt_state, params)  # opt.step()
    return optim.apply_updates(params, updates), opt_state, loss


batch_size = 32
for epoch in range(20):
    order = rng.permutation(len(x))  # DataLoader(shuffle=True)
    total = 0.0
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        params, opt_state, loss = train_step(params, opt_state, x[idx], y[idx])
        total += float(loss) * len(idx)
    if epoch % 5 == 4:
        print(f"epoch {epoch + 1}: train loss {total / len(x):.4f}")

final = float(loss_fn(params, x, y))
print(f"final loss {final:.4f} (variance of y: {float(np.var(y)):.4f})")
