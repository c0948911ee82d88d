"""Products: dot, matmul (``@``), tensordot, einsum, inner, outer, vdot, vecdot.

Decisions:

- Everything is one ``dot_general`` (plus ``transpose``/``reduce_sum``/``reshape`` around it);
  operands are promoted to one dtype first (NEP 50), and the dtype is kept: an int32 matmul
  is int32 (as NumPy), a bool one bool.
- ``matmul`` broadcasts batch dimensions; a batch dimension of size 1 against size n is
  broadcast (materialized) before the ``dot_general``; a 2-d right operand needs no batch
  dimensions at all (one matrix product over the flattened batch).
- ``einsum`` supports explicit (``->``) and implicit output, ``...``, repeated indices
  within an operand (diagonals), indices summed within one operand, batch indices, and
  size-1 broadcasting; operands are contracted pairwise in the order of NumPy's greedy
  ``einsum_path`` (left to right for two operands). The interleaved (sublist) form works too.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad import numpy as fnp
from funcgrad.numpy import util
from funcgrad.numpy.util import shape_of, to_operand


def _promote(name: str, *args: Any) -> list[Any]:
    return util.promote_args(f"fnp.{name}", *args)


def dot(a: Any, b: Any, out: Any = None) -> Any:
    """NumPy's ``dot``: inner product of vectors, matrix product, sum over the last axis of
    ``a`` and the second-to-last of ``b``."""
    util.check_no_out("dot", out)
    a, b = _promote("dot", a, b)
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if not sa or not sb:
        return fnp.multiply(a, b)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[cb]:
        raise ValueError(
            f"fnp.dot: shapes {sa} and {sb} not aligned: {sa[-1]} (dim {len(sa) - 1}) != "
            f"{sb[cb]} (dim {cb})"
        )
    return lax.dot_general(a, b, (((len(sa) - 1,), (cb,)), ((), ())))


def vdot(a: Any, b: Any) -> Any:
    """Dot product of the flattened arrays."""
    a, b = _promote("vdot", a, b)
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    na, nb = int(np.prod(sa)), int(np.prod(sb))
    if na != nb:
        raise ValueError(f"fnp.vdot: the arrays have {na} and {nb} elements; they must match")
    if util.dtype_of(a).kind == "c":  # NumPy conjugates the first argument
        a = lax.conj(a)
    return lax.dot_general(lax.reshape(a, (na,)), lax.reshape(b, (nb,)), (((0,), (0,)), ((), ())))


def inner(a: Any, b: Any) -> Any:
    """Sum over the last axes of ``a`` and ``b``."""
    a, b = _promote("inner", a, b)
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if not sa or not sb:
        return fnp.multiply(a, b)
    if sa[-1] != sb[-1]:
        raise ValueError(
            f"fnp.inner: the last dimensions of {sa} and {sb} differ ({sa[-1]} != {sb[-1]})"
        )
    return lax.dot_general(a, b, (((len(sa) - 1,), (len(sb) - 1,)), ((), ())))


def outer(a: Any, b: Any, out: Any = None) -> Any:
    """``a.ravel()[:, None] * b.ravel()[None, :]``."""
    util.check_no_out("outer", out)
    a, b = to_operand(a, "fnp.outer"), to_operand(b, "fnp.outer")
    na, nb = int(np.prod(shape_of(a))), int(np.prod(shape_of(b)))
    return fnp.multiply(lax.reshape(a, (na, 1)), lax.reshape(b, (1, nb)))


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """Dot products of vectors along ``axis`` (broadcasting the rest)."""
    x1, x2 = _promote("vecdot", x1, x2)
    s1, s2 = tuple(shape_of(x1)), tuple(shape_of(x2))
    if not s1 or not s2:
        raise ValueError("fnp.vecdot: needs arrays of at least 1 dimension")
    p = fnp.multiply(x1, x2)
    ax = util.canonicalize_axis(axis, len(shape_of(p)), "vecdot")
    a1 = util.canonicalize_axis(axis, len(s1), "vecdot")
    a2 = util.canonicalize_axis(axis, len(s2), "vecdot")
    if s1[a1] != s2[a2]:
        raise ValueError(f"fnp.vecdot: vector sizes differ along axis {axis}: {s1} and {s2}")
    return lax.reduce_sum(p, (ax,)) if util.dtype_of(p) != np.bool_ else lax.reduce_or(p, (ax,))


def matmul(x1: Any, x2: Any, /, out: Any = None) -> Any:
    """Matrix product with NumPy's rules (1-d promotion, broadcast batch dimensions)."""
    util.check_no_out("matmul", out)
    a, b = _promote("matmul", x1, x2)
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    for i, s in enumerate((sa, sb)):
        if not s:
            raise ValueError(
                f"fnp.matmul: input operand {i} is 0-dimensional; matmul needs arrays of at "
                "least 1 dimension (use fnp.multiply for scalars)"
            )
    k_a = sa[-1]
    k_b = sb[0] if len(sb) == 1 else sb[-2]
    if k_a != k_b:
        raise ValueError(
            f"fnp.matmul: contraction dimensions differ: {tuple(shape_of(x1))} @ "
            f"{tuple(shape_of(x2))} ({k_a} != {k_b}); the last axis of the first "
            "operand must match the second-to-last of the second"
        )
    # A vector operand or a 2-D right operand needs no batch dimensions: one dot_general,
    # whose output layout (lhs free, then rhs free) is already NumPy's.
    if len(sa) == 1 or len(sb) <= 2:
        rhs_contract = 0 if len(sb) == 1 else len(sb) - 2
        return lax.dot_general(a, b, (((len(sa) - 1,), (rhs_contract,)), ((), ())))
    ba, bb = sa[:-2], sb[:-2]
    try:
        bshape = np.broadcast_shapes(ba, bb)
    except ValueError:
        raise ValueError(
            f"fnp.matmul: batch dimensions {ba} and {bb} do not broadcast "
            f"({tuple(shape_of(x1))} @ {tuple(shape_of(x2))})"
        ) from None
    a = _broadcast_batch(a, bshape)
    b = _broadcast_batch(b, bshape)
    nb = len(bshape)
    batch = tuple(range(nb))
    return lax.dot_general(a, b, (((nb + 1,), (nb,)), (batch, batch)))


