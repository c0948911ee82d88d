"""The counter-based random-bit generator: the ``threefry2x32`` primitive.

Threefry-2x32 with 20 rounds (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as
easy as 1, 2, 3", SC 2011) is a keyed bijection of 64-bit blocks: given the key words
``(k1, k2)`` and the counter words ``(x1, x2)`` it returns two uint32 words that look
independent of every other counter's. ``funcgrad.random`` builds keys, splitting and every
sampler on it, so one primitive carries all of funcgrad's randomness.

- Operands: four uint32 arrays whose shapes broadcast (NumPy's rules); results: two uint32
  arrays of the broadcast shape. JAX's ``threefry2x32`` wants equal shapes; broadcasting
  lets a scalar key meet a whole array of counters without materializing the key.
- The primitive is elementwise, so a vmap over keys is the same primitive on batched key
  words (``batch`` lines the batch axes up and broadcasts): per-key streams, bit-identical to
  a Python loop over the keys.
- jvp: zero (integer outputs). Not linear: no transpose.
- impl: Python integers for a handful of elements (``_PYTHON_MAX_SIZE``: key splits and
  ``fold_in``), vectorized NumPy uint32 arithmetic up to ``_NUMBA_MIN_SIZE`` elements, and
  from there a numba kernel (``funcgrad/backend/numba/random_kernels.py``, compiled on first
  use and cached on disk): about 25x faster, bit-identical. lax never imports a backend: the
  kernels arrive through :data:`kernel_loader`, which ``funcgrad.random`` sets when it is
  imported (until then large calls take the NumPy path, with the same bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from funcgrad import lax
from funcgrad.core import Primitive, ShapedArray, get_aval
from funcgrad.interpreters import ad, batching
from funcgrad.lax._base import broadcast_shapes, shape_str

_U32 = np.dtype(np.uint32)
#: From this many output elements on, the impl runs the numba kernel instead of NumPy.
_NUMBA_MIN_SIZE = 1 << 14
#: Up to this many elements, Python integers are faster than NumPy's per-call overhead.
_PYTHON_MAX_SIZE = 4
# Rotation amounts of the even and odd groups of four rounds, and the key-schedule parity.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA

# -- threefry2x32
threefry2x32_p = Primitive("threefry2x32", multiple_results=True)


def threefry2x32(k1: Any, k2: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
    """Threefry-2x32 of the counter words ``(x1, x2)`` under the key ``(k1, k2)``: two uint32
    arrays of the operands' broadcast shape."""
    y1, y2 = threefry2x32_p.bind(k1, k2, x1, x2)
    return y1, y2


@threefry2x32_p.def_abstract_eval
def _threefry2x32_abstract_eval(k1, k2, x1, x2):
    avals = (k1, k2, x1, x2)
    if any(a.dtype != _U32 for a in avals):
        raise TypeError(
            f"threefry2x32: key and counter words must be uint32, got {shape_str(avals)}; "
            "convert them with `.astype(uint32)`"
        )
    shape = broadcast_shapes("threefry2x32", *(a.shape for a in avals))
    out = ShapedArray(shape, _U32)
    return [out, out]


def _threefry2x32_numpy(k1, k2, x1, x2, shape):
    """The 20 rounds on NumPy uint32 arrays, in place on two fresh buffers."""
    k1 = np.asarray(k1)
    k2 = np.asarray(k2)
    k3 = k1 ^ k2 ^ np.uint32(_PARITY)
    ks = (k1, k2, k3)
    a = np.empty(shape, _U32)
    b = np.empty(shape, _U32)
    tmp = np.empty(shape, _U32)
    with np.errstate(over="ignore"):
        np.add(x1, k1, out=a)
        np.add(x2, k2, out=b)
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                a += b
                np.left_shift(b, np.uint32(r), out=tmp)
                b >>= np.uint32(32 - r)
                b |= tmp
                b ^= a
            a += ks[(i + 1) % 3]
            b += ks[(i + 2) % 3]
            b += np.uint32(i + 1)
    return a, b


