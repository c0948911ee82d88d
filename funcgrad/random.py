"""funcgrad.random: explicit, splittable, counter-based random numbers (as ``jax.random``).

There is no hidden state. A *key* is a ``uint32[2]`` NumPy array made by :func:`key`; every
sampler is a pure function of its key, so the same key gives the same numbers eagerly, under
``jit`` and under ``vmap``. To get fresh numbers, derive new keys: :func:`split` (many keys
from one) or :func:`fold_in` (a key per step, layer or example index)::

    key = fg.random.key(0)
    key, sub = fg.random.split(key)
    x = fg.random.normal(sub, (3, 4))              # float32 by default
    keys = fg.random.split(key, 8)                 # uint32[8, 2]
    xs = fg.vmap(lambda k: fg.random.uniform(k, (5,)))(keys)   # one stream per key

How the numbers are made (documented here because reproducibility is the API):

- Everything rests on one primitive, ``funcgrad.lax.threefry2x32`` (Threefry-2x32, 20
  rounds): a keyed bijection of 64-bit counters. Keys, splitting, ``fold_in`` and 32-bit
  words follow ``jax.random``'s Threefry scheme with ``jax_threefry_partitionable`` (JAX's
  default since 0.5): element ``i`` (row-major) of a draw of ``shape`` comes from counter
  ``(i >> 32, i & 0xffffffff)``. So ``key``, ``split``, ``fold_in``, ``bits`` and ``uniform``
  reproduce JAX's numbers bit for bit (for non-negative seeds and ``fold_in`` data below
  2**32), and ``normal`` agrees with JAX to a few float32 ulp.
- ``key(seed)`` takes any integer seed in ``[-2**63, 2**64)``; its key is the two 32-bit
  halves of the seed's 64-bit pattern (high word first). ``fold_in(key, data)`` applies the
  same to ``data`` and hashes it in: ``threefry2x32(key, (hi(data), lo(data)))``. So, as in
  JAX, ``fold_in(key, i)`` equals ``split(key, n)[i]``: derive a key's children by one of
  the two, not both.
- Floats: ``uniform`` fills the mantissa with the top bits of a word as wide as the float
  (16, 32 or 64 bits, as JAX), giving a multiple of ``2**-nmant`` in ``[0, 1)``, then scales
  to ``[minval, maxval)`` (for float16/float32 in float64, rounded once). ``normal`` is
  ``sqrt(2) * erfinv(u)`` with ``u`` uniform in ``(-1, 1)``: for float16/float32 ``erfinv``
  is Giles' single-precision approximation (as XLA), evaluated in float64 and rounded once;
  for float64 it is ``lax.erf_inv``. The other float samplers also compute their logarithms
  in float64 for float16/float32 results, so that NumPy (eager, vmap) and numba (jit) give
  the same float32 numbers: NumPy's float32 ``log`` is up to 4 ulp from libm's.
- Integers: ``randint`` reduces 63 random bits modulo the range, in int64 (bias at most
  ``span / 2**63``: 2**-31 for any 32-bit range); a concrete range wider than 2**63 - 1 is
  refused (use ``bits``). ``permutation`` sorts by random 32-bit keys, in as many rounds as
  JAX uses. ``choice`` without replacement and with ``p`` takes the top ``k`` of ``log(p)``
  plus Gumbel noise.
- ``gamma`` is Marsaglia and Tsang's rejection method, all elements in one ``while_loop``;
  ``beta`` is a ratio of gammas. Neither is differentiable in its parameters.

Same numbers everywhere: keys, integers and booleans are bit-identical eagerly, under
``jit`` and under ``vmap``; float16/float32 samples agree to 2 ulp (in practice exactly:
their float64 intermediate steps make the numba backend's FMA contraction and libm's
``log`` invisible). float64 samples agree to 2 ulp of their scale, except where a backend
lowering is less accurate than SciPy (``erf_inv`` near +-1, used by float64 ``normal``).
Eagerly, large draws from ``bits``, ``uniform`` (float32/float64) and ``normal`` (float32)
run a fused numba kernel (``funcgrad/backend/numba/random_kernels.py``) that computes the same
numbers as the composition of ``lax`` operations used under transformations.

Default dtypes: float32 for floats (as ``jax.random``), int32 for ``randint``,
``categorical``, ``permutation(n)`` and ``choice(n, ...)``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from funcgrad import core, lax
from funcgrad.core import Tracer, get_aval
from funcgrad.lax import random_bits
from funcgrad.lax.indexing import GatherDimensionNumbers
from funcgrad.lax.sort import sort_key_val

__all__ = [
    "PRNGKey",
    "bernoulli",
    "beta",
    "bits",
    "categorical",
    "choice",
    "exponential",
    "fold_in",
    "gamma",
    "gumbel",
    "key",
    "laplace",
    "logistic",
    "normal",
    "permutation",
    "rademacher",
    "randint",
    "split",
    "truncated_normal",
    "uniform",
]

_U32 = np.dtype(np.uint32)
_U64 = np.dtype(np.uint64)
_I64 = np.dtype(np.int64)
_F64 = np.dtype(np.float64)
_SQRT2 = math.sqrt(2.0)
#: Eager draws of at least this many elements use the fused numba kernels.
_FAST_MIN_SIZE = 1 << 14

# Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011), single precision:
# erfinv(x) = x * p(w) with w = -log((1 - x) (1 + x)), p a polynomial in w - 2.5 for w < 5
# and in sqrt(w) - 3 beyond. Coefficients from the highest power down.
_GILES_CENTRAL = (
    2.81022636e-08,
    3.43273939e-07,
    -3.5233877e-06,
    -4.39150654e-06,
    0.00021858087,
    -0.00125372503,
    -0.00417768164,
    0.246640727,
    1.50140941,
)
_GILES_TAIL = (
    -0.000200214257,
    0.000100950558,
    0.00134934322,
    -0.00367342844,
    0.00573950773,
    -0.0076224613,
    0.00943887047,
    1.00167406,
    2.83297682,
)


# ----------------------------------------------------------------------------------------
# Argument checking


def _kernels() -> Any:
    """The numba kernels of the eager fast paths (numba is imported on the first large draw)."""
    from funcgrad.backend.numba import random_kernels

    return random_kernels


random_bits.kernel_loader = _kernels  # lax's threefry2x32 uses them for large eager calls


def _concrete(*xs: Any) -> bool:
    """True when nothing is traced: the eager fast paths may run (their values are the ones
    every interpreter would compute, so running them under grad/vmap is fine)."""
    return core.dynamic_trace() is None and not any(isinstance(x, Tracer) for x in xs)


def _shape(name: str, shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints, or a clear error."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name}: shape must be a tuple of non-negative ints, got {shape!r}"
        ) from None
    out = []
    for d in dims:
        if isinstance(d, Tracer):
            operator.index(d)  # raises the concretization error, which explains
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(
                f"{name}: shape must be a tuple of non-negative ints, got {shape!r} (the "
                f"entry {d!r} is a {type(d).__name__}); shapes are static, write e.g. (3, 4)"
            )
        if d < 0:
            raise ValueError(
                f"{name}: shape {tuple(dims)} has a negative size; every size must be >= 0"
            )
        out.append(int(d))
    return tuple(out)


def _float_dtype(name: str, dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise TypeError(
            f"{name}: dtype must be a floating dtype (float16, float32 or float64), got "
            f"{dt.name}; for integers use funcgrad.random.randint or bits"
        )
    return dt


def _key_words(name: str, key: Any) -> tuple[Any, Any]:
    """The two uint32 words of ``key``, after checking it is one ``uint32[2]`` key."""
    try:
        aval = get_aval(key)
    except TypeError:
        aval = None
    if aval is None or aval.dtype != _U32:
        got = aval.str_short() if aval is not None else type(key).__name__
        raise TypeError(
            f"{name}: key must be a uint32[2] array made by funcgrad.random.key(seed) (or "
            f"split/fold_in), got {got}; do not build keys from other dtypes"
        )
    if aval.shape != (2,):
        hint = (
            "; this looks like a batch of keys (from split): pass one of them (keys[i]) or "
            "map over them with funcgrad.vmap"
            if aval.ndim >= 2 and aval.shape[-1] == 2
            else ""
        )
        raise ValueError(
            f"{name}: key must have shape (2,) (one uint32[2] key), got {aval.str_short()}{hint}"
        )
    if isinstance(key, Tracer):
        return (
            lax.index_in_dim(key, 0, 0, keepdims=False),
            lax.index_in_dim(key, 1, 0, keepdims=False),
        )
    k = np.asarray(key)
    return k[0], k[1]


def _int_seed_words(name: str, seed: Any) -> tuple[Any, Any]:
    """The (high, low) uint32 words of an integer's 64-bit two's-complement pattern."""
    if isinstance(seed, Tracer):
        aval = seed.aval
        if aval.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: expected an integer scalar, got {aval.str_short()}; convert it "
                "with `.astype(int32)` first"
            )
        if aval.shape != ():
            raise ValueError(
                f"{name}: expected an integer scalar, got {aval.str_short()}; to make many "
                "keys, map over the values with funcgrad.vmap"
            )
        s = lax.convert_element_type(seed, _I64)
        hi = lax.convert_element_type(lax.shift_right_logical(s, np.int64(32)), _U32)
        lo = lax.convert_element_type(lax.bitwise_and(s, np.int64(0xFFFFFFFF)), _U32)
        return hi, lo
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name}: expected an integer, got the bool {seed!r}")
    if isinstance(seed, (int, np.integer)):
        value = int(seed)
    else:
        arr = np.asarray(seed)
        if arr.dtype.kind not in "iu":
            raise TypeError(
                f"{name}: expected an integer scalar, got {type(seed).__name__} of dtype "
                f"{arr.dtype.name}"
            )
        if arr.shape != ():
            raise ValueError(
                f"{name}: expected an integer scalar, got an array of shape {arr.shape}; "
                "to make many keys, map over the values with funcgrad.vmap"
            )
        value = int(arr)
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"{name}: {value} is outside [-2**63, 2**64); use a 64-bit integer")
    value &= 2**64 - 1
    return np.uint32(value >> 32), np.uint32(value & 0xFFFFFFFF)


def _stack_words(y1: Any, y2: Any) -> Any:
    """Keys from word arrays: ``uint32[*shape, 2]``."""
    if _concrete(y1, y2):
        return np.stack([np.asarray(y1), np.asarray(y2)], axis=-1)
    shape = get_aval(y1).shape
    return lax.concatenate([lax.reshape(y, (*shape, 1)) for y in (y1, y2)], len(shape))


def _counters(shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The (high, low) counter words of each element's row-major index."""
    n = math.prod(shape)
    if n < 2**32:
        lo = lax.iota(_U32, n)
        return np.uint32(0), lax.reshape(lo, shape) if len(shape) != 1 else lo
    i = lax.iota(_U64, n)
    hi = lax.convert_element_type(lax.shift_right_logical(i, np.uint64(32)), _U32)
    lo = lax.convert_element_type(i, _U32)
    return lax.reshape(hi, shape), lax.reshape(lo, shape)


