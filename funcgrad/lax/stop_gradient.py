"""``stop_gradient``: the identity whose derivative is zero.

One primitive, ``stop_gradient``: impl copies (results never alias inputs), abstract eval
keeps the type, its jvp is a symbolic zero and it batches elementwise. Under ``jit`` it is
the identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import tree_util
from funcgrad.core import Primitive, ShapedArray
from funcgrad.interpreters import ad, batching

# -- stop_gradient
stop_gradient_p = Primitive("stop_gradient")


def stop_gradient(x: Any) -> Any:
    """``x`` (any pytree of arrays), treated as a constant by differentiation."""
    return tree_util.tree_map(stop_gradient_p.bind, x)


@stop_gradient_p.def_abstract_eval
def _stop_gradient_abstract_eval(x: ShapedArray) -> ShapedArray:
    return ShapedArray(x.shape, x.dtype)


@stop_gradient_p.def_impl
def _stop_gradient_impl(x: Any) -> Any:
    return np.array(x, copy=True)[()] if np.ndim(x) == 0 else np.array(x, copy=True)


ad.defjvp_zero(stop_gradient_p)
batching.defvectorized(stop_gradient_p)
