"""Elementwise lowerings of the complex-number primitives (``funcgrad/lax/complex_ops.py``).

numba computes with complex64/complex128 natively; these rules only take parts apart and
put them together, casting to the result's precision (numba's ``complex(a, b)`` is
complex128).
"""

from __future__ import annotations

from typing import Any

from funcgrad.backend.numba.lowering import ELEMENTWISE


def _real(ctx, x):
    return f"{x}.real"


def _imag(ctx, x):
    return f"{x}.imag"


def _conj(ctx, x):
    return f"{x}.conjugate()"


def _complex(ctx, x, y):
    return f"np.{ctx.out_aval.dtype.name}(complex({x}, {y}))"


_RULES: tuple[tuple[str, Any], ...] = (
    ("real", _real),
    ("imag", _imag),
    ("conj", _conj),
    ("complex", _complex),
)
for _name, _fn in _RULES:
    _fn.atomic = False
    ELEMENTWISE[_name] = _fn