def _bits(k1: Any, k2: Any, shape: tuple[int, ...], nbits: int) -> Any:
    """``nbits``-bit unsigned words for ``shape``: JAX's partitionable Threefry scheme."""
    y1, y2 = lax.threefry2x32(k1, k2, *_counters(shape))
    if nbits == 64:
        hi = lax.shift_left(lax.convert_element_type(y1, _U64), np.uint64(32))
        return lax.bitwise_or(hi, lax.convert_element_type(y2, _U64))
    word = lax.bitwise_xor(y1, y2)
    if nbits == 32:
        return word
    return lax.convert_element_type(word, np.dtype(f"uint{nbits}"))


# ----------------------------------------------------------------------------------------
# Keys


def key(seed: Any) -> Any:
    """A key (``uint32[2]``) from an integer seed in ``[-2**63, 2**64)``; works on a traced
    integer too (under ``jit``/``vmap``).

    >>> fg.random.key(42)
    array([ 0, 42], dtype=uint32)
    """
    hi, lo = _int_seed_words("key", seed)
    if isinstance(hi, Tracer):
        return _stack_words(hi, lo)
    return np.array([hi, lo], dtype=_U32)


#: JAX's older name for :func:`key` (keys are raw ``uint32[2]`` arrays either way).
PRNGKey = key