def _broadcast_batch(x: Any, bshape: tuple[int, ...]) -> Any:
    s = tuple(shape_of(x))
    target = tuple(bshape) + s[-2:]
    if s == target:
        return x
    lead = len(target) - len(s)
    return lax.broadcast_in_dim(x, target, tuple(range(lead, len(target))))


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """Sum products over ``axes`` (an int N: the last N of ``a`` with the first N of ``b``;
    or a pair of axis sequences)."""
    a, b = _promote("tensordot", a, b)
    sa, sb = tuple(shape_of(a)), tuple(shape_of(b))
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > len(sa) or n > len(sb):
            raise ValueError(f"fnp.tensordot: axes={n} is invalid for shapes {sa} and {sb}")
        ax_a = tuple(range(len(sa) - n, len(sa)))
        ax_b = tuple(range(n))
    else:
        try:
            ax_a, ax_b = axes
        except (TypeError, ValueError):
            raise ValueError(
                f"fnp.tensordot: axes must be an int or a pair of sequences, got {axes!r}"
            ) from None
        ax_a = (ax_a,) if isinstance(ax_a, (int, np.integer)) else tuple(ax_a)
        ax_b = (ax_b,) if isinstance(ax_b, (int, np.integer)) else tuple(ax_b)
        if len(ax_a) != len(ax_b):
            raise ValueError(
                f"fnp.tensordot: {len(ax_a)} axes of a but {len(ax_b)} of b; give equally many"
            )
        ax_a = tuple(util.canonicalize_axis(x, len(sa), "tensordot") for x in ax_a)
        ax_b = tuple(util.canonicalize_axis(x, len(sb), "tensordot") for x in ax_b)
    for i, j in zip(ax_a, ax_b, strict=False):
        if sa[i] != sb[j]:
            raise ValueError(
                f"fnp.tensordot: shape-mismatch for sum: axis {i} of {sa} has size {sa[i]} but "
                f"axis {j} of {sb} has size {sb[j]}"
            )
    return lax.dot_general(a, b, ((ax_a, ax_b), ((), ())))


# ----------------------------------------------------------------------------------------
# einsum


