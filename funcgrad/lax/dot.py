"""The contraction primitive ``dot_general`` (and the ``dot``/``batch_matmul`` wrappers).

``dot_general`` follows JAX: ``dimension_numbers = ((lhs_contract, rhs_contract),
(lhs_batch, rhs_batch))``; the output holds the batch dimensions (in the order given), then
the free dimensions of ``lhs``, then those of ``rhs``, each in axis order. Operands share a
dtype (``funcgrad.numpy`` promotes first) unless ``preferred_element_type`` is given, in
which case both are converted to it and the product is computed in it. The dtype is kept:
an int32 matmul gives int32 (wrapping on overflow, as NumPy's).

Batching never loops: batched operands become extra dimensions of one ``dot_general``
(both batched: a new batch-dimension pair; one batched: a free dimension of that operand),
so ``vmap`` of a matmul is a single ``dot_general``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from funcgrad import lax, pretty
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import ANY, as_dtype, check_dtype

DotDimensionNumbers = tuple[tuple[tuple[int, ...], tuple[int, ...]], tuple[tuple[int, ...], ...]]


def _free_dims(ndim: int, contract: tuple[int, ...], batch: tuple[int, ...]) -> list[int]:
    return [d for d in range(ndim) if d not in contract and d not in batch]


_canonical_cache: dict[Any, DotDimensionNumbers] = {}


def _canonical_dims(dimension_numbers: Any) -> DotDimensionNumbers:
    """``dimension_numbers`` as hashable nested tuples of ints (lists and arrays accepted)."""
    try:  # the hot path (every matmul): an already-seen tuple
        return _canonical_cache[dimension_numbers]
    except (KeyError, TypeError):
        pass
    try:
        (lc, rc), (lb, rb) = dimension_numbers
        out = (
            (tuple(int(d) for d in lc), tuple(int(d) for d in rc)),
            (tuple(int(d) for d in lb), tuple(int(d) for d in rb)),
        )
    except (TypeError, ValueError):
        raise ValueError(
            "dot_general: dimension_numbers must be ((lhs_contracting_dims, "
            "rhs_contracting_dims), (lhs_batch_dims, rhs_batch_dims)), e.g. (((1,), (0,)), "
            f"((), ())) for a matrix product; got {dimension_numbers!r}"
        ) from None
    try:
        if len(_canonical_cache) < 1024:
            _canonical_cache[dimension_numbers] = out
    except TypeError:  # lists: not cached
        pass
    return out


# -- dot_general
dot_general_p = Primitive("dot_general")


def dot_general(
    lhs: Any,
    rhs: Any,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Any:
    """General tensor contraction with batch dimensions (JAX's ``lax.dot_general``).

    ``precision`` is accepted for JAX compatibility and ignored (NumPy computes in the
    operand dtype). Output layout: batch dims, then lhs free dims, then rhs free dims.
    """
    del precision
    pet = None if preferred_element_type is None else as_dtype(preferred_element_type)
    return dot_general_p.bind(
        lhs, rhs, dimension_numbers=_canonical_dims(dimension_numbers), preferred_element_type=pet
    )


def _dims_error(lhs: ShapedArray, rhs: ShapedArray, dims: DotDimensionNumbers, why: str):
    return ValueError(
        f"dot_general: {why} (lhs {lhs.str_short()}, rhs {rhs.str_short()}, "
        f"dimension_numbers={dims})"
    )


@dot_general_p.def_abstract_eval
def _dot_general_abstract_eval(lhs, rhs, *, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    check_dtype("dot_general", lhs, ANY)
    check_dtype("dot_general", rhs, ANY)
    if preferred_element_type is None and lhs.dtype != rhs.dtype:
        raise TypeError(
            f"dot_general: operands must have one dtype, got lhs {lhs.str_short()} and rhs "
            f"{rhs.str_short()}; use funcgrad.numpy.matmul/dot/einsum (which promote), "
            "`.astype`, or pass preferred_element_type"
        )
    if len(lc) != len(rc):
        raise _dims_error(
            lhs,
            rhs,
            dimension_numbers,
            f"{len(lc)} lhs contracting dimensions but {len(rc)} rhs contracting dimensions; "
            "give one rhs dimension per lhs dimension",
        )
    if len(lb) != len(rb):
        raise _dims_error(
            lhs,
            rhs,
            dimension_numbers,
            f"{len(lb)} lhs batch dimensions but {len(rb)} rhs batch dimensions; give one "
            "rhs dimension per lhs dimension",
        )
    for name, x, c, b in (("lhs", lhs, lc, lb), ("rhs", rhs, rc, rb)):
        used = c + b
        if any(not 0 <= d < x.ndim for d in used):
            raise _dims_error(
                lhs,
                rhs,
                dimension_numbers,
                f"{name} dimensions {used} out of range for rank {x.ndim}; use axes in "
                f"[0, {x.ndim})",
            )
        if len(set(used)) != len(used):
            raise _dims_error(
                lhs,
                rhs,
                dimension_numbers,
                f"{name} contracting and batch dimensions {used} repeat an axis; each axis "
                "may appear once",
            )
    for kind, ls, rs in (("contracting", lc, rc), ("batch", lb, rb)):
        for a, b in zip(ls, rs, strict=True):
            if lhs.shape[a] != rhs.shape[b]:
                raise _dims_error(
                    lhs,
                    rhs,
                    dimension_numbers,
                    f"{kind} dimensions have sizes {lhs.shape[a]} and {rhs.shape[b]} (lhs axis "
                    f"{a}, rhs axis {b}); paired {kind} dimensions must have equal sizes "
                    "(transpose or reshape an operand)",
                )
    shape = (
        tuple(lhs.shape[d] for d in lb)
        + tuple(lhs.shape[d] for d in _free_dims(lhs.ndim, lc, lb))
        + tuple(rhs.shape[d] for d in _free_dims(rhs.ndim, rc, rb))
    )
    dtype = lhs.dtype if preferred_element_type is None else preferred_element_type
    return ShapedArray(shape, dtype)


def _prod(xs) -> int:
    n = 1
    for x in xs:
        n *= x
    return n


@dot_general_p.def_impl
def _dot_general_impl(lhs, rhs, *, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    if preferred_element_type is not None:
        lhs = lhs.astype(preferred_element_type, copy=False)
        rhs = rhs.astype(preferred_element_type, copy=False)
    if lhs.dtype != rhs.dtype:
        raise TypeError("dot_general: operand dtypes differ")  # abstract eval says why
    if not lb and lhs.ndim + rhs.ndim >= 3 and lhs.ndim <= 2 and rhs.ndim <= 2 and len(lc) == 1:
        # Matrix (or matrix-vector) products, also with transposed operands (the backward
        # pass of a matmul): straight to BLAS through NumPy's matmul (a fresh array).
        if lhs.ndim == 2 and lc[0] == 0:
            lhs = lhs.T
        if rhs.ndim == 2 and rc[0] == 1:
            rhs = rhs.T
        return lhs @ rhs
    lf = _free_dims(lhs.ndim, lc, lb)
    rf = _free_dims(rhs.ndim, rc, rb)
    bshape = tuple(lhs.shape[d] for d in lb)
    lfshape = tuple(lhs.shape[d] for d in lf)
    rfshape = tuple(rhs.shape[d] for d in rf)
    k = _prod(lhs.shape[d] for d in lc)
    if tuple(rhs.shape[d] for d in rb) != bshape or k != _prod(rhs.shape[d] for d in rc):
        raise ValueError("dot_general: dimension sizes differ")  # abstract eval says why
    a = lhs.transpose((*lb, *lf, *lc)).reshape((*bshape, _prod(lfshape), k))
    b = rhs.transpose((*rb, *rc, *rf)).reshape((*bshape, k, _prod(rfshape)))
    out = np.matmul(a, b)
    return out.reshape(bshape + lfshape + rfshape)


def _dot_general_jvp_lhs(g, lhs, rhs, *, dimension_numbers, preferred_element_type):
    return dot_general_p.bind(
        g, rhs, dimension_numbers=dimension_numbers, preferred_element_type=preferred_element_type
    )


def _dot_general_jvp_rhs(g, lhs, rhs, *, dimension_numbers, preferred_element_type):
    return dot_general_p.bind(
        lhs, g, dimension_numbers=dimension_numbers, preferred_element_type=preferred_element_type
    )


def _transpose_operand(
    ct: Any,
    x_aval: ShapedArray,
    y: Any,
    x_contract: tuple[int, ...],
    y_contract: tuple[int, ...],
    x_batch: tuple[int, ...],
    y_batch: tuple[int, ...],
    ct_y_free: tuple[int, ...],
) -> Any:
    """The cotangent of operand ``x`` of a dot_general with the other operand ``y``.

    Contract ``ct`` with ``y`` over y's free dimensions (which sit at ``ct_y_free`` in ct),
    batching over the batch dimensions. The result holds x's batch dims, x's free dims, then
    x's contracting dims ordered as y's matching dims appear in y; one transpose puts them
    back in x's axis order. When contracting in the other operand order (``y`` first) gives
    x's order directly (the right operand of a matrix product: ``lhs.T @ ct``), that order
    is used and no transpose is needed.
    """

    y_aval = get_aval(y)
    nb = len(x_batch)
    y_free = tuple(_free_dims(y_aval.ndim, y_contract, y_batch))
    ct_dtype = get_aval(ct).dtype
    pet = None if ct_dtype == y_aval.dtype else ct_dtype
    x_free = _free_dims(x_aval.ndim, x_contract, x_batch)
    x_contract_in_y_order = [x_contract[i] for i in np.argsort(y_contract)]
    identity = list(range(x_aval.ndim))
    batch = tuple(range(nb))
    order = list(x_batch) + x_free + x_contract_in_y_order
    if order != identity and list(x_batch) + x_contract_in_y_order + x_free == identity:
        # y first puts the result in x's axis order already (the rhs of a matrix product:
        # lhs.T @ ct), so no transpose is needed.
        return _as_dtype(
            dot_general_p.bind(
                y,
                ct,
                dimension_numbers=((y_free, ct_y_free), (y_batch, batch)),
                preferred_element_type=pet,
            ),
            x_aval.dtype,
        )
    out = dot_general_p.bind(
        ct,
        y,
        dimension_numbers=((ct_y_free, y_free), (batch, y_batch)),
        preferred_element_type=pet,
    )
    perm = tuple(order.index(d) for d in range(x_aval.ndim))
    if list(perm) != identity:
        out = lax.transpose(out, perm)
    return _as_dtype(out, x_aval.dtype)


def _as_dtype(out: Any, dtype: np.dtype) -> Any:

    if get_aval(out).dtype != dtype:
        out = lax.convert_element_type(out, dtype)
    return out


def _dot_general_transpose(ct, lhs, rhs, *, dimension_numbers, preferred_element_type):
    (lc, rc), (lb, rb) = dimension_numbers
    lhs_undef, rhs_undef = ad.is_undefined_primal(lhs), ad.is_undefined_primal(rhs)
    if lhs_undef and rhs_undef:
        raise NotImplementedError("dot_general is bilinear: transpose it in one operand at a time")
    lhs_aval = lhs.aval if lhs_undef else get_aval(lhs)
    rhs_aval = rhs.aval if rhs_undef else get_aval(rhs)
    nb = len(lb)
    n_lfree = lhs_aval.ndim - len(lc) - nb
    n_rfree = rhs_aval.ndim - len(rc) - nb
    if lhs_undef:
        ct_rfree = tuple(range(nb + n_lfree, nb + n_lfree + n_rfree))
        return [_transpose_operand(ct, lhs_aval, rhs, lc, rc, lb, rb, ct_rfree), None]
    ct_lfree = tuple(range(nb, nb + n_lfree))
    return [None, _transpose_operand(ct, rhs_aval, lhs, rc, lc, rb, lb, ct_lfree)]


def _shift(dims: tuple[int, ...], bdim: int) -> tuple[int, ...]:
    """Axis numbers of an operand after a batch axis is inserted at ``bdim``."""
    return tuple(d + (d >= bdim) for d in dims)


def _dot_general_batch(args, dims, *, dimension_numbers, preferred_element_type):
    lhs, rhs = args
    ld, rd = dims
    (lc, rc), (lb, rb) = dimension_numbers
    params = dict(preferred_element_type=preferred_element_type)
    if ld is not None and rd is not None:
        # A new batch-dimension pair, first in the output.
        new = ((_shift(lc, ld), _shift(rc, rd)), ((ld, *_shift(lb, ld)), (rd, *_shift(rb, rd))))
        return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), 0
    if ld is not None:
        # lhs's batch axis is one more lhs free dimension.
        lc2, lb2 = _shift(lc, ld), _shift(lb, ld)
        lfree = _free_dims(get_aval(lhs).ndim, lc2, lb2)
        new = ((lc2, rc), (lb2, rb))
        out_dim = len(lb) + lfree.index(ld)
        return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), out_dim
    rc2, rb2 = _shift(rc, rd), _shift(rb, rd)
    rfree = _free_dims(get_aval(rhs).ndim, rc2, rb2)
    n_lfree = get_aval(lhs).ndim - len(lc) - len(lb)
    new = ((lc, rc2), (lb, rb2))
    out_dim = len(lb) + n_lfree + rfree.index(rd)
    return dot_general_p.bind(lhs, rhs, dimension_numbers=new, **params), out_dim


ad.defjvp(dot_general_p, _dot_general_jvp_lhs, _dot_general_jvp_rhs)
ad.primitive_transposes[dot_general_p] = _dot_general_transpose
batching.primitive_batchers[dot_general_p] = _dot_general_batch


def _is_dot_dims(value: Any) -> bool:
    return (
        type(value) is tuple
        and len(value) == 2
        and all(type(p) is tuple and len(p) == 2 for p in value)
        and all(type(t) is tuple for p in value for t in p)
    )


_other_pp_dimension_numbers = pretty.pp_param_rules.get("dimension_numbers")


def _pp_dimension_numbers(value: Any, namer: Any) -> str:
    """JAX's text for dot_general's dimension numbers: ``(([1], [0]), ([], []))``."""
    if not _is_dot_dims(value):
        other = _other_pp_dimension_numbers
        return other(value, namer) if other is not None else repr(value)
    (lc, rc), (lb, rb) = value
    return f"(({list(lc)}, {list(rc)}), ({list(lb)}, {list(rb)}))"


# Other families (conv) print their own NamedTuple dimension numbers: defer to them.
pretty.pp_param_rules["dimension_numbers"] = _pp_dimension_numbers


# -- wrappers


def dot(lhs: Any, rhs: Any, precision: Any = None, preferred_element_type: Any = None) -> Any:
    """Vector/matrix products of rank-1 and rank-2 operands (JAX's ``lax.dot``)."""
    la, ra = get_aval(lhs), get_aval(rhs)
    if not (1 <= la.ndim <= 2 and 1 <= ra.ndim <= 2):
        raise TypeError(
            f"dot: operands must be vectors or matrices, got {la.str_short()} and "
            f"{ra.str_short()}; use dot_general or funcgrad.numpy.matmul/tensordot"
        )
    return dot_general(
        lhs, rhs, (((la.ndim - 1,), (0,)), ((), ())), precision, preferred_element_type
    )


def batch_matmul(lhs: Any, rhs: Any, precision: Any = None) -> Any:
    """Batched matrix product over leading batch axes of equal rank (JAX's ``batch_matmul``)."""
    la, ra = get_aval(lhs), get_aval(rhs)
    if la.ndim < 2 or la.ndim != ra.ndim:
        raise ValueError(
            f"batch_matmul: operands must have equal rank >= 2, got {la.str_short()} and "
            f"{ra.str_short()}; use funcgrad.numpy.matmul, which broadcasts"
        )
    n = la.ndim
    batch = tuple(range(n - 2))
    return dot_general(lhs, rhs, (((n - 1,), (n - 2,)), (batch, batch)), precision)