def split(key: Any, num: int | Sequence[int] = 2) -> Any:
    """``num`` new keys from ``key``, as a ``uint32[num, 2]`` array (``num`` may be a shape:
    ``uint32[*num, 2]``); index or unpack it: ``key, sub = split(key)``."""
    k1, k2 = _key_words("split", key)
    shape = _shape("split", num)
    y1, y2 = lax.threefry2x32(k1, k2, *_counters(shape))
    return _stack_words(y1, y2)


def fold_in(key: Any, data: Any) -> Any:
    """A new key from ``key`` and an integer ``data`` (a step number, an index; may be
    traced): different ``data`` give independent keys."""
    k1, k2 = _key_words("fold_in", key)
    d1, d2 = _int_seed_words("fold_in", data)
    y1, y2 = lax.threefry2x32(k1, k2, d1, d2)
    return _stack_words(y1, y2)


# ----------------------------------------------------------------------------------------
# Bits and uniform floats


def bits(key: Any, shape: Any = (), dtype: Any = np.uint32) -> Any:
    """Uniformly random unsigned integers (every bit pattern equally likely) of ``dtype``
    (uint8, uint16, uint32 or uint64)."""
    dt = np.dtype(dtype)
    if dt.kind != "u":
        raise TypeError(
            f"bits: dtype must be an unsigned integer dtype (uint8/16/32/64), got {dt.name}"
        )
    k1, k2 = _key_words("bits", key)
    shape = _shape("bits", shape)
    if _concrete(key) and math.prod(shape) >= _FAST_MIN_SIZE:
        out = np.empty(shape, _U64 if dt == _U64 else _U32)
        (_kernels().bits64 if dt == _U64 else _kernels().bits32)(k1, k2, out.reshape(-1))
        return out if out.dtype == dt else out.astype(dt)
    return _bits(k1, k2, shape, dt.itemsize * 8)


def _float_operand(name: str, what: str, x: Any, dtype: np.dtype) -> Any:
    """A float parameter (``minval``, ``p``, ...) converted to ``dtype``."""
    if isinstance(x, Tracer):
        if x.aval.dtype.kind not in "fiub":
            raise TypeError(f"{name}: {what} must be real, got {x.aval.str_short()}")
        return lax.convert_element_type(x, dtype)
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name}: {what} must be a real number or array, got {arr.dtype}")
    return arr.astype(dtype)


def _check_broadcasts(name: str, what: str, x: Any, shape: tuple[int, ...]) -> None:
    xs = get_aval(x).shape
    try:
        ok = np.broadcast_shapes(xs, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: {what} of shape {xs} does not broadcast to the sample shape {shape}; "
            "give a shape that the parameters broadcast to"
        )


