"""Spec cases for the counter-based generator (funcgrad/lax/random_bits.py).

``threefry2x32`` takes four uint32 operands (key words, counter words) that broadcast and
gives two uint32 results; it has no derivative (``diff=()``) and is not linear. The
reference is Threefry-2x32 written out from its specification on Python integers, one
element at a time: the 20 rounds as a loop over the rotation table ``R[round % 8]`` with a
key injection after every fourth round (the impl unrolls groups of four on NumPy arrays).
Operands span the whole uint32 range, so the additions wrap.
"""

from __future__ import annotations

import numpy as np

from tests.specs import Case

_R = (13, 15, 26, 6, 17, 29, 16, 24)
_MASK = 2**32 - 1


def _threefry_block(k0: int, k1: int, x0: int, x1: int) -> tuple[int, int]:
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = (x0 + ks[0]) & _MASK, (x1 + ks[1]) & _MASK
    for rnd in range(20):
        r = _R[rnd % 8]
        x0 = (x0 + x1) & _MASK
        x1 = ((x1 << r) & _MASK | x1 >> (32 - r)) ^ x0
        if rnd % 4 == 3:
            s = rnd // 4 + 1
            x0 = (x0 + ks[s % 3]) & _MASK
            x1 = (x1 + ks[(s + 1) % 3] + s) & _MASK
    return x0, x1


def _ref(k1, k2, x1, x2):
    args = np.broadcast_arrays(k1, k2, x1, x2)
    shape = args[0].shape
    out1 = np.empty(shape, np.uint32)
    out2 = np.empty(shape, np.uint32)
    for idx in np.ndindex(*shape):
        a, b = _threefry_block(*(int(x[idx]) for x in args))
        out1[idx], out2[idx] = a, b
    return [out1, out2]


def _words(rng, shape):
    return rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)


# (k1, k2, x1, x2) shapes: equal, scalar keys with counter arrays (how funcgrad.random
# calls it), a batch of keys against shared counters, size-0 and size-1 axes, all scalars.
SHAPES = [
    ((4,), (4,), (4,), (4,)),
    ((), (), (2, 3), (2, 3)),
    ((), (), (), (5,)),
    ((3, 1), (3, 1), (4,), (1, 4)),
    ((1,), (0, 1), (0, 3), (1,)),
    ((1, 5), (1, 5), (1, 5), ()),
    ((), (), (), ()),
]


def _name(shapes) -> str:
    return "|".join("x".join(map(str, s)) if s else "scalar" for s in shapes)


CASES = [
    Case(
        "threefry2x32",
        lambda rng, dt, shapes=shapes: tuple(_words(rng, s) for s in shapes),
        _ref,
        dtypes=(np.uint32,),
        diff=(),
        name=_name(shapes),
    )
    for shapes in SHAPES
]
