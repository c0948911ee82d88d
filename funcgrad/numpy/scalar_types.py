"""NumPy's concrete scalar types as casting functions over traced values too (JAX's way).

``fnp.float32(x)`` is ``np.float32(x)`` for concrete ``x`` (a NumPy scalar, or an array
for an array argument, as NumPy gives) and a cast (``astype``) for a traced one, which
``np.float32`` cannot do. Everywhere a dtype is expected (``dtype=fnp.float32``,
``np.dtype(fnp.int64)``, ``x.astype(fnp.int64)``, dict keys, ``==`` with the NumPy type,
``isinstance(v, fnp.float32)``) they act as the NumPy type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad.core import Tracer
from funcgrad.numpy import util


class _ScalarMeta(type):
    dtype: np.dtype

    def __hash__(cls) -> int:
        return hash(cls.dtype.type)

    def __eq__(cls, other: Any) -> bool:
        return cls is other or cls.dtype.type == other

    def __ne__(cls, other: Any) -> bool:
        return not cls.__eq__(other)

    def __call__(cls, x: Any = 0) -> Any:

        if isinstance(x, Tracer):
            return util.convert(x, cls.dtype)
        if isinstance(x, (list, tuple)):
            if any(isinstance(e, Tracer) for e in util._iter_nested(x)):
                return util.convert(util.to_operand(x), cls.dtype)
        return cls.dtype.type(x)

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, cls.dtype.type)

    def __repr__(cls) -> str:
        return f"<class 'funcgrad.numpy.{cls.__name__}'>"


def scalar_type(np_type: type, name: str | None = None) -> type:
    """A casting scalar type standing for ``np_type``."""
    return _ScalarMeta(name or np_type.__name__, (object,), {"dtype": np.dtype(np_type)})