def _check_order(name: str, lo: Any, hi: Any, lo_name: str, hi_name: str, strict: bool) -> None:
    """``lo <= hi`` (``lo < hi`` if ``strict``) where both are concrete."""
    if isinstance(lo, Tracer) or isinstance(hi, Tracer):
        return
    with np.errstate(invalid="ignore"):
        bad = np.asarray(lo) >= np.asarray(hi) if strict else np.asarray(lo) > np.asarray(hi)
    if np.any(bad):
        rel = "less than" if strict else "at most"
        raise ValueError(
            f"{name}: {lo_name} must be {rel} {hi_name}, got {lo_name}={lo!r} and {hi_name}={hi!r}"
        )


def _uniform(k1: Any, k2: Any, shape: tuple[int, ...], dtype: np.dtype, lo: Any, hi: Any):
    """Uniform floats in ``[lo, hi)`` of ``dtype`` (``lo``/``hi`` already of ``dtype``)."""
    info = np.finfo(dtype)
    nbits = dtype.itemsize * 8
    word = _bits(k1, k2, shape, nbits)
    mant = lax.shift_right_logical(word, np.array(nbits - info.nmant, word.dtype)[()])
    floats = lax.mul(lax.convert_element_type(mant, dtype), np.array(2.0**-info.nmant, dtype))
    if _concrete(lo, hi):
        span = np.subtract(np.asarray(hi), np.asarray(lo))  # as lax.sub, but no equation
    else:
        span = lax.sub(hi, lo)
    if dtype.itemsize < 8:
        # The affine map in float64, rounded once: the product is exact there, so the result
        # is the same whether or not a compiler fuses it into an FMA (the numba backend does).
        w = [lax.convert_element_type(v, _F64) for v in (floats, span, lo)]
        scaled = lax.convert_element_type(lax.add(lax.mul(w[0], w[1]), w[2]), dtype)
    else:
        scaled = lax.add(lax.mul(floats, span), lo)
    return lax.max(lo, scaled)


def uniform(
    key: Any, shape: Any = (), dtype: Any = np.float32, minval: Any = 0.0, maxval: Any = 1.0
) -> Any:
    """Uniform floats in ``[minval, maxval)`` (the bounds broadcast to ``shape``)."""
    dt = _float_dtype("uniform", dtype)
    k1, k2 = _key_words("uniform", key)
    shape = _shape("uniform", shape)
    _check_order("uniform", minval, maxval, "minval", "maxval", strict=False)
    lo = _float_operand("uniform", "minval", minval, dt)
    hi = _float_operand("uniform", "maxval", maxval, dt)
    _check_broadcasts("uniform", "minval", lo, shape)
    _check_broadcasts("uniform", "maxval", hi, shape)
    fast = _concrete(key, lo, hi) and np.ndim(lo) == np.ndim(hi) == 0 and dt.itemsize >= 4
    if fast and math.prod(shape) >= _FAST_MIN_SIZE:
        out = np.empty(shape, dt)
        kernel = _kernels().uniform64 if dt.itemsize == 8 else _kernels().uniform32
        kernel(k1, k2, dt.type(lo), dt.type(hi), out.reshape(-1))
        return out
    return _uniform(k1, k2, shape, dt, lo, hi)


# ----------------------------------------------------------------------------------------
# Normal and friends


def _horner(coeffs: Sequence[float], t: Any) -> Any:
    p = lax.add(coeffs[1], lax.mul(coeffs[0], t))
    for c in coeffs[2:]:
        p = lax.add(c, lax.mul(p, t))
    return p


def _erfinv_giles(x: Any) -> Any:
    """Giles' single-precision erfinv on float64 ``x`` (exactly as the numba kernel)."""
    w = lax.neg(lax.log(lax.mul(lax.sub(1.0, x), lax.add(1.0, x))))
    p = _horner(_GILES_CENTRAL, lax.sub(w, 2.5))
    q = _horner(_GILES_TAIL, lax.sub(lax.sqrt(w), 3.0))
    return lax.mul(lax.select(lax.lt(w, 5.0), p, q), x)


def _sqrt2_erfinv(u: Any, dtype: np.dtype) -> Any:
    """``sqrt(2) * erfinv(u)`` (the standard normal quantile of ``(u + 1) / 2``)."""
    if dtype == _F64:
        return lax.mul(_SQRT2, lax.erf_inv(u))
    r = _erfinv_giles(lax.convert_element_type(u, _F64))
    return lax.convert_element_type(lax.mul(_SQRT2, r), dtype)


