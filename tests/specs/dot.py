"""Spec cases for dot_general (funcgrad/lax/dot.py).

Reference: ``np.einsum`` in float64 (then cast to the result dtype), written per case as a
subscript string, so the layout rule (batch dims, lhs free dims, rhs free dims) is checked
against an independent formulation rather than the transpose/reshape/matmul of the impl.
"""

from __future__ import annotations

import numpy as np

from tests.specs import ALL, FLOATS, NUMBERS, Case, normal


def _einsum_ref(subscripts, out_dtype=None):
    def ref(lhs, rhs, *, dimension_numbers, preferred_element_type):
        dtype = preferred_element_type or out_dtype or lhs.dtype
        wide = np.float64 if np.dtype(dtype).kind == "f" else np.int64
        out = np.einsum(subscripts, lhs.astype(wide), rhs.astype(wide))
        return np.asarray(out).astype(dtype)

    return ref


def _dot(name, lhs_shape, rhs_shape, dims, subscripts, dtypes=NUMBERS, pet=None, **kw):
    (lc, rc), (lb, rb) = dims
    params = dict(
        dimension_numbers=((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))),
        preferred_element_type=None if pet is None else np.dtype(pet),
    )
    return Case(
        "dot_general",
        lambda rng, dt: (normal(rng, lhs_shape, dt), normal(rng, rhs_shape, dt)),
        _einsum_ref(subscripts),
        params,
        dtypes=dtypes,
        linear=((0,), (1,)),
        name=name,
        **kw,
    )


CASES = [
    _dot("matmul", (3, 4), (4, 5), (((1,), (0,)), ((), ())), "ij,jk->ik", dtypes=ALL),
    _dot(
        "batch_matmul_bool",
        (2, 3, 4),
        (2, 4, 5),
        (((2,), (1,)), ((0,), (0,))),
        "bij,bjk->bik",
        dtypes=ALL,
    ),
    _dot("matmul_lhsT", (4, 3), (4, 5), (((0,), (0,)), ((), ())), "ji,jk->ik"),
    _dot("batch_matmul", (2, 3, 4), (2, 4, 5), (((2,), (1,)), ((0,), (0,))), "bij,bjk->bik"),
    # Batch and contracting dims in unusual places: output is (batch, lhs free, rhs free).
    _dot("permuted", (4, 2, 3), (5, 3, 2), (((2,), (1,)), ((1,), (2,))), "kbc,jcb->bkj"),
    _dot(
        "two_batch", (2, 3, 4, 2), (3, 2, 2, 5), (((3,), (2,)), ((0, 1), (1, 0))), "abck,bakd->abcd"
    ),
    _dot("multi_contract", (2, 3, 4), (3, 4, 5), (((1, 2), (0, 1)), ((), ())), "ijk,jkl->il"),
    _dot("contract_reversed", (3, 4), (4, 3), (((0, 1), (1, 0)), ((), ())), "ij,ji->"),
    _dot("vecdot", (4,), (4,), (((0,), (0,)), ((), ())), "i,i->"),
    _dot("matvec", (3, 4), (4,), (((1,), (0,)), ((), ())), "ij,j->i"),
    _dot("vecmat", (4,), (4, 3), (((0,), (0,)), ((), ())), "j,jk->k"),
    _dot("outer", (3,), (2,), (((), ()), ((), ())), "i,j->ij"),
    _dot("scalar_times", (), (2, 3), (((), ()), ((), ())), ",ij->ij"),
    _dot("size0_contract", (3, 0), (0, 2), (((1,), (0,)), ((), ())), "ij,jk->ik"),
    _dot("size0_free", (0, 4), (4, 2), (((1,), (0,)), ((), ())), "ij,jk->ik"),
    _dot("size0_batch", (0, 2, 3), (0, 3, 2), (((2,), (1,)), ((0,), (0,))), "bij,bjk->bik"),
    _dot("size1", (1, 1, 3), (1, 3, 1), (((2,), (1,)), ((0,), (0,))), "bij,bjk->bik"),
    # preferred_element_type: computed in and returned as that dtype.
    _dot(
        "pet_f64",
        (3, 4),
        (4, 2),
        (((1,), (0,)), ((), ())),
        "ij,jk->ik",
        dtypes=(np.float32, np.int32),
        pet=np.float64,
    ),
    _dot(
        "pet_f64_from_f32",
        (2, 3),
        (3, 2),
        (((1,), (0,)), ((), ())),
        "ij,jk->ik",
        dtypes=FLOATS,
        pet=np.float64,
    ),
]
