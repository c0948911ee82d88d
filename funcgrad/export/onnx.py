"""``to_onnx``: an exported function as an ONNX model (built and checked with ``onnx``).

The function is exported first (:func:`funcgrad.export.export`), so calls, custom
derivatives and checkpoints are already inlined; with ``dynamic_batch=True`` the first axis
of every argument is the symbolic size ``batch`` and every shape that follows it becomes a
shape computed in the graph (``Shape`` -> arithmetic -> ``Reshape``/``Expand``/``Slice``).
Each primitive maps to standard ONNX operators (opset 18); one that has no translation is
named in the error. Layout-carrying primitives (convolutions) are wrapped in transposes to
ONNX's channels-first convention.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad._atomic import atomic_write
from funcgrad.abstract import ShapeDtypeStruct
from funcgrad.export._codec import SymbolicLiteral, decode_value, symbolic_decoding
from funcgrad.export._dims import Dim
from funcgrad.export._exported import (
    Exported,
    ExportError,
    SymbolicFloat,
    export,
    flatten,
    instantiate,
)
from funcgrad.ir import ClosedJaxpr, Jaxpr, Literal

__all__ = ["OPSET", "UnsupportedPrimitive", "to_onnx"]

OPSET = 18
IR_VERSION = 8


class UnsupportedPrimitive(NotImplementedError):
    """A primitive (or a parameter of one) that the ONNX converter cannot express."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError(
            "to_onnx needs the onnx package: pip install 'funcgrad[onnx]' (or pip install onnx)"
        ) from None
    return onnx


_UNARY = {
    "neg": "Neg",
    "exp": "Exp",
    "log": "Log",
    "sin": "Sin",
    "cos": "Cos",
    "tan": "Tan",
    "tanh": "Tanh",
    "sqrt": "Sqrt",
    "abs": "Abs",
    "sign": "Sign",
    "floor": "Floor",
    "ceil": "Ceil",
    "erf": "Erf",
    "logistic": "Sigmoid",
    "asin": "Asin",
    "acos": "Acos",
    "atan": "Atan",
    "sinh": "Sinh",
    "cosh": "Cosh",
    "asinh": "Asinh",
    "acosh": "Acosh",
    "atanh": "Atanh",
    "stop_gradient": "Identity",
}
_BINARY = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "pow": "Pow",
    "max": "Max",
    "min": "Min",
    "eq": "Equal",
    "lt": "Less",
    "le": "LessOrEqual",
    "gt": "Greater",
    "ge": "GreaterOrEqual",
}
_LOGICAL = {"and": ("And", "BitwiseAnd"), "or": ("Or", "BitwiseOr"), "xor": ("Xor", "BitwiseXor")}
_REDUCE = {
    "reduce_sum": "ReduceSum",
    "reduce_max": "ReduceMax",
    "reduce_min": "ReduceMin",
    "reduce_prod": "ReduceProd",
}