def normal(key: Any, shape: Any = (), dtype: Any = np.float32) -> Any:
    """Standard normal floats (mean 0, variance 1). For ``mu + sigma * normal(key)`` the
    gradient with respect to ``mu`` and ``sigma`` is the reparameterisation gradient."""
    dt = _float_dtype("normal", dtype)
    k1, k2 = _key_words("normal", key)
    shape = _shape("normal", shape)
    lo = np.nextafter(np.array(-1.0, dt), np.array(0.0, dt))
    if _concrete(key) and dt.itemsize == 4 and math.prod(shape) >= _FAST_MIN_SIZE:
        out = np.empty(shape, dt)
        _kernels().normal32(k1, k2, dt.type(lo), out.reshape(-1))
        return out
    u = _uniform(k1, k2, shape, dt, lo, np.array(1.0, dt))
    return _sqrt2_erfinv(u, dt)


def _wide(dtype: np.dtype) -> np.dtype:
    """The dtype the float samplers compute their logarithms in."""
    return _F64 if dtype.itemsize < 8 else dtype


def _log_of(x: Any, dtype: np.dtype, fn: Any = lax.log) -> Any:
    return fn(lax.convert_element_type(x, _wide(dtype)))


def exponential(key: Any, shape: Any = (), dtype: Any = np.float32) -> Any:
    """Exponential floats with rate 1 (``-log1p(-u)``, ``u`` uniform in ``[0, 1)``)."""
    dt = _float_dtype("exponential", dtype)
    k1, k2 = _key_words("exponential", key)
    shape = _shape("exponential", shape)
    u = _uniform(k1, k2, shape, dt, np.array(0.0, dt), np.array(1.0, dt))
    e = lax.neg(_log_of(lax.neg(u), dt, lax.log1p))
    return lax.convert_element_type(e, dt)


def _open_uniform(name: str, key: Any, shape: Any, dtype: Any) -> tuple:
    """Uniform floats in ``[tiny, 1)`` (a logarithm of them is finite)."""
    dt = _float_dtype(name, dtype)
    k1, k2 = _key_words(name, key)
    shape = _shape(name, shape)
    tiny = np.array(np.finfo(dt).tiny, dt)
    return _uniform(k1, k2, shape, dt, tiny, np.array(1.0, dt)), dt


def gumbel(key: Any, shape: Any = (), dtype: Any = np.float32) -> Any:
    """Standard Gumbel floats (``-log(-log(u))``)."""
    u, dt = _open_uniform("gumbel", key, shape, dtype)
    g = lax.neg(lax.log(lax.neg(_log_of(u, dt))))
    return lax.convert_element_type(g, dt)


def logistic(key: Any, shape: Any = (), dtype: Any = np.float32) -> Any:
    """Standard logistic floats (``log(u) - log1p(-u)``)."""
    u, dt = _open_uniform("logistic", key, shape, dtype)
    g = lax.sub(_log_of(u, dt), _log_of(lax.neg(u), dt, lax.log1p))
    return lax.convert_element_type(g, dt)


def laplace(key: Any, shape: Any = (), dtype: Any = np.float32) -> Any:
    """Standard Laplace floats (density ``exp(-|x|) / 2``)."""
    dt = _float_dtype("laplace", dtype)
    k1, k2 = _key_words("laplace", key)
    shape = _shape("laplace", shape)
    lo = np.nextafter(np.array(-1.0, dt), np.array(0.0, dt))
    u = _uniform(k1, k2, shape, dt, lo, np.array(1.0, dt))
    w = lax.convert_element_type(u, _wide(dt))
    out = lax.mul(lax.neg(lax.sign(w)), lax.log1p(lax.neg(lax.abs(w))))
    return lax.convert_element_type(out, dt)


def rademacher(key: Any, shape: Any = (), dtype: Any = np.int32) -> Any:
    """Random signs: -1 or +1 with equal probability, of ``dtype``."""
    dt = np.dtype(dtype)
    k1, k2 = _key_words("rademacher", key)
    shape = _shape("rademacher", shape)
    bit = lax.convert_element_type(lax.shift_right_logical(_bits(k1, k2, shape, 32), 31), dt)
    return lax.sub(lax.mul(bit, np.array(2, dt)), np.array(1, dt))


def truncated_normal(
    key: Any, lower: Any, upper: Any, shape: Any = None, dtype: Any = np.float32
) -> Any:
    """Standard normal floats conditioned on ``lower < x < upper`` (the bounds broadcast;
    ``shape`` defaults to their broadcast shape). Differentiable in the bounds."""
    dt = _float_dtype("truncated_normal", dtype)
    k1, k2 = _key_words("truncated_normal", key)
    _check_order("truncated_normal", lower, upper, "lower", "upper", strict=False)
    lower = _float_operand("truncated_normal", "lower", lower, dt)
    upper = _float_operand("truncated_normal", "upper", upper, dt)
    if shape is None:
        shape = np.broadcast_shapes(get_aval(lower).shape, get_aval(upper).shape)
    shape = _shape("truncated_normal", shape)
    _check_broadcasts("truncated_normal", "lower", lower, shape)
    _check_broadcasts("truncated_normal", "upper", upper, shape)
    wide = _wide(dt)
    a = lax.erf(lax.mul(lax.convert_element_type(lower, wide), 1.0 / _SQRT2))
    b = lax.erf(lax.mul(lax.convert_element_type(upper, wide), 1.0 / _SQRT2))
    u = _uniform(
        k1, k2, shape, dt, lax.convert_element_type(a, dt), lax.convert_element_type(b, dt)
    )
    out = _sqrt2_erfinv(u, dt)
    lo = lax.nextafter(lower, np.array(np.inf, dt))
    hi = lax.nextafter(upper, np.array(-np.inf, dt))
    return lax.max(lo, lax.min(hi, out))