def _parse_einsum(subscripts: Any, operands: tuple) -> tuple[str, list[Any]]:
    """The sublist (interleaved) form as a subscripts string; the operands."""
    if isinstance(subscripts, str):
        return subscripts, list(operands)
    args = [subscripts, *operands]
    ops, subs = args[0::2], args[1::2]
    out_sub = None
    if len(ops) > len(subs):
        out_sub = ops.pop()  # a trailing output sublist

    def conv(sub: Any) -> str:
        out = []
        for s in sub:
            if s is Ellipsis:
                out.append("...")
            else:
                out.append(string.ascii_letters[int(s)])
        return "".join(out)

    text = ",".join(conv(s) for s in subs)
    if out_sub is not None:
        text += "->" + conv(out_sub)
    return text, ops


def _labels(subscripts: str, shapes: list[tuple[int, ...]]) -> tuple[list[list[str]], list[str]]:
    """Per-operand label lists and the output labels, with ``...`` expanded."""
    subscripts = subscripts.replace(" ", "")
    if "->" in subscripts:
        lhs, rhs = subscripts.split("->")
        explicit = True
    else:
        lhs, rhs, explicit = subscripts, "", False
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(
            f"fnp.einsum: {len(ins)} operand subscripts in {subscripts!r} for {len(shapes)} "
            "operands"
        )
    used = set(subscripts) - set(".,->")
    for c in used:
        if c not in string.ascii_letters:
            raise ValueError(f"fnp.einsum: invalid subscript {c!r} in {subscripts!r}")
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = 0
    for term, s in zip(ins, shapes, strict=False):
        if "..." in term:
            n_ell = max(n_ell, len(s) - (len(term) - 3))
    ell = free[:n_ell]
    labels = []
    for term, s in zip(ins, shapes, strict=False):
        if "..." in term:
            k = len(s) - (len(term) - 3)
            if k < 0:
                raise ValueError(f"fnp.einsum: operand subscripts {term!r} too long for {s}")
            pre, post = term.split("...")
            lab = list(pre) + (ell[n_ell - k :] if k else []) + list(post)
        else:
            lab = list(term)
        if len(lab) != len(s):
            raise ValueError(
                f"fnp.einsum: operand subscripts {term!r} have {len(lab)} labels for an "
                f"operand of shape {s}"
            )
        labels.append(lab)
    if explicit:
        if "..." in rhs:
            pre, post = rhs.split("...")
            out = list(pre) + ell + list(post)
        else:
            out = list(rhs)
        all_in = {c for lab in labels for c in lab}
        for c in out:
            if c not in all_in:
                raise ValueError(
                    f"fnp.einsum: output subscript {c!r} does not appear in the inputs"
                )
        if len(set(out)) != len(out):
            raise ValueError(f"fnp.einsum: output subscript {rhs!r} repeats a label")
    else:
        counts: dict[str, int] = {}
        for lab in labels:
            for c in lab:
                if c not in ell:
                    counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1)
    return labels, out