def _threefry2x32_python(k1, k2, x1, x2, shape):
    """The 20 rounds on Python ints, element by element: for a few elements (a key split
    or fold_in) this beats a hundred NumPy calls on tiny arrays."""
    mask = 0xFFFFFFFF
    n = math.prod(shape)
    cols = []
    for a in (k1, k2, x1, x2):
        a = np.asarray(a)
        if a.size == 1:
            cols.append([int(a.reshape(()))] * n)
        else:
            cols.append(np.broadcast_to(a, shape).reshape(-1).tolist())
    y1, y2 = [], []
    for k0, k1_, a, b in zip(*cols, strict=True):
        ks = (k0, k1_, k0 ^ k1_ ^ _PARITY)
        a = (a + k0) & mask
        b = (b + k1_) & mask
        for i in range(5):
            for r in _ROTATIONS[i % 2]:
                a = (a + b) & mask
                b = (((b << r) | (b >> (32 - r))) & mask) ^ a
            a = (a + ks[(i + 1) % 3]) & mask
            b = (b + ks[(i + 2) % 3] + i + 1) & mask
        y1.append(a)
        y2.append(b)
    return np.array(y1, _U32).reshape(shape), np.array(y2, _U32).reshape(shape)


#: Returns the module of fused kernels for large eager calls (``threefry_scalar_key``,
#: ``threefry_arrays``); set by ``funcgrad.random``, None until then.
kernel_loader: Callable[[], Any] | None = None


def _threefry2x32_numba(k1, k2, x1, x2, shape):
    kernels = kernel_loader()

    n = math.prod(shape)
    a = np.empty(n, _U32)
    b = np.empty(n, _U32)
    x1 = np.ascontiguousarray(np.broadcast_to(x1, shape)).reshape(n)
    x2 = np.ascontiguousarray(np.broadcast_to(x2, shape)).reshape(n)
    if np.size(k1) == 1 and np.size(k2) == 1:
        k1 = np.uint32(np.reshape(k1, ()))
        k2 = np.uint32(np.reshape(k2, ()))
        kernels.threefry_scalar_key(k1, k2, x1, x2, a, b)
    else:
        k1 = np.ascontiguousarray(np.broadcast_to(k1, shape)).reshape(n)
        k2 = np.ascontiguousarray(np.broadcast_to(k2, shape)).reshape(n)
        kernels.threefry_arrays(k1, k2, x1, x2, a, b)
    return a.reshape(shape), b.reshape(shape)


@threefry2x32_p.def_impl
def _threefry2x32_impl(k1, k2, x1, x2):
    args = (k1, k2, x1, x2)
    if any(np.result_type(a) != _U32 for a in args):
        raise TypeError("threefry2x32 operands must be uint32")  # bind reports abstract eval's
    shape = np.broadcast_shapes(*(np.shape(a) for a in args))
    size = math.prod(shape)
    if size >= _NUMBA_MIN_SIZE and kernel_loader is not None:
        y1, y2 = _threefry2x32_numba(k1, k2, x1, x2, shape)
    elif size <= _PYTHON_MAX_SIZE:
        y1, y2 = _threefry2x32_python(k1, k2, x1, x2, shape)
    else:
        y1, y2 = _threefry2x32_numpy(k1, k2, x1, x2, shape)
    return [y1, y2]


def _threefry2x32_batch(args, dims):
    # As batching.defbroadcasting, for two results: batch axes first, ranks lined up with
    # size-1 axes after the batch axis; unbatched operands broadcast as they are.
    rank = max(get_aval(x).ndim - (d is not None) for x, d in zip(args, dims, strict=True))
    new_args = []
    for x, d in zip(args, dims, strict=True):
        if d is not None:
            x = batching.moveaxis(x, d, 0)
            shape = get_aval(x).shape
            if len(shape) - 1 < rank:
                x = lax.reshape(x, (shape[0],) + (1,) * (rank - len(shape) + 1) + shape[1:])
        new_args.append(x)
    return threefry2x32_p.bind(*new_args), [0, 0]


ad.defjvp_zero(threefry2x32_p)
batching.primitive_batchers[threefry2x32_p] = _threefry2x32_batch