# ----------------------------------------------------------------------------------------
# Discrete samplers


def bernoulli(key: Any, p: Any = 0.5, shape: Any = None) -> Any:
    """Booleans that are True with probability ``p`` (an array ``p`` broadcasts to
    ``shape``, which defaults to ``p``'s shape)."""
    k1, k2 = _key_words("bernoulli", key)
    if isinstance(p, Tracer):
        dt = p.aval.dtype if p.aval.dtype.kind == "f" else np.dtype(np.float32)
    else:
        pa = np.asarray(p)
        dt = pa.dtype if pa.dtype.kind == "f" and not isinstance(p, float) else np.dtype("f4")
    p = _float_operand("bernoulli", "p", p, dt)
    shape = _shape("bernoulli", get_aval(p).shape if shape is None else shape)
    _check_broadcasts("bernoulli", "p", p, shape)
    u = _uniform(k1, k2, shape, dt, np.array(0.0, dt), np.array(1.0, dt))
    return lax.lt(u, p)


def _int_bound(name: str, what: str, x: Any, lo: int, hi: int) -> Any:
    """An integer bound as int64, clipped to ``[lo, hi]``."""
    if isinstance(x, Tracer):
        if x.aval.dtype.kind not in "iu":
            raise TypeError(f"{name}: {what} must be an integer, got {x.aval.str_short()}")
        v = lax.convert_element_type(x, _I64)
        return lax.clamp(np.int64(lo), v, np.int64(hi))
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" or isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: {what} must be an integer or integer array, got {x!r}")
    return np.array(np.clip(arr.astype(object), lo, hi), dtype=object).astype(_I64)


def randint(key: Any, shape: Any, minval: Any, maxval: Any, dtype: Any = np.int32) -> Any:
    """Integers uniform in ``[minval, maxval)`` (``maxval`` exclusive; bounds broadcast to
    ``shape`` and are clipped to the range of ``dtype``, int32 by default)."""
    dt = np.dtype(dtype)
    if dt.kind not in "iu":
        raise TypeError(f"randint: dtype must be an integer dtype, got {dt.name}")
    k1, k2 = _key_words("randint", key)
    shape = _shape("randint", shape)
    _check_order("randint", minval, maxval, "minval", "maxval", strict=True)
    info = np.iinfo(dt)
    top = 2**63 - 1  # bounds and spans live in int64
    lo = _int_bound("randint", "minval", minval, int(info.min), min(int(info.max), top))
    hi = _int_bound("randint", "maxval", maxval, int(info.min), min(int(info.max) + 1, top))
    _check_broadcasts("randint", "minval", lo, shape)
    _check_broadcasts("randint", "maxval", hi, shape)
    if _concrete(lo, hi) and np.any(hi.astype(object) - lo.astype(object) > top):
        raise ValueError(
            f"randint: the range [{minval}, {maxval}) is wider than 2**63 - 1; draw 64-bit "
            "integers over their whole range with funcgrad.random.bits"
        )
    # 63 random bits modulo the span, all in int64 (exact; bias at most span / 2**63). An
    # empty range (only possible when traced) gives span 1, hence minval.
    span = lax.select(lax.le(hi, lo), np.int64(1), lax.sub(hi, lo))
    word = lax.shift_right_logical(_bits(k1, k2, shape, 64), np.uint64(1))
    offset = lax.rem(lax.convert_element_type(word, _I64), span)
    return lax.convert_element_type(lax.add(lo, offset), dt)


def _shuffle(key: Any, x: Any, axis: int) -> Any:
    """Shuffle ``x`` along ``axis`` by sorting it on random 32-bit keys, in enough rounds
    that ties (which a stable sort would resolve by position) stay unlikely, as JAX."""
    shape = get_aval(x).shape
    n = shape[axis]
    rounds = math.ceil(3 * math.log(max(1, n)) / math.log(2**32 - 1))
    for _ in range(rounds):
        key, sub = _split2(key)
        s1, s2 = _key_words("permutation", sub)
        sort_keys = _bits(s1, s2, shape, 32)
        _, x = sort_key_val(sort_keys, x, axis)
    return x


def _split2(key: Any) -> tuple[Any, Any]:
    keys = split(key, 2)
    if isinstance(keys, Tracer):
        return (
            lax.index_in_dim(keys, 0, 0, keepdims=False),
            lax.index_in_dim(keys, 1, 0, keepdims=False),
        )
    return keys[0], keys[1]


