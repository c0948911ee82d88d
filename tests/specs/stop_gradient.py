"""Spec cases for ``stop_gradient`` (funcgrad/lax/stop_gradient.py).

Its jvp is zero by design, which finite differences cannot confirm, so ``diff=()``; the
zero derivative is tested in tests/test_autodiff.py.
"""

from __future__ import annotations

import numpy as np

from tests.specs import ALL, Case, normal


def _identity(x):
    return np.array(x, copy=True)


CASES = [
    Case(
        "stop_gradient", lambda rng, dt: (normal(rng, (3, 4), dt),), _identity, dtypes=ALL, diff=()
    ),
    Case(
        "stop_gradient",
        lambda rng, dt: (normal(rng, (), dt),),
        _identity,
        dtypes=ALL,
        diff=(),
        name="scalar",
    ),
    Case(
        "stop_gradient",
        lambda rng, dt: (normal(rng, (0, 2), dt),),
        _identity,
        diff=(),
        name="size0",
    ),
]
