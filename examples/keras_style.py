"""Linear regression, logistic regression and a small MLP, Keras-style, in funcgrad.

Run: ``python examples/keras_style.py`` (the first run compiles the training steps with
numba, which takes a little while; later runs reuse the on-disk cache).
"""

import os
import tempfile

import numpy as np

import funcgrad as fg
from funcgrad import losses, metrics, nn, optim, train

rng = np.random.default_rng(0)
key = fg.random.key(0)

# --- Linear regression: one Dense unit, SGD, mean squared error --------------------------
x = rng.uniform(-1, 1, size=(256, 3)).astype(np.float32)
y = (x @ np.array([2.0, -1.0, 0.5]) + 0.3 + 0.05 * rng.normal(size=256)).astype(np.float32)

model = nn.Dense(1)
params = model.init(key, x[:1])
params, history = train.fit(
    model, params, x, y, loss="mse", optimizer=optim.sgd(0.1), epochs=30, batch_size=32, verbose=0
)
print("linear regression: kernel", params["kernel"][:, 0], "bias", params["bias"])

# --- Logistic regression: logits, the stable sigmoid cross-entropy, accuracy --------------
labels = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
clf = nn.Dense(1)
p = clf.init(key, x[:1])
p, history = train.fit(
    clf,
    p,
    x,
    labels,
    loss="sigmoid_binary_cross_entropy",
    metrics=["accuracy"],
    optimizer=optim.adam(0.05),
    epochs=20,
    verbose=0,
)
print("logistic regression: train accuracy", history.history["accuracy"][-1])

# --- The classic MLP: Dense(10, relu) -> Dense(1), Adam, MSE, with validation -------------
target = (np.sin(3 * x[:, 0]) + x[:, 1] * x[:, 2]).astype(np.float32)
mlp = nn.Sequential([nn.Dense(10), nn.relu, nn.Dense(1)])
w = mlp.init(key, x[:1])
w, history = train.fit(
    mlp,
    w,
    x[:200],
    target[:200],
    loss="mse",
    optimizer=optim.adam(1e-2),
    epochs=100,
    batch_size=32,
    metrics=["mae"],
    validation_data=(x[200:], target[200:]),
    verbose=1,
)
print(train.evaluate(mlp, w, x[200:], target[200:], loss="mse", metrics=["r2_score"]))

# --- Or write the step yourself: grad + an optimizer, jitted -------------------------------
opt = optim.adam(1e-2)
state = opt.init(w)


@fg.jit
def step(w, state, xb, yb):
    loss, grads = fg.value_and_grad(lambda w: losses.mse(mlp.apply(w, xb), yb))(w)
    updates, state = opt.update(grads, state, w)
    return optim.apply_updates(w, updates), state, loss


for _ in range(100):
    w, state, loss = step(w, state, x[:200], target[:200])
print(
    "hand-written loop: loss",
    float(loss),
    "r2",
    float(metrics.r2_score(mlp.apply(w, x[200:]), target[200:])),
)
path = os.path.join(tempfile.mkdtemp(), "mlp_params.safetensors")
fg.serialization.save_params(path, w)
print("saved to", path, "and back:", fg.serialization.load_params(path)[0]["kernel"].shape)