def _static_int(name: str, what: str, x: Any) -> int | None:
    """``x`` as a Python int if it is an integer scalar (not traced), else None."""
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: {what} must be an int or an array, got a bool")
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, Tracer):
        if x.aval.shape == () and x.aval.dtype.kind in "iu":
            raise TypeError(
                f"{name}: {what} is a traced integer ({x.aval.str_short()}), but the number "
                "of elements must be static; pass a Python int (or mark it static in jit)"
            )
        return None
    arr = np.asarray(x)
    if arr.shape == () and arr.dtype.kind in "iu":
        return int(arr)
    return None


def _take(x: Any, ind: Any, axis: int) -> Any:
    """``numpy.take(x, ind, axis)`` with one gather (indices in range)."""
    aval = get_aval(x)
    ind_shape = get_aval(ind).shape
    k = len(ind_shape)
    offset = tuple(range(axis)) + tuple(range(axis + k, aval.ndim - 1 + k))
    dn = GatherDimensionNumbers(
        offset_dims=offset, collapsed_slice_dims=(axis,), start_index_map=(axis,)
    )
    sizes = tuple(1 if d == axis else s for d, s in enumerate(aval.shape))
    ind = lax.reshape(ind, (*ind_shape, 1))
    return lax.gather(x, ind, dn, sizes, mode="clip")


