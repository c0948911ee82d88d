"""funcgrad.numpy: the NumPy API over arrays and traced values."""

import numpy as _np

from funcgrad import lax as _lax
from funcgrad.numpy._util import promote_args as _promote
from funcgrad.numpy._util import promote_args_inexact as _promote_inexact


def add(x, y):
    return _lax.add(*_promote("add", x, y))


def multiply(x, y):
    return _lax.mul(*_promote("multiply", x, y))


def sin(x):
    return _lax.sin(*_promote_inexact("sin", x))


float32 = _np.float32
