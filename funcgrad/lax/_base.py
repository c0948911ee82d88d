"""Family helpers that turn a primitive definition into a few lines (as JAX's ``lax/utils``).

An elementwise primitive takes operands of one dtype whose shapes broadcast by NumPy's
rules; ``funcgrad.numpy`` does the promotion before binding.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import dtypes
from funcgrad.core import Primitive, ShapedArray
from funcgrad.interpreters import batching

# NumPy's floating-point warnings (overflow in exp, 0/0, ...) raised inside funcgrad's own
# primitive implementations are not the user's concern: NaN and inf are the answers, as in
# JAX. A filter scoped to funcgrad's modules costs nothing per call (np.errstate costs ~2 µs).
warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"funcgrad\.")


def shape_str(avals: tuple[ShapedArray, ...]) -> str:
    return ", ".join(a.str_short() for a in avals)


def broadcast_shapes(name: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting of ``shapes``, or a ValueError naming ``name`` and the shapes."""
    rank = max(map(len, shapes), default=0)
    out = []
    for i in range(-rank, 0):
        size = 1
        for s in shapes:
            if len(s) >= -i:
                d = s[i]
                if d != 1:
                    if size != 1 and size != d:
                        raise ValueError(
                            f"{name}: shapes {', '.join(map(str, shapes))} do not broadcast "
                            f"(axis {i} has sizes {size} and {d}); reshape or expand one "
                            "operand so that each axis matches or is 1"
                        )
                    size = d
        out.append(size)
    return tuple(out)


_KIND_NAMES = {
    "f": "floating",
    "c": "complex",
    "i": "signed integer",
    "u": "unsigned integer",
    "b": "bool",
}


_EXAMPLE_DTYPE = {"f": "float32", "c": "complex64", "i": "int32", "u": "uint32", "b": "bool"}


def check_dtype(name: str, aval: ShapedArray, kinds: str) -> None:
    if aval.dtype.kind not in kinds:
        allowed = " or ".join(_KIND_NAMES[k] for k in kinds)
        raise TypeError(
            f"{name}: expected a {allowed} operand, got {aval.str_short()}; "
            f"convert it first, e.g. with `.astype({_EXAMPLE_DTYPE[kinds[0]]})`"
        )


FLOAT = "fc"
NUMBER = "fciu"
INT = "iu"
INT_OR_BOOL = "iub"
ANY = "fciub"


def standard_unop(
    name: str, impl: Callable, kinds: str = FLOAT, result_dtype: Any = None
) -> Primitive:
    """An elementwise unary primitive: impl, abstract eval with a dtype check, batching."""
    prim = Primitive(name)

    def abstract_eval(x: ShapedArray, **params: Any) -> ShapedArray:
        check_dtype(name, x, kinds)
        if result_dtype is None:
            return ShapedArray(x.shape, x.dtype, x.weak_type)
        return ShapedArray(x.shape, result_dtype)

    def checked_impl(x: Any, **params: Any) -> Any:
        # Eager bind skips abstract eval; NumPy would quietly accept other dtypes.
        if x.dtype.kind not in kinds:
            abstract_eval(ShapedArray(np.shape(x), x.dtype))
        return impl(x, **params)

    prim.def_abstract_eval(abstract_eval)
    prim.def_impl(checked_impl)
    prim.unchecked_impl = impl
    batching.defvectorized(prim)
    return prim


def standard_naryop(
    name: str, impl: Callable, kinds: str = NUMBER, result_dtype: Any = None
) -> Primitive:
    """An elementwise n-ary primitive: operands share a dtype, shapes broadcast."""
    prim = Primitive(name)

    def abstract_eval(*avals: ShapedArray, **params: Any) -> ShapedArray:
        dtype = avals[0].dtype
        for a in avals:
            check_dtype(name, a, kinds)
            if a.dtype != dtype:
                raise TypeError(
                    f"{name}: operands must have one dtype, got {shape_str(avals)}; "
                    "use funcgrad.numpy (which promotes) or `.astype` to convert"
                )
        shape = broadcast_shapes(name, *(a.shape for a in avals))
        if result_dtype is None:  # weak (a traced Python scalar) when every operand is
            return ShapedArray(shape, dtype, all(a.weak_type for a in avals))
        return ShapedArray(shape, result_dtype)

    def checked_impl(*args: Any, **params: Any) -> Any:
        # Eager bind skips abstract eval; NumPy would quietly promote mixed dtypes.
        dtype = args[0].dtype
        ok = dtype.kind in kinds
        for a in args:
            if a.dtype != dtype:
                ok = False
        if not ok:
            abstract_eval(*(ShapedArray(np.shape(a), a.dtype) for a in args))
        return impl(*args, **params)

    prim.def_abstract_eval(abstract_eval)
    prim.def_impl(checked_impl)
    prim.unchecked_impl = impl
    batching.defbroadcasting(prim)
    return prim


def as_dtype(dtype: Any) -> np.dtype:
    return dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)


def fresh(x: Any) -> Any:
    """A result that never aliases an input (NumPy views and no-op casts alias)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return x


def promote_scalars(*args: Any) -> tuple[Any, ...]:
    """Python scalars among ``args`` as NumPy scalars of the first array operand's dtype.

    A convenience of the public ``lax`` functions (``lax.add(x, 2.0)``): ``bind`` never sees a
    Python scalar. With no array operand, each scalar takes its own default dtype
    (``dtypes.dtype_of``: float64, int64, bool).
    """
    scalar_types = dtypes._PYTHON_SCALARS
    for a in args:  # a plain loop: the common no-scalar case must cost next to nothing
        if type(a) in scalar_types:
            break
    else:
        return args
    dtype = None
    for a in args:
        if not dtypes.is_python_scalar(a):
            dtype = dtypes.dtype_of(a)
            if getattr(a, "_weak", False):  # a traced Python scalar: the result stays weak
                return tuple(
                    dtypes.weak_literal(x, dtype) if dtypes.is_python_scalar(x) else x for x in args
                )
            break
    return tuple(
        np.array(a, dtypes.dtype_of(a) if dtype is None else dtype)[()]
        if dtypes.is_python_scalar(a)
        else a
        for a in args
    )