def einsum(
    subscripts: Any,
    *operands: Any,
    out: Any = None,
    optimize: Any = "greedy",
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Any:
    """Einstein summation over ``operands`` (explicit or implicit output, ``...``)."""
    util.check_no_out("einsum", out)
    text, ops = _parse_einsum(subscripts, operands)
    if not ops:
        raise ValueError("fnp.einsum: needs at least one operand")
    ops = _promote("einsum", *ops)
    shapes = [tuple(shape_of(o)) for o in ops]
    labels, out_labels = _labels(text, shapes)
    sizes: dict[str, int] = {}
    for lab, s in zip(labels, shapes, strict=False):
        for c, d in zip(lab, s, strict=False):
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(
                    f"fnp.einsum: label {c!r} has sizes {sizes[c]} and {d} in {text!r} with "
                    f"shapes {shapes}"
                )
            if d != 1 or c not in sizes:  # size 1 broadcasts (to any size, 0 included)
                sizes[c] = d
    terms = [(o, list(lab)) for o, lab in zip(ops, labels, strict=False)]
    # Diagonals (a label repeated within one operand) and labels only one operand has.
    for i, (x, lab) in enumerate(terms):
        x, lab = _take_diagonals(x, lab)
        others = {c for j, (_, lb) in enumerate(terms) if j != i for c in lb}
        dead = [k for k, c in enumerate(lab) if c not in others and c not in out_labels]
        if dead:
            x = (
                lax.reduce_sum(x, tuple(dead))
                if util.dtype_of(x) != np.bool_
                else lax.reduce_or(x, tuple(dead))
            )
            lab = [c for k, c in enumerate(lab) if k not in dead]
        terms[i] = (x, lab)
    for i, j in _contraction_order(text, shapes, len(terms), optimize):
        (x, lx), (y, ly) = terms[i], terms[j]
        rest = [t for k, t in enumerate(terms) if k not in (i, j)]
        keep = set(out_labels) | {c for _, lb in rest for c in lb}
        terms = rest + [_contract(x, lx, y, ly, keep, sizes)]
    (x, lab) = terms[0]
    dead = [k for k, c in enumerate(lab) if c not in out_labels]
    if dead:
        x = (
            lax.reduce_sum(x, tuple(dead))
            if util.dtype_of(x) != np.bool_
            else lax.reduce_or(x, tuple(dead))
        )
        lab = [c for k, c in enumerate(lab) if k not in dead]
    s = tuple(shape_of(x))
    target = tuple(sizes[c] for c in lab)
    if s != target:
        x = lax.broadcast_in_dim(x, target, tuple(range(len(s))))
    perm = tuple(lab.index(c) for c in out_labels)
    if perm != tuple(range(len(perm))):
        x = lax.transpose(x, perm)
    if any(x is o for o in ops):
        x = util.fresh(x)
    if preferred_element_type is not None:
        x = util.convert(x, np.dtype(preferred_element_type))
    return x


def _take_diagonals(x: Any, lab: list[str]) -> tuple[Any, list[str]]:
    while True:
        dup = next((c for c in lab if lab.count(c) > 1), None)
        if dup is None:
            return x, lab
        i = lab.index(dup)
        j = lab.index(dup, i + 1)
        x = fnp.diagonal(x, 0, i, j)
        lab = [c for k, c in enumerate(lab) if k not in (i, j)] + [dup]


def _contraction_order(text: str, shapes: list, n: int, optimize: Any) -> list[tuple[int, int]]:
    """Pairs to contract, as indices into the shrinking operand list (new ones go last)."""
    if n <= 2 or optimize is False:
        return [(0, 1)] * (n - 1)
    try:
        dummies = [np.broadcast_to(np.zeros((), np.float32), s) for s in shapes]
        path, _ = np.einsum_path(
            text, *dummies, optimize="greedy" if optimize is True else optimize
        )
        pairs = [tuple(p) for p in path[1:]]
        if all(len(p) == 2 for p in pairs) and len(pairs) == n - 1:
            return [(min(p), max(p)) for p in pairs]
    except Exception:  # noqa: BLE001 - fall back to left-to-right
        pass
    return [(0, 1)] * (n - 1)


def _contract(
    x: Any, lx: list[str], y: Any, ly: list[str], keep: set[str], sizes: dict[str, int]
) -> tuple[Any, list[str]]:
    """One pairwise contraction: shared labels in ``keep`` batch, the others contract."""
    shared = [c for c in lx if c in ly]
    # Size-1 against size-n on a shared label: broadcast the size-1 side.
    x = _expand(x, lx, shared, sizes)
    y = _expand(y, ly, shared, sizes)
    for side in (0, 1):
        z, lz, other = (x, lx, ly) if side == 0 else (y, ly, lx)
        dead = [k for k, c in enumerate(lz) if c not in other and c not in keep]
        if dead:
            z = (
                lax.reduce_sum(z, tuple(dead))
                if util.dtype_of(z) != np.bool_
                else lax.reduce_or(z, tuple(dead))
            )
            lz = [c for k, c in enumerate(lz) if k not in dead]
        if side == 0:
            x, lx = z, lz
        else:
            y, ly = z, lz
    batch = [c for c in shared if c in keep]
    contract = [c for c in shared if c not in keep]
    dims = (
        (tuple(lx.index(c) for c in contract), tuple(ly.index(c) for c in contract)),
        (tuple(lx.index(c) for c in batch), tuple(ly.index(c) for c in batch)),
    )
    out = lax.dot_general(x, y, dims)
    lab = batch + [c for c in lx if c not in shared] + [c for c in ly if c not in shared]
    return out, lab


def _expand(x: Any, lab: list[str], shared: list[str], sizes: dict[str, int]) -> Any:
    s = tuple(shape_of(x))
    target = tuple(sizes[c] if c in shared else d for c, d in zip(lab, s, strict=False))
    if target == s:
        return x
    return lax.broadcast_in_dim(x, target, tuple(range(len(s))))