class _Builder:
    """Emits ONNX nodes for one jaxpr; ``env`` maps jaxpr variables to tensor names."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.counter = 0
        self.sym_tensors: dict[str, str] = {}  # symbol -> int64[1] tensor
        self.const_cache: dict[tuple, str] = {}

    def fresh(self, hint: str = "t") -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, value: Any, dtype: Any = None) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key in self.const_cache and arr.size <= 64:
            return self.const_cache[key]
        name = self.fresh("const")
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        if arr.size <= 64:
            self.const_cache[key] = name
        return name

    def ints(self, values: list[Any]) -> str:
        """A 1-D int64 tensor of sizes, computing the symbolic ones from the inputs."""
        if all(isinstance(v, int | np.integer) for v in values):
            return self.const(np.array(values, np.int64).reshape(len(values)))
        parts, run = [], []
        for v in values:
            if isinstance(v, Dim):
                if run:
                    parts.append(self.const(np.array(run, np.int64)))
                    run = []
                parts.append(self.dim(v))
            else:
                run.append(int(v))
        if run:
            parts.append(self.const(np.array(run, np.int64)))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)

    def dim(self, d: Dim) -> str:
        """An int64[1] tensor holding the value of ``d``."""
        total = None
        for s, c in d.terms.items():
            t = self.sym_tensors[s]
            if c != 1:
                t = self.node("Mul", [t, self.const(np.array([c], np.int64))])
            total = t if total is None else self.node("Add", [total, t])
        if d.const or total is None:
            total = (
                self.const(np.array([d.const], np.int64))
                if total is None
                else self.node("Add", [total, self.const(np.array([d.const], np.int64))])
            )
        return total

    def scalar_of(self, value: Any, dtype: np.dtype) -> str:
        """A scalar tensor for a size-dependent literal."""
        onnx_type = self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        if isinstance(value, Dim):
            t = self.node("Squeeze", [self.dim(value)])
            return self.node("Cast", [t], to=onnx_type)
        if isinstance(value, SymbolicFloat):
            total = None
            for s, c in value.coefs.items():
                t = self.node("Cast", [self.node("Squeeze", [self.sym_tensors[s]])], to=1)
                t = self.node("Mul", [t, self.const(np.float32(c))])
                total = t if total is None else self.node("Add", [total, t])
            total = self.node("Add", [total, self.const(np.float32(value.const))])
            if value.inv:
                total = self.node("Reciprocal", [total])
            return self.node("Cast", [total], to=onnx_type)
        raise UnsupportedPrimitive(f"a literal of type {type(value).__name__}")


def _static(values: Any, prim: str, what: str) -> Any:
    """``values`` (ints, possibly nested in tuples) that must not depend on the batch."""
    flat = values if isinstance(values, tuple | list) else (values,)
    for v in flat:
        if isinstance(v, tuple | list):
            _static(v, prim, what)
        elif isinstance(v, Dim):
            raise UnsupportedPrimitive(
                f"{prim}: its {what} depends on the batch size; export with dynamic_batch=False"
            )
    return values


def _convert_jaxpr(b: _Builder, jaxpr: Jaxpr, consts: list[Any], inputs: list[str]) -> list[str]:
    env: dict[Any, str] = {}
    for v, c in zip(jaxpr.constvars, consts, strict=True):
        env[v] = b.const(np.asarray(c))
    for v, name in zip(jaxpr.invars, inputs, strict=True):
        env[v] = name

    def read(a: Any) -> str:
        if isinstance(a, SymbolicLiteral):
            return b.scalar_of(a.value, a.aval.dtype)
        if type(a) is Literal:
            return b.const(np.asarray(a.val, a.aval.dtype))
        return env[a]

    for eqn in jaxpr.eqns:
        ins = [read(a) for a in eqn.inputs]
        in_avals = [a.aval for a in eqn.inputs]
        outs = _convert_eqn(b, eqn.primitive.name, ins, in_avals, eqn.params, eqn.outvars)
        for v, name in zip(eqn.outvars, outs, strict=True):
            env[v] = name
    return [read(a) for a in jaxpr.outvars]


def _onnx_type(dtype: Any) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _convert_eqn(b: _Builder, prim: str, ins: list[str], in_avals: list, params: dict, outvars):
    out_aval = outvars[0].aval
    if prim in _UNARY:
        return [b.node(_UNARY[prim], ins)]
    if prim in _BINARY:
        return [b.node(_BINARY[prim], ins)]
    if prim == "ne":
        return [b.node("Not", [b.node("Equal", ins)])]
    if prim in _LOGICAL:
        logical, bitwise = _LOGICAL[prim]
        return [b.node(logical if in_avals[0].dtype == bool else bitwise, ins)]
    if prim == "not":
        return [b.node("Not" if in_avals[0].dtype == bool else "BitwiseNot", ins)]
    if prim == "rem":
        return [b.node("Mod", ins, fmod=1)]
    if prim == "rsqrt":
        return [b.node("Reciprocal", [b.node("Sqrt", ins)])]
    if prim == "square":
        return [b.node("Mul", [ins[0], ins[0]])]
    if prim == "expm1":
        one = b.const(np.ones((), in_avals[0].dtype))
        return [b.node("Sub", [b.node("Exp", ins), one])]
    if prim == "log1p":
        one = b.const(np.ones((), in_avals[0].dtype))
        return [b.node("Log", [b.node("Add", [ins[0], one])])]
    if prim == "exp2":
        return [b.node("Pow", [b.const(np.asarray(2, in_avals[0].dtype)), ins[0]])]
    if prim == "integer_pow":
        y = int(params["y"])
        if y == 2:
            return [b.node("Mul", [ins[0], ins[0]])]
        return [b.node("Pow", [ins[0], b.const(np.asarray(y, in_avals[0].dtype))])]
    if prim == "is_finite":
        bad = b.node("Or", [b.node("IsInf", ins), b.node("IsNaN", ins)])
        return [b.node("Not", [bad])]
    if prim == "round":
        method = int(
            getattr(params.get("rounding_method"), "value", params.get("rounding_method", 1))
        )
        if method == 1:
            return [b.node("Round", ins)]
        half = b.const(np.asarray(0.5, in_avals[0].dtype))
        mag = b.node("Floor", [b.node("Add", [b.node("Abs", ins), half])])
        return [b.node("Mul", [b.node("Sign", ins), mag])]
    if prim == "clamp":
        lo, x, hi = ins
        return [b.node("Max", [b.node("Min", [x, hi]), lo])]
    if prim == "select_n":
        pred, *cases = ins
        if len(cases) == 1:
            return [b.node("Identity", [cases[0]])]
        if in_avals[0].dtype == bool and len(cases) == 2:
            return [b.node("Where", [pred, cases[1], cases[0]])]
        out = cases[0]
        for i, case in enumerate(cases[1:], 1):
            is_i = b.node("Equal", [pred, b.const(np.asarray(i, in_avals[0].dtype))])
            out = b.node("Where", [is_i, case, out])
        return [out]
    if prim == "convert_element_type":
        return [b.node("Cast", ins, to=_onnx_type(params["new_dtype"]))]
    if prim in _REDUCE:
        axes = b.const(np.array(params["axes"], np.int64).reshape(-1))
        return [b.node(_REDUCE[prim], [ins[0], axes], keepdims=0)]
    if prim in ("reduce_and", "reduce_or"):
        axes = b.const(np.array(params["axes"], np.int64).reshape(-1))
        as_int = b.node("Cast", ins, to=_onnx_type(np.int32))
        op = "ReduceMin" if prim == "reduce_and" else "ReduceMax"
        return [b.node("Cast", [b.node(op, [as_int, axes], keepdims=0)], to=_onnx_type(bool))]
    if prim in ("argmax", "argmin"):
        (axis,) = params["axes"]
        op = "ArgMax" if prim == "argmax" else "ArgMin"
        idx = b.node(op, ins, axis=int(axis), keepdims=0)
        return [b.node("Cast", [idx], to=_onnx_type(params["index_dtype"]))]
    if prim == "cumsum":
        axis = b.const(np.asarray(params["axis"], np.int64))
        return [b.node("CumSum", [ins[0], axis], reverse=int(bool(params.get("reverse"))))]
    if prim == "reshape":
        if params.get("dimensions") not in (None, ()):
            raise UnsupportedPrimitive("reshape with dimensions=")
        return [b.node("Reshape", [ins[0], b.ints(list(params["new_sizes"]))])]
    if prim == "transpose":
        return [b.node("Transpose", ins, perm=[int(p) for p in params["permutation"]])]
    if prim == "squeeze":
        axes = b.const(np.array(params["dimensions"], np.int64).reshape(-1))
        return [b.node("Squeeze", [ins[0], axes])]
    if prim == "expand_dims":
        axes = b.const(np.array(params["dimensions"], np.int64).reshape(-1))
        return [b.node("Unsqueeze", [ins[0], axes])]
    if prim == "broadcast_in_dim":
        shape = list(params["shape"])
        bdims = list(params["broadcast_dimensions"])
        x = ins[0]
        missing = [d for d in range(len(shape)) if d not in bdims]
        if bdims != sorted(bdims):
            raise UnsupportedPrimitive("broadcast_in_dim with unsorted broadcast_dimensions")
        if missing:
            x = b.node("Unsqueeze", [x, b.const(np.array(missing, np.int64))])
        return [b.node("Expand", [x, b.ints(shape)])]
    if prim == "concatenate":
        return [b.node("Concat", ins, axis=int(params["dimension"]))]
    if prim == "slice":
        starts, limits = list(params["start_indices"]), list(params["limit_indices"])
        strides = params.get("strides") or [1] * len(starts)
        axes = b.const(np.arange(len(starts), dtype=np.int64))
        return [
            b.node(
                "Slice",
                [ins[0], b.ints(starts), b.ints(limits), axes, b.ints([int(s) for s in strides])],
            )
        ]
    if prim == "rev":
        dims = list(params["dimensions"])
        if not dims:
            return [b.node("Identity", ins)]
        n = len(dims)
        return [
            b.node(
                "Slice",
                [
                    ins[0],
                    b.const(np.full(n, -1, np.int64)),
                    b.const(np.full(n, np.iinfo(np.int64).min, np.int64)),
                    b.const(np.array(dims, np.int64)),
                    b.const(np.full(n, -1, np.int64)),
                ],
            )
        ]
    if prim == "pad":
        config = _static(params["padding_config"], prim, "padding")
        if any(int(i) for _, _, i in config):
            raise UnsupportedPrimitive("pad with interior padding")
        lo = [max(int(lo), 0) for lo, _, _ in config]
        hi = [max(int(hi), 0) for _, hi, _ in config]
        x = b.node("Pad", [ins[0], b.const(np.array(lo + hi, np.int64)), ins[1]], mode="constant")
        if any(int(lo) < 0 or int(hi) < 0 for lo, hi, _ in config):
            starts = [-min(int(lo), 0) for lo, _, _ in config]
            ends = [min(int(hi), 0) or np.iinfo(np.int64).max for _, hi, _ in config]
            axes = b.const(np.arange(len(config), dtype=np.int64))
            x = b.node(
                "Slice",
                [x, b.const(np.array(starts, np.int64)), b.const(np.array(ends, np.int64)), axes],
            )
        return [x]
    if prim == "iota":
        shape, dim = list(params["shape"]), int(params["dimension"])
        n = b.node("Squeeze", [b.ints([shape[dim]])])
        dtype = np.dtype(params["dtype"])
        r = b.node("Range", [b.const(np.int64(0)), n, b.const(np.int64(1))])
        r = b.node("Cast", [r], to=_onnx_type(dtype))
        others = [d for d in range(len(shape)) if d != dim]
        if others:
            r = b.node("Unsqueeze", [r, b.const(np.array(others, np.int64))])
        return [b.node("Expand", [r, b.ints(shape)])]
    if prim == "dot_general":
        return [_dot_general(b, ins, in_avals, params, out_aval)]
    if prim == "gather":
        return [_gather(b, ins, in_avals, params, out_aval)]
    if prim == "conv_general_dilated":
        return [_conv(b, ins, in_avals, params)]
    raise UnsupportedPrimitive(f"the primitive {prim!r} has no ONNX translation")


def _dot_general(b: _Builder, ins: list[str], in_avals: list, params: dict, out_aval: Any) -> str:
    (lc, rc), (lb, rb) = params["dimension_numbers"]
    lhs, rhs = in_avals
    if (
        not lb
        and not rb
        and list(lc) == [lhs.ndim - 1]
        and list(rc) == [0]
        and rhs.ndim == 2
        and lhs.ndim >= 1
    ):
        out = b.node("MatMul", ins)
    else:
        letters = iter("abcdefghijklmnopqrstuvwxyz")
        lhs_l = [next(letters) for _ in range(lhs.ndim)]
        rhs_l = [None] * rhs.ndim
        for li, ri in zip(lb, rb, strict=True):
            rhs_l[ri] = lhs_l[li]
        for li, ri in zip(lc, rc, strict=True):
            rhs_l[ri] = lhs_l[li]
        rhs_l = [x if x is not None else next(letters) for x in rhs_l]
        out_l = [lhs_l[i] for i in lb]
        out_l += [lhs_l[i] for i in range(lhs.ndim) if i not in lb and i not in lc]
        out_l += [rhs_l[i] for i in range(rhs.ndim) if i not in rb and i not in rc]
        eq = f"{''.join(lhs_l)},{''.join(rhs_l)}->{''.join(out_l)}"
        if lhs.dtype != out_aval.dtype or rhs.dtype != out_aval.dtype:
            ins = [b.node("Cast", [x], to=_onnx_type(out_aval.dtype)) for x in ins]
        out = b.node("Einsum", ins, equation=eq)
    return out


def _gather(b: _Builder, ins: list[str], in_avals: list, params: dict, out_aval: Any) -> str:
    """The gathers of ``take``/embedding lookups: one indexed axis, whole slices."""
    dn = params["dimension_numbers"]
    operand, indices = in_avals
    slice_sizes = list(_static(params["slice_sizes"], "gather", "slice sizes"))
    ok = (
        len(dn.start_index_map) == 1
        and tuple(dn.collapsed_slice_dims) == tuple(dn.start_index_map)
        and not getattr(dn, "operand_batching_dims", ())
        and indices.shape[-1:] == (1,)
    )
    if ok:
        axis = dn.start_index_map[0]
        nb = indices.ndim - 1
        want = [1 if d == axis else operand.shape[d] for d in range(operand.ndim)]
        offset = tuple(range(axis)) + tuple(range(axis + nb, axis + nb + operand.ndim - 1 - axis))
        ok = slice_sizes == want and tuple(dn.offset_dims) == offset
    if not ok:
        return _gather_nd(b, ins, in_avals, params, out_aval)
    idx = b.node("Squeeze", [ins[1], b.const(np.array([indices.ndim - 1], np.int64))])
    idx = b.node("Cast", [idx], to=_onnx_type(np.int64))
    n = operand.shape[axis]
    mode = getattr(params.get("mode"), "name", str(params.get("mode")))
    if isinstance(n, Dim):
        raise UnsupportedPrimitive("gather along the batch axis with dynamic_batch=True")
    clipped = b.node("Clip", [idx, b.const(np.int64(0)), b.const(np.int64(max(n - 1, 0)))])
    out = b.node("Gather", [ins[0], clipped], axis=int(axis))
    if mode == "FILL_OR_DROP":
        inside = b.node(
            "And",
            [
                b.node("GreaterOrEqual", [idx, b.const(np.int64(0))]),
                b.node("Less", [idx, b.const(np.int64(n))]),
            ],
        )
        if axis:
            inside = b.node("Unsqueeze", [inside, b.const(np.arange(axis, dtype=np.int64))])
        trailing = operand.ndim - 1 - axis
        if trailing:
            first = axis + indices.ndim - 1
            where = np.arange(first, first + trailing, dtype=np.int64)
            inside = b.node("Unsqueeze", [inside, b.const(where)])
        out = _fill_outside(b, inside, out, params, out_aval)
    return out


def _fill_outside(b: _Builder, inside: str, out: str, params: dict, out_aval: Any) -> str:
    """``out`` where ``inside``, else the gather's fill value (``FILL_OR_DROP`` mode: NaN
    for inexact dtypes, 0 otherwise, as JAX)."""
    fill = params.get("fill_value")
    if fill is None:
        fill = np.nan if out_aval.dtype.kind in "fc" else 0
    return b.node("Where", [inside, out, b.const(np.asarray(fill, out_aval.dtype))])


def _gather_nd(b: _Builder, ins: list[str], in_avals: list, params: dict, out_aval: Any) -> str:
    """Gathers that index the leading ``k`` axes with whole trailing slices (as
    ``take_along_axis`` builds them): ONNX ``GatherND``."""
    dn = params["dimension_numbers"]
    operand, indices = in_avals
    k = indices.shape[-1] if indices.ndim else 0
    lead = tuple(range(k))
    nb = indices.ndim - 1
    slice_sizes = list(params["slice_sizes"])
    if not (
        isinstance(k, int)
        and k >= 1
        and tuple(dn.start_index_map) == lead
        and tuple(dn.collapsed_slice_dims) == lead
        and not getattr(dn, "operand_batching_dims", ())
        and len(slice_sizes) == operand.ndim
        and slice_sizes[:k] == [1] * k
        and all(
            not isinstance(s, Dim) and s == d
            for s, d in zip(slice_sizes[k:], operand.shape[k:], strict=True)
        )
        and tuple(dn.offset_dims) == tuple(range(nb, nb + operand.ndim - k))
    ):
        raise UnsupportedPrimitive(
            f"gather with dimension numbers {dn} (take/embedding lookups along one axis and "
            "gathers of the leading axes have ONNX translations; this one has none)"
        )
    idx = b.node("Cast", [ins[1]], to=_onnx_type(np.int64))
    upper = b.node("Sub", [b.ints(list(operand.shape[:k])), b.const(np.int64(1))])
    clipped = b.node("Max", [b.node("Min", [idx, upper]), b.const(np.int64(0))])
    out = b.node("GatherND", [ins[0], clipped], batch_dims=0)
    mode = getattr(params.get("mode"), "name", str(params.get("mode")))
    if mode == "FILL_OR_DROP":
        ok_lo = b.node("GreaterOrEqual", [idx, b.const(np.int64(0))])
        ok_hi = b.node("LessOrEqual", [idx, upper])
        ok = b.node("Cast", [b.node("And", [ok_lo, ok_hi])], to=_onnx_type(np.int32))
        axes = b.const(np.array([indices.ndim - 1], np.int64))
        inside = b.node("Cast", [b.node("ReduceMin", [ok, axes], keepdims=0)], to=_onnx_type(bool))
        trailing = operand.ndim - k
        if trailing:
            where = np.arange(nb, nb + trailing, dtype=np.int64)
            inside = b.node("Unsqueeze", [inside, b.const(where)])
        out = _fill_outside(b, inside, out, params, out_aval)
    return out


def _conv(b: _Builder, ins: list[str], in_avals: list, params: dict) -> str:
    dn = params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = (list(s) for s in (dn.lhs_spec, dn.rhs_spec, dn.out_spec))
    if any(int(d) != 1 for d in params.get("lhs_dilation") or ()):
        raise UnsupportedPrimitive("conv_general_dilated with lhs_dilation (a transposed conv)")
    if int(params.get("batch_group_count", 1)) != 1:
        raise UnsupportedPrimitive("conv_general_dilated with batch_group_count > 1")
    padding = _static(params["padding"], "conv_general_dilated", "padding")
    x = b.node("Transpose", [ins[0]], perm=lhs_spec)
    w = b.node("Transpose", [ins[1]], perm=rhs_spec)
    n = len(lhs_spec) - 2
    strides = [int(s) for s in params.get("window_strides") or [1] * n]
    dil = [int(s) for s in params.get("rhs_dilation") or [1] * n]
    pads = [int(lo) for lo, _ in padding] + [int(hi) for _, hi in padding]
    if any(p < 0 for p in pads):
        raise UnsupportedPrimitive("conv_general_dilated with negative padding")
    y = b.node(
        "Conv",
        [x, w],
        strides=strides,
        dilations=dil,
        pads=pads,
        group=int(params.get("feature_group_count", 1)),
    )
    inverse = [out_spec.index(i) for i in range(len(out_spec))]
    return b.node("Transpose", [y], perm=inverse)


def _graph_dims(shape: tuple) -> list[Any]:
    return [str(d) if isinstance(d, Dim) else int(d) for d in shape]


def to_onnx(
    fun: Callable | Exported,
    *example_args: Any,
    path: str | os.PathLike | None = None,
    dynamic_batch: bool = True,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> Any:
    """An ONNX ``ModelProto`` computing ``fun(*example_args)``, checked with
    ``onnx.checker``; written to ``path`` (atomically) if given.

    ``dynamic_batch=True``: the first axis of every argument is a symbolic ``batch``, so the
    model takes any batch size. ``fun`` may also be an :class:`Exported` (its own symbolic
    dimensions become the model's). Primitives without an ONNX translation (loops, sorts,
    random bits...) raise ``NotImplementedError`` naming the primitive."""
    onnx = _onnx()

    if isinstance(fun, Exported):
        exp = fun
    else:
        _, leaves = flatten(example_args, "to_onnx")
        if dynamic_batch:
            batch = Dim.symbol("batch")

            def spec(x: Any) -> Any:
                a = x if isinstance(x, ShapeDtypeStruct) else np.asarray(x)
                if len(a.shape) == 0:
                    return ShapeDtypeStruct((), a.dtype)
                return ShapeDtypeStruct((batch,) + tuple(a.shape[1:]), a.dtype)

            tree_args = _map_leaves(example_args, spec)
            try:
                exp = export(fun)(*tree_args)
            except ExportError as e:
                raise ExportError(
                    f"to_onnx: {e}; or convert with dynamic_batch=False (a fixed batch size)"
                ) from None
        else:
            exp = export(fun)(*example_args)
    env = {s: Dim.symbol(s) for s in exp.symbols}

    arrays = exp._arrays
    with symbolic_decoding():
        closed = decode_value(instantiate(exp._json, env), lambda i: arrays[i])
    assert isinstance(closed, ClosedJaxpr)
    b = _Builder(onnx)
    helper = onnx.helper
    n_in, n_out = len(exp._in), len(exp._out)
    in_names = list(input_names or [f"input_{i}" for i in range(n_in)])
    out_names = list(output_names or [f"output_{i}" for i in range(n_out)])
    if len(in_names) != n_in or len(out_names) != n_out:
        raise ValueError(f"to_onnx: expected {n_in} input and {n_out} output names")
    # every symbol's value, read once from the first input axis that is exactly it
    for i, (shape, _) in enumerate(exp._in):
        for axis, d in enumerate(shape):
            if isinstance(d, Dim) and len(d.terms) == 1 and d.const == 0:
                ((s, c),) = d.terms.items()
                if c == 1 and s not in b.sym_tensors:
                    b.sym_tensors[s] = b.node("Shape", [in_names[i]], start=axis, end=axis + 1)
    missing = set(exp.symbols) - set(b.sym_tensors)
    if missing:
        raise UnsupportedPrimitive(
            f"to_onnx: no input axis is exactly the symbol(s) {sorted(missing)}"
        )
    try:
        outs = _convert_jaxpr(b, closed.jaxpr, closed.consts, in_names)
    except UnsupportedPrimitive as e:
        raise UnsupportedPrimitive(f"to_onnx({exp.fun_name}): {e}") from None
    for name, final in zip(out_names, outs, strict=True):
        b.nodes.append(helper.make_node("Identity", [final], [name]))
    inputs = [
        helper.make_tensor_value_info(n, _onnx_type(dt), _graph_dims(s))
        for n, (s, dt) in zip(in_names, exp._in, strict=True)
    ]
    outputs = [
        helper.make_tensor_value_info(n, _onnx_type(dt), _graph_dims(s))
        for n, (s, dt) in zip(out_names, exp._out, strict=True)
    ]
    graph = helper.make_graph(b.nodes, exp.fun_name, inputs, outputs, b.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="funcgrad",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        blob = model.SerializeToString()
        atomic_write(path, lambda f: f.write(blob))
    return model


def _map_leaves(tree: Any, f: Callable[[Any], Any]) -> Any:
    if isinstance(tree, dict):
        return {k: _map_leaves(v, f) for k, v in tree.items()}
    if isinstance(tree, list | tuple) and not hasattr(type(tree), "_fields"):
        return type(tree)(_map_leaves(v, f) for v in tree)
    if tree is None:
        return None
    return f(tree)