def _axis(name: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: axis {axis} is out of range for an array of rank {ndim}")
    return axis % ndim


def permutation(key: Any, x: Any, axis: int = 0, independent: bool = False) -> Any:
    """A random permutation of ``range(x)`` (``x`` an int; int32) or of ``x`` along ``axis``
    (every slice the same way, or each independently with ``independent=True``)."""
    _key_words("permutation", key)
    n = _static_int("permutation", "x", x)
    if n is not None:
        if n < 0:
            raise ValueError(f"permutation: x must be non-negative, got {n}")
        idt = np.int32 if n <= np.iinfo(np.int32).max else np.int64
        return _shuffle(key, lax.iota(idt, n), 0)
    aval = get_aval(x)
    if aval.ndim == 0:
        raise ValueError(
            f"permutation: x must be an int or an array with at least one axis, got "
            f"{aval.str_short()}"
        )
    axis = _axis("permutation", axis, aval.ndim)
    if independent or aval.ndim == 1:
        return _shuffle(key, x, axis)
    ind = _shuffle(key, lax.iota(np.int32, aval.shape[axis]), 0)
    return _take(x, ind, axis)


def choice(
    key: Any,
    a: Any,
    shape: Any = (),
    replace: bool = True,
    p: Any = None,
    axis: int = 0,
) -> Any:
    """Random elements of ``a`` (an int means ``range(a)``; an array is sampled along
    ``axis``), with or without replacement, uniformly or with probabilities ``p``."""
    k1, k2 = _key_words("choice", key)
    shape = _shape("choice", shape)
    n_int = _static_int("choice", "a", a)
    if n_int is not None:
        if n_int < 0:
            raise ValueError(f"choice: a must be non-negative, got {n_int}")
        n, arr = n_int, None
    else:
        aval = get_aval(a)
        if aval.ndim == 0:
            raise ValueError("choice: a must be an int or an array with at least one axis")
        axis = _axis("choice", axis, aval.ndim)
        n, arr = aval.shape[axis], a
    k = math.prod(shape)
    if n == 0 and k > 0:
        raise ValueError("choice: cannot take a non-empty sample from an empty population")
    if not replace and k > n:
        raise ValueError(
            f"choice: cannot take {k} samples from a population of {n} without replacement; "
            "use replace=True or a smaller shape"
        )
    if p is None:
        if replace:
            ind = randint(key, shape, 0, n, np.int32)
        else:
            perm = permutation(key, n)
            ind = lax.reshape(lax.slice(perm, (0,), (k,)), shape)
    else:
        if get_aval(p).shape != (n,):
            raise ValueError(
                f"choice: p must have shape ({n},) (one probability per candidate), got "
                f"{get_aval(p).shape}"
            )
        pdt = get_aval(p).dtype if get_aval(p).dtype.kind == "f" else np.dtype(np.float32)
        p = _float_operand("choice", "p", p, pdt)
        if replace:
            cdf = lax.cumsum(p, 0)
            total = lax.index_in_dim(cdf, n - 1, 0, keepdims=False)
            u = _uniform(k1, k2, shape, pdt, np.array(0.0, pdt), np.array(1.0, pdt))
            r = lax.mul(total, lax.sub(np.array(1.0, pdt)[()], u))
            below = lax.lt(cdf, lax.reshape(r, (*shape, 1)))
            count = lax.reduce_sum(lax.convert_element_type(below, np.int32), (len(shape),))
            ind = lax.min(count, np.int32(n - 1))
        else:
            noise = lax.convert_element_type(gumbel(key, (n,), pdt), _wide(pdt))
            g = lax.add(noise, _log_of(p, pdt))
            ind = lax.reshape(lax.top_k(g, k)[1], shape)
    if arr is None:
        return ind
    return _take(arr, ind, axis)


def categorical(key: Any, logits: Any, axis: int = -1, shape: Any = None) -> Any:
    """Category indices (int32) drawn with probabilities ``softmax(logits, axis)``, by the
    Gumbel-max trick. ``shape`` defaults to ``logits.shape`` without ``axis``; a longer
    ``shape`` draws more samples (its trailing axes must be that batch shape)."""
    _key_words("categorical", key)
    aval = get_aval(logits)
    if aval.dtype.kind != "f":
        raise TypeError(f"categorical: logits must be floating, got {aval.str_short()}")
    if aval.ndim == 0:
        raise ValueError("categorical: logits must have at least one axis (the categories)")
    axis = _axis("categorical", axis, aval.ndim)
    batch = aval.shape[:axis] + aval.shape[axis + 1 :]
    shape = batch if shape is None else _shape("categorical", shape)
    if len(shape) < len(batch) or shape[len(shape) - len(batch) :] != batch:
        raise ValueError(
            f"categorical: shape {shape} must end with the batch shape {batch} of logits "
            f"{aval.str_short()} (its shape without axis {axis})"
        )
    prefix = shape[: len(shape) - len(batch)]
    noise = gumbel(key, (*prefix, *aval.shape), aval.dtype)
    return lax.argmax(lax.add(noise, logits), len(prefix) + axis, np.int32)


# ----------------------------------------------------------------------------------------
# Gamma and beta (rejection sampling in one while_loop)


def gamma(key: Any, a: Any, shape: Any = None, dtype: Any = np.float32) -> Any:
    """Gamma floats with shape ``a > 0`` and scale 1 (``a`` broadcasts to ``shape``, which
    defaults to ``a``'s shape).

    Marsaglia and Tsang's method (2000): every element proposes ``d (1 + c z)**3`` from a
    normal ``z`` until accepted, all elements together in one ``while_loop`` (round ``i``
    draws from ``fold_in(key, i)``); ``a < 1`` is boosted as ``gamma(a + 1) * u**(1/a)``.
    Not differentiable in ``a``: it is held constant (``stop_gradient``).
    """
    dt = _float_dtype("gamma", dtype)
    _key_words("gamma", key)
    _check_order("gamma", 0.0, a, "0", "a", strict=True)
    a = lax.stop_gradient(_float_operand("gamma", "a", a, dt))
    shape = _shape("gamma", get_aval(a).shape if shape is None else shape)
    _check_broadcasts("gamma", "a", a, shape)
    wide = _wide(dt)
    a = lax.broadcast_to(lax.convert_element_type(a, wide), shape)
    loop_key, boost_key = _split2(key)
    boost = lax.lt(a, 1.0)
    d = lax.sub(lax.select(boost, lax.add(a, 1.0), a), 1.0 / 3.0)
    c = lax.div(1.0, lax.sqrt(lax.mul(9.0, d)))

    def not_done(state):
        return lax.bitwise_not(lax.reduce_and(state[2], tuple(range(len(shape)))))

    def propose(state):
        i, sample, done = state
        k_z, k_u = _split2(fold_in(loop_key, i))
        z = lax.convert_element_type(normal(k_z, shape, dt), wide)
        u = lax.convert_element_type(uniform(k_u, shape, dt), wide)
        cz = lax.add(1.0, lax.mul(c, z))
        v = lax.mul(lax.mul(cz, cz), cz)
        positive = lax.gt(v, 0.0)
        log_v = lax.log(lax.select(positive, v, np.array(1.0, wide)[()]))
        bound = lax.add(lax.mul(0.5, lax.mul(z, z)), lax.mul(d, lax.add(lax.sub(1.0, v), log_v)))
        ok = lax.bitwise_and(positive, lax.lt(lax.log1p(lax.neg(u)), bound))
        sample = lax.select(lax.bitwise_and(ok, lax.bitwise_not(done)), lax.mul(d, v), sample)
        return lax.add(i, np.int32(1)), sample, lax.bitwise_or(done, ok)

    init = (np.int32(0), lax.full(shape, 0.0, wide), lax.full(shape, False, np.bool_))
    _, sample, _ = lax.while_loop(not_done, propose, init)
    u = lax.convert_element_type(uniform(boost_key, shape, dt), wide)
    scale = lax.exp(lax.div(lax.log1p(lax.neg(u)), a))  # (1 - u) ** (1 / a), 1 - u in (0, 1]
    sample = lax.select(boost, lax.mul(sample, scale), sample)
    return lax.convert_element_type(sample, dt)


def beta(key: Any, a: Any, b: Any, shape: Any = None, dtype: Any = np.float32) -> Any:
    """Beta floats with parameters ``a, b > 0``: ``x / (x + y)`` for gamma ``x, y``."""
    dt = _float_dtype("beta", dtype)
    ka, kb = _split2(key)
    if shape is None:
        shape = np.broadcast_shapes(get_aval(a).shape, get_aval(b).shape)
    shape = _shape("beta", shape)
    x = lax.convert_element_type(gamma(ka, a, shape, dt), _wide(dt))
    y = lax.convert_element_type(gamma(kb, b, shape, dt), _wide(dt))
    return lax.convert_element_type(lax.div(x, lax.add(x, y)), dt)
