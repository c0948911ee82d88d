"""funcgrad.random and the ``threefry2x32`` primitive.

What is checked, and against what:

- The generator: Threefry-2x32 known-answer vectors (Random123's ``kat_vectors``), on each
  of the impl's three paths (Python integers, NumPy, the numba kernel) and under ``jit``.
- Keys: ``key(seed)`` against the two 32-bit halves of the seed computed in Python;
  ``split``/``fold_in`` shapes, determinism, and agreement with ``jax.random`` (keys, bits,
  unit uniforms and permutations bit for bit, normals to float32 rounding) when JAX is
  installed.
- Same key, same bits: every sampler eagerly, under ``jit``, under ``vmap`` (against a Python
  loop over split keys) and under ``jit(vmap)``. Keys, integers and booleans must be
  bit-identical; float32 and float16 samples within 2 ulp. float64 samples: within 2 ulp of
  the sample's scale (1 for standard distributions, ``maxval - minval`` for ``uniform``),
  because the numba backend fuses ``a * b + c`` into an FMA (float32 samples compute that
  step in float64, where the product is exact, so they are immune). float64 ``normal`` under
  ``jit`` is an expected failure until the backend's ``erf_inv`` is accurate near +-1
  (``JIT_GAPS``). The eager fast kernels
  are checked against the ``lax`` composition (run through ``vmap`` over one key).
- Errors: bad keys, shapes, dtypes and bounds raise clear errors that name the function.
- Statistics (deterministic seeds; each threshold is a tail probability of about 1e-6 or
  less for a correct generator, so the tests do not depend on a lucky seed):
  moments within 5 standard errors; Kolmogorov-Smirnov against SciPy's distributions and
  chi-square goodness-of-fit (uniform bins, integer values, categories, permutations of 4
  elements) with p-values above 1e-6; each bit of ``bits`` set half the time (|z| < 5.5);
  independence of ``split`` and ``fold_in`` streams as a bound on every pairwise correlation
  between 32 streams (|r| sqrt(n) < 5.5 over 496 pairs) plus a chi-square on the joint
  histogram of neighbouring streams; no repeated keys among 100,000 splits.
  ``gamma`` (Marsaglia-Tsang in one ``while_loop``) and ``beta`` are tested the same way.
- Gradients: ``grad`` of ``mean((mu + sigma * normal(key)) ** 2)`` against its closed form,
  eagerly, under ``jit`` and per key under ``vmap``; ``grad`` of ``truncated_normal``
  through its bounds against central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

import funcgrad as fg
import funcgrad.numpy as fnp
from funcgrad import lax
from funcgrad.errors import ConcretizationTypeError
from funcgrad.lax import random_bits

r = fg.random
KEY = r.key(0)


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between same-dtype float arrays."""
    it = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
    ia = a.view(it).astype(np.int64)
    ib = b.view(it).astype(np.int64)
    low = np.int64(np.iinfo(it).min)
    ia = np.where(ia < 0, low - ia, ia)  # monotone integer order of the floats
    ib = np.where(ib < 0, low - ib, ib)
    return np.abs(ia - ib)


def assert_same(a, b, scale: float = 1.0) -> None:
    """Bit-identical integers/bools; floats within 2 ulp (float64: of ``max(|x|, scale)``)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, b)
        return
    if a.dtype == np.float64:
        tol = 2 * np.spacing(np.maximum(np.abs(a), scale))
        np.testing.assert_array_less(np.abs(a - b), tol + 1e-300)
        return
    assert a.size == 0 or _ulps(a, b).max() <= 2, _ulps(a, b).max()


# ----------------------------------------------------------------------------------------
# The generator

# (key, counter) -> Threefry-2x32 (20 rounds) output: Random123's known-answer vectors.
KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("n", [1, 100, 1 << 15], ids=["python", "numpy", "numba"])
@pytest.mark.parametrize("kat", KAT, ids=["zeros", "ones", "pi"])
def test_threefry_known_answers(kat, n):
    (k1, k2), (x1, x2), (y1, y2) = kat
    u = np.uint32
    counts = [np.full(n, x, np.uint32) for x in (x1, x2)]
    out = lax.threefry2x32(u(k1), u(k2), *counts)
    np.testing.assert_array_equal(out[0], np.full(n, y1, np.uint32))
    np.testing.assert_array_equal(out[1], np.full(n, y2, np.uint32))
    if n == 1:
        jitted = fg.jit(lax.threefry2x32)(u(k1), u(k2), *counts)
        np.testing.assert_array_equal(jitted[0], out[0])
        np.testing.assert_array_equal(jitted[1], out[1])


@pytest.mark.parametrize("scalar_key", [True, False])
def test_threefry_paths_agree(scalar_key):
    rng = np.random.default_rng(0)
    n = random_bits._NUMBA_MIN_SIZE + 7

    def words(*shape):
        return rng.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)

    keys = (words(), words()) if scalar_key else (words(n), words(n))
    x1, x2 = words(n), words(1)
    fast = random_bits._threefry2x32_numba(*keys, x1, x2, (n,))
    slow = random_bits._threefry2x32_numpy(*keys, x1, x2, (n,))
    tiny = random_bits._threefry2x32_python(
        *(np.broadcast_to(k, (n,))[:3] for k in keys), x1[:3], x2, (3,)
    )
    for f, s, t in zip(fast, slow, tiny, strict=True):
        np.testing.assert_array_equal(f, s)
        np.testing.assert_array_equal(t, s[:3])


def test_threefry_rejects_non_uint32():
    with pytest.raises(TypeError, match="threefry2x32: key and counter words must be uint32"):
        lax.threefry2x32(np.int32(0), np.uint32(0), np.uint32(0), np.uint32(0))


# ----------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(
    "seed", [0, 42, 2**32 + 5, -1, -(2**63), 2**64 - 1, np.int32(-3), np.uint64(2**63 + 9)]
)
def test_key_words(seed):
    pattern = int(seed) % 2**64
    k = r.key(seed)
    assert isinstance(k, np.ndarray) and k.dtype == np.uint32 and k.shape == (2,)
    assert k.tolist() == [pattern >> 32, pattern & 0xFFFFFFFF]
    assert r.PRNGKey(seed).tolist() == k.tolist()


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_key_of_traced_seed(dtype):
    seeds = np.array([0, 1, 7, 2**31 - 1], dtype)
    if np.dtype(dtype).kind == "i":
        seeds = np.append(seeds, np.array(-5, dtype))
    expected = np.stack([r.key(s) for s in seeds])
    np.testing.assert_array_equal(fg.vmap(r.key)(seeds), expected)
    for s, e in zip(seeds, expected, strict=True):
        np.testing.assert_array_equal(fg.jit(r.key)(s), e)


def test_split_and_fold_in():
    k1, k2 = r.split(KEY)
    assert r.split(KEY).shape == (2, 2) and r.split(KEY).dtype == np.uint32
    assert r.split(KEY, 5).shape == (5, 2)
    assert r.split(KEY, (2, 3)).shape == (2, 3, 2)
    assert r.split(KEY, 0).shape == (0, 2)
    assert not np.array_equal(k1, k2) and not np.array_equal(k1, KEY)
    np.testing.assert_array_equal(r.split(KEY, 5), r.split(KEY, 5))
    # Counter-based: the first keys of a larger split are the keys of a smaller one.
    np.testing.assert_array_equal(r.split(KEY, 5)[:2], r.split(KEY, 2))
    np.testing.assert_array_equal(r.split(KEY, (2, 3)).reshape(6, 2), r.split(KEY, 6))
    folded = r.fold_in(KEY, 3)
    assert folded.shape == (2,) and folded.dtype == np.uint32
    for same in (np.int32(3), np.uint8(3), np.array(3)):
        np.testing.assert_array_equal(r.fold_in(KEY, same), folded)
    np.testing.assert_array_equal(fg.jit(r.fold_in)(KEY, np.int32(3)), folded)
    data = np.arange(6, dtype=np.int32)
    np.testing.assert_array_equal(
        fg.vmap(r.fold_in, in_axes=(None, 0))(KEY, data),
        np.stack([r.fold_in(KEY, d) for d in data]),
    )
    assert not np.array_equal(r.fold_in(KEY, 0), r.fold_in(KEY, 1))


def test_keys_are_fresh_arrays():
    k = r.key(1)
    ks = r.split(k, 3)
    ks[0, 0] = 0  # writable, and no other key changes
    np.testing.assert_array_equal(r.split(k, 3)[1:], ks[1:])
    assert r.split(k, 3)[0, 0] != 0 or r.split(k, 3)[0, 1] != ks[0, 1]


# ----------------------------------------------------------------------------------------
# Agreement with jax.random (the same Threefry scheme), when JAX is installed


def test_matches_jax():
    jax = pytest.importorskip("jax")
    jr = jax.random

    def data(x):
        return np.asarray(jr.key_data(x))

    for seed in (42, 2**31 + 3):
        jk = jr.PRNGKey(seed)
        k = r.key(seed)
        np.testing.assert_array_equal(k, data(jk))
        np.testing.assert_array_equal(r.split(k, 4), data(jr.split(jk, 4)))
        np.testing.assert_array_equal(r.fold_in(k, 7), data(jr.fold_in(jk, 7)))
        for shape in [(), (3, 4), (20000,)]:
            for dt in (np.uint8, np.uint16, np.uint32):
                np.testing.assert_array_equal(r.bits(k, shape, dt), jr.bits(jk, shape, dt))
            np.testing.assert_array_equal(r.uniform(k, shape), jr.uniform(jk, shape))
            np.testing.assert_array_max_ulp(
                r.uniform(k, shape, minval=-2.0, maxval=3.0),
                jr.uniform(jk, shape, minval=-2.0, maxval=3.0),
                maxulp=1,
            )
            # JAX evaluates Giles' erfinv in float32 (and fuses an FMA): close, not equal.
            np.testing.assert_allclose(
                r.normal(k, shape), jr.normal(jk, shape), rtol=1e-5, atol=2e-6
            )
        for n in (5, 100, 2000):
            np.testing.assert_array_equal(r.permutation(k, n), jr.permutation(jk, n))


# ----------------------------------------------------------------------------------------
# Same key, same bits: eager, jit, vmap

P5 = np.array([0.1, 0.2, 0.3, 0.25, 0.15], np.float32)
LOGITS = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], np.float32))
HI4 = np.array([0.9, 1.0, 2.5, 3.0], np.float32)

SAMPLERS = {
    "split": lambda k: r.split(k, 3),
    "fold_in": lambda k: r.fold_in(k, 12345),
    "bits": lambda k: r.bits(k, (2, 3)),
    "bits_uint8": lambda k: r.bits(k, (5,), np.uint8),
    "bits_uint64": lambda k: r.bits(k, (4,), np.uint64),
    "uniform": lambda k: r.uniform(k, (2, 3)),
    "uniform_bounds": lambda k: r.uniform(k, (4,), np.float32, -0.6826895, HI4),
    "uniform_float64": lambda k: r.uniform(k, (5,), np.float64),
    "uniform_bounds_float64": lambda k: r.uniform(k, (5,), np.float64, -0.68, 0.95),
    "normal": lambda k: r.normal(k, (3, 2)),
    "normal_float64": lambda k: r.normal(k, (6,), np.float64),
    "exponential": lambda k: r.exponential(k, (5,)),
    "gumbel": lambda k: r.gumbel(k, (5,)),
    "logistic": lambda k: r.logistic(k, (5,)),
    "laplace": lambda k: r.laplace(k, (5,)),
    "rademacher": lambda k: r.rademacher(k, (5,)),
    "gamma": lambda k: r.gamma(k, np.array([0.5, 2.0, 7.0], np.float32), (2, 3)),
    "beta": lambda k: r.beta(k, 2.0, 0.7, (4,)),
    "truncated_normal": lambda k: r.truncated_normal(
        k, -1.0, np.array([0.5, 2.0], np.float32), (3, 2)
    ),
    "bernoulli": lambda k: r.bernoulli(k, np.array([0.1, 0.5, 0.9], np.float32), (2, 3)),
    "randint": lambda k: r.randint(k, (6,), 0, 10),
    "randint_bounds": lambda k: r.randint(k, (2, 3), np.array([-5, 0, 100]), 200, np.int64),
    "randint_uint8": lambda k: r.randint(k, (6,), 0, 256, np.uint8),
    "categorical": lambda k: r.categorical(k, LOGITS),
    "categorical_shape": lambda k: r.categorical(k, LOGITS, axis=0, shape=(4, 3)),
    "permutation": lambda k: r.permutation(k, 7),
    "permutation_array": lambda k: r.permutation(k, np.arange(12.0).reshape(3, 4), axis=1),
    "permutation_independent": lambda k: r.permutation(
        k, np.arange(12).reshape(3, 4), axis=1, independent=True
    ),
    "choice": lambda k: r.choice(k, 5, (4,)),
    "choice_array": lambda k: r.choice(k, np.arange(10.0).reshape(5, 2), (3,)),
    "choice_without_replacement": lambda k: r.choice(k, 5, (3,), replace=False),
    "choice_p": lambda k: r.choice(k, 5, (4,), p=P5),
    "choice_p_without_replacement": lambda k: r.choice(k, 5, (3,), replace=False, p=P5),
}
SCALES = {"uniform_bounds_float64": 1.63}
# Where jit is known to disagree for a reason outside funcgrad.random: checked, then xfailed.
JIT_GAPS = {
    "normal_float64": "the numba backend's erf_inv (helpers.fg_erf_inv: Newton steps on "
    "erf(x) - y) loses up to ~1e-12 relative accuracy as |y| -> 1; eager uses scipy",
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_bits_eager_jit_vmap(name):
    f = SAMPLERS[name]
    scale = SCALES.get(name, 1.0)
    eager = f(KEY)
    assert_same(f(KEY), eager)
    keys = r.split(KEY, 3)
    loop = np.stack([f(k) for k in keys])
    assert_same(fg.vmap(f)(keys), loop)
    assert_same(fg.vmap(f, out_axes=-1)(keys), np.moveaxis(loop, 0, -1))
    try:
        assert_same(fg.jit(f)(KEY), eager, scale)
        assert_same(fg.jit(fg.vmap(f))(keys), loop, scale)
    except AssertionError:
        if name in JIT_GAPS:
            pytest.xfail(JIT_GAPS[name])
        raise


def test_float16_eager_and_vmap():
    for f in (lambda k: r.uniform(k, (4,), np.float16), lambda k: r.normal(k, (4,), np.float16)):
        out = f(KEY)
        assert out.dtype == np.float16
        keys = r.split(KEY, 3)
        assert_same(fg.vmap(f)(keys), np.stack([f(k) for k in keys]))


FAST = {
    "bits": lambda k, n: r.bits(k, (n,)),
    "bits_uint64": lambda k, n: r.bits(k, (n,), np.uint64),
    "uniform": lambda k, n: r.uniform(k, (n,), np.float32, -1.5, 2.5),
    "uniform_float64": lambda k, n: r.uniform(k, (n,), np.float64, -1.5, 2.5),
    "normal": lambda k, n: r.normal(k, (n,)),
}


@pytest.mark.parametrize("name", FAST)
def test_fast_kernels_match_composition(name):
    """Large eager draws run a fused numba kernel; vmap over one key runs the lax ops."""
    n = r._FAST_MIN_SIZE + 3
    f = FAST[name]
    fast = f(KEY, n)
    composed = fg.vmap(lambda k: f(k, n))(KEY[None])[0]
    np.testing.assert_array_equal(fast, composed)
    jitted = fg.jit(lambda k: f(k, n))
    assert_same(jitted(KEY), fast, scale=2.5)
    other = r.key(1)  # a jitted draw is a function of its key, not a constant
    assert_same(jitted(other), f(other, n), scale=2.5)


# ----------------------------------------------------------------------------------------
# Errors

ERRORS = [
    (lambda: r.normal(np.array([0, 1]), (2,)), TypeError, r"normal: key must be a uint32\[2\]"),
    (lambda: r.normal(np.zeros(3, np.uint32)), ValueError, r"normal: key must have shape \(2,\)"),
    (lambda: r.uniform(r.split(KEY, 4)), ValueError, "batch of keys"),
    (lambda: r.split([0, 1]), TypeError, "split: key must be"),
    (lambda: r.normal(KEY, (-1, 2)), ValueError, "normal: shape .* negative"),
    (lambda: r.normal(KEY, (2.5,)), TypeError, "normal: shape must be a tuple of non-negative"),
    (lambda: r.uniform(KEY, "ab"), TypeError, "uniform: shape"),
    (lambda: r.split(KEY, -2), ValueError, "split: shape"),
    (lambda: r.normal(KEY, (2,), np.int32), TypeError, "normal: dtype must be a floating"),
    (lambda: r.bits(KEY, (2,), np.int32), TypeError, "bits: dtype must be an unsigned"),
    (lambda: r.randint(KEY, (2,), 0, 5, np.float32), TypeError, "randint: dtype"),
    (lambda: r.uniform(KEY, (2,), minval=1.0, maxval=0.0), ValueError, "minval must be at most"),
    (lambda: r.uniform(KEY, (2,), minval=np.array([0.0, 2.0]), maxval=1.0), ValueError, "minval"),
    (lambda: r.randint(KEY, (2,), 5, 3), ValueError, "randint: minval must be less than maxval"),
    (lambda: r.randint(KEY, (2,), 3, 3), ValueError, "randint: minval must be less than"),
    (lambda: r.randint(KEY, (2,), 0.5, 3), TypeError, "randint: minval must be an integer"),
    (lambda: r.randint(KEY, (), -(2**62), 2**62, np.int64), ValueError, "wider than 2\\*\\*63"),
    (lambda: r.truncated_normal(KEY, 1.0, -1.0), ValueError, "lower must be at most upper"),
    (lambda: r.gamma(KEY, np.array([1.0, -0.5])), ValueError, "gamma: 0 must be less than a"),
    (lambda: r.uniform(KEY, (3,), maxval=np.ones(4)), ValueError, "does not broadcast"),
    (lambda: r.bernoulli(KEY, np.full(3, 0.5), (2,)), ValueError, "bernoulli: p of shape"),
    (lambda: r.choice(KEY, 3, (5,), replace=False), ValueError, "without replacement"),
    (lambda: r.choice(KEY, 3, p=np.ones(4) / 4), ValueError, r"choice: p must have shape"),
    (lambda: r.categorical(KEY, np.zeros((3, 4)), shape=(5,)), ValueError, "batch shape"),
    (lambda: r.categorical(KEY, np.zeros(3, np.int32)), TypeError, "logits must be floating"),
    (lambda: r.permutation(KEY, np.float32(3.0)), ValueError, "permutation: x must be an int"),
    (lambda: r.key(1.5), TypeError, "key: expected an integer"),
    (lambda: r.key(True), TypeError, "key: expected an integer"),
    (lambda: r.key(2**64), ValueError, r"key: .* outside"),
    (lambda: r.key(np.arange(2)), ValueError, "key: expected an integer scalar"),
    (lambda: r.fold_in(KEY, 1.5), TypeError, "fold_in: expected an integer"),
    (lambda: fg.jit(lambda s: r.key(s))(np.float32(1)), TypeError, "key: expected an integer"),
    (lambda: fg.jit(lambda k: r.normal(k, (2,)))(np.zeros(2, np.int32)), TypeError, "uint32"),
    (lambda: fg.jit(lambda k, n: r.normal(k, (n,)))(KEY, 3), ConcretizationTypeError, "int"),
    (lambda: fg.jit(lambda k, n: r.permutation(k, n))(KEY, 3), TypeError, "must be static"),
]


@pytest.mark.parametrize("call,exc,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ----------------------------------------------------------------------------------------
# Statistics

N = 200_000
P_MIN = 1e-6


def _chi2_p(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(scipy.stats.chi2.sf(stat, len(counts) - 1))


def _check_moments(x: np.ndarray, mean: float, var: float, excess_kurtosis: float) -> None:
    n = x.size
    x = x.astype(np.float64)
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt((2 + excess_kurtosis) / n)
    assert abs(x.mean() - mean) < 5 * se_mean, (x.mean(), mean)
    assert abs(x.var() - var) < 5 * se_var, (x.var(), var)


def test_uniform_chi_square_and_range():
    u = r.uniform(r.key(1), (N,))
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    counts = np.bincount((u * 100).astype(int), minlength=100)
    assert _chi2_p(counts, np.full(100, 0.01)) > P_MIN
    _check_moments(u, 0.5, 1 / 12, -1.2)
    v = r.uniform(r.key(2), (N,), np.float64, -2.0, 3.0)
    assert v.min() >= -2.0 and v.max() < 3.0
    assert scipy.stats.kstest(v, scipy.stats.uniform(-2, 5).cdf).pvalue > P_MIN


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_distribution(dtype):
    z = r.normal(r.key(3), (N,), dtype)
    assert z.dtype == dtype and np.isfinite(z).all()
    _check_moments(z, 0.0, 1.0, 0.0)
    n = z.size
    skew = scipy.stats.skew(z.astype(np.float64))
    kurt = scipy.stats.kurtosis(z.astype(np.float64))
    assert abs(skew) < 5 * math.sqrt(6 / n) and abs(kurt) < 5 * math.sqrt(24 / n)
    assert scipy.stats.kstest(z, scipy.stats.norm.cdf).pvalue > P_MIN


_A, _B = -1.0, 2.0
DISTRIBUTIONS = {
    # name: (sampler, scipy distribution, excess kurtosis)
    "exponential": (r.exponential, scipy.stats.expon(), 6.0),
    "gumbel": (r.gumbel, scipy.stats.gumbel_r(), 2.4),
    "logistic": (r.logistic, scipy.stats.logistic(), 1.2),
    "laplace": (r.laplace, scipy.stats.laplace(), 3.0),
    "gamma_small_shape": (lambda k, shape: r.gamma(k, 0.3, shape), scipy.stats.gamma(0.3), 20.0),
    "gamma": (lambda k, shape: r.gamma(k, 2.5, shape), scipy.stats.gamma(2.5), 2.4),
    "beta": (lambda k, shape: r.beta(k, 2.0, 5.0, shape), scipy.stats.beta(2, 5), -0.12),
    "truncated_normal": (
        lambda k, shape: r.truncated_normal(k, _A, _B, shape),
        scipy.stats.truncnorm(_A, _B),
        float(scipy.stats.truncnorm(_A, _B).stats(moments="k")),
    ),
}


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_continuous_distributions(name):
    sampler, dist, kurt = DISTRIBUTIONS[name]
    x = sampler(r.key(4), (N,))
    assert x.dtype == np.float32 and np.isfinite(x).all()
    _check_moments(x, float(dist.mean()), float(dist.var()), kurt)
    assert scipy.stats.kstest(x, dist.cdf).pvalue > P_MIN
    if name == "truncated_normal":
        assert x.min() > _A and x.max() < _B


def test_rademacher_and_bernoulli():
    s = r.rademacher(r.key(5), (N,))
    assert set(np.unique(s)) == {-1, 1}
    assert abs(s.mean()) < 5 / math.sqrt(N)
    p = np.array([0.1, 0.5, 0.9], np.float32)
    b = r.bernoulli(r.key(6), p, (N, 3))
    assert b.dtype == np.bool_
    se = np.sqrt(p * (1 - p) / N)
    assert (np.abs(b.mean(0) - p) < 5 * se).all()
    assert r.bernoulli(KEY, 0.0, (100,)).sum() == 0 and r.bernoulli(KEY, 1.0, (100,)).all()


def test_bits_are_balanced():
    w = r.bits(r.key(7), (N,))
    ones = ((w[:, None] >> np.arange(32, dtype=np.uint32)) & 1).sum(0)
    z = (ones - N / 2) / (math.sqrt(N) / 2)
    assert np.abs(z).max() < 5.5
    b = r.bits(r.key(8), (N,), np.uint8)
    assert _chi2_p(np.bincount(b, minlength=256), np.full(256, 1 / 256)) > P_MIN


@pytest.mark.parametrize(
    "lo,hi,dtype", [(-3, 7, np.int32), (0, 256, np.uint8), (-(10**12), 10**12, np.int64)]
)
def test_randint_uniform(lo, hi, dtype):
    x = r.randint(r.key(9), (N,), lo, hi, dtype)
    assert x.dtype == dtype and x.min() >= lo and x.max() < hi
    span = hi - lo
    bins = min(span, 64)
    idx = ((x.astype(object) - lo) * bins // span).astype(np.int64)
    assert _chi2_p(np.bincount(idx, minlength=bins), np.full(bins, 1 / bins)) > P_MIN


def test_categorical_frequencies():
    probs = np.array([0.05, 0.1, 0.2, 0.3, 0.35])
    logits = np.log(probs).astype(np.float32) + 3.0  # a shift does not change softmax
    c = r.categorical(r.key(10), logits, shape=(N,))
    assert c.dtype == np.int32
    assert _chi2_p(np.bincount(c, minlength=5), probs) > P_MIN
    # Categories along axis 0, two batch columns with different probabilities.
    two = np.log(np.stack([probs, probs[::-1]], axis=1)).astype(np.float32)
    c2 = r.categorical(r.key(11), two, axis=0, shape=(N // 4, 2))
    assert _chi2_p(np.bincount(c2[:, 0], minlength=5), probs) > P_MIN
    assert _chi2_p(np.bincount(c2[:, 1], minlength=5), probs[::-1]) > P_MIN


def test_choice_frequencies():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    c = r.choice(r.key(12), 4, (N,), p=p)
    assert _chi2_p(np.bincount(c, minlength=4), p) > P_MIN
    u = r.choice(r.key(13), 4, (N,))
    assert _chi2_p(np.bincount(u, minlength=4), np.full(4, 0.25)) > P_MIN
    keys = r.split(r.key(14), 20_000)
    draws = fg.vmap(lambda k: r.choice(k, 4, (3,), replace=False, p=p))(keys)
    assert (np.sort(draws, 1)[:, 1:] != np.sort(draws, 1)[:, :-1]).all()  # no repeats
    # Without replacement, the first draw is a draw from p.
    assert _chi2_p(np.bincount(draws[:, 0], minlength=4), p) > P_MIN
    plain = fg.vmap(lambda k: r.choice(k, 6, (6,), replace=False))(keys[:100])
    np.testing.assert_array_equal(np.sort(plain, 1), np.tile(np.arange(6), (100, 1)))


def test_permutations_uniform():
    keys = r.split(r.key(15), 24_000)
    perms = fg.vmap(lambda k: r.permutation(k, 4))(keys)
    np.testing.assert_array_equal(np.sort(perms, 1), np.tile(np.arange(4), (len(keys), 1)))
    code = perms @ (4 ** np.arange(4))
    _, counts = np.unique(code, return_counts=True)
    assert len(counts) == 24
    assert _chi2_p(counts, np.full(24, 1 / 24)) > P_MIN
    x = np.arange(20.0).reshape(4, 5)
    shuffled = r.permutation(KEY, x, axis=1)
    np.testing.assert_array_equal(np.sort(shuffled, 1), x)
    assert (np.argsort(shuffled, 1) == np.argsort(shuffled[0])).all()  # columns move together


def _assert_streams_independent(streams: np.ndarray) -> None:
    m, n = streams.shape
    corr = np.corrcoef(streams)
    off = corr[~np.eye(m, dtype=bool)]
    assert np.abs(off).max() * math.sqrt(n) < 5.5
    # Joint 8x8 histogram of neighbouring streams: independent uniforms fill it evenly.
    for a, b in zip(streams[:-1:4], streams[1::4], strict=True):
        cell = (a * 8).astype(int) * 8 + (b * 8).astype(int)
        assert _chi2_p(np.bincount(cell, minlength=64), np.full(64, 1 / 64)) > P_MIN


def test_split_streams_independent():
    keys = r.split(r.key(16), 32)
    streams = fg.vmap(lambda k: r.uniform(k, (8192,), np.float64))(keys)
    _assert_streams_independent(streams)
    parent = r.uniform(r.key(16), (8192,), np.float64)
    _assert_streams_independent(np.vstack([parent, streams[:3]]))


def test_fold_in_streams_uncorrelated():
    base = r.key(17)
    keys = fg.vmap(lambda d: r.fold_in(base, d))(np.arange(32, dtype=np.int32))
    streams = fg.vmap(lambda k: r.uniform(k, (8192,), np.float64))(keys)
    _assert_streams_independent(streams)


def test_no_repeated_keys():
    keys = r.split(r.key(18), 100_000)
    assert np.unique(keys, axis=0).shape[0] == keys.shape[0]
    folded = fg.vmap(lambda d: r.fold_in(KEY, d))(np.arange(10_000, dtype=np.int32))
    assert np.unique(folded, axis=0).shape[0] == folded.shape[0]
    # As in JAX's scheme, fold_in(key, i) is split(key, n)[i] (both hash counter (0, i)):
    # derive a parent's children one way or the other, not both.
    np.testing.assert_array_equal(folded, r.split(KEY, 10_000))


# ----------------------------------------------------------------------------------------
# Gradients through samples


def _loss(key, n=1000):
    def loss(mu, sigma):
        x = mu + sigma * r.normal(key, (n,))
        return fnp.mean(x**2)

    return loss


def _closed_form(key, mu, sigma, n=1000):
    z = r.normal(key, (n,)).astype(np.float64)
    x = mu + sigma * z
    return 2 * x.mean(), 2 * (x * z).mean()


def test_grad_reparameterised_normal():
    mu, sigma = np.float32(0.5), np.float32(2.0)
    expected = _closed_form(KEY, 0.5, 2.0)
    for fn in (fg.grad(_loss(KEY), (0, 1)), fg.jit(fg.grad(_loss(KEY), (0, 1)))):
        g_mu, g_sigma = fn(mu, sigma)
        assert np.asarray(g_mu).dtype == np.float32
        np.testing.assert_allclose([g_mu, g_sigma], expected, rtol=1e-5)
    # Per key under vmap: each key's own closed form.
    keys = r.split(KEY, 4)

    def per_key(k):
        return fg.grad(lambda m, s: fnp.mean((m + s * r.normal(k, (1000,))) ** 2), (0, 1))(
            mu, sigma
        )

    g_mu, g_sigma = fg.vmap(per_key)(keys)
    expected = np.array([_closed_form(k, 0.5, 2.0) for k in keys])
    np.testing.assert_allclose(g_mu, expected[:, 0], rtol=1e-5)
    np.testing.assert_allclose(g_sigma, expected[:, 1], rtol=1e-5)
    # Linear in the noise: d/dsigma mean(mu + sigma z) = mean(z).
    g = fg.grad(lambda s: fnp.mean(0.5 + s * r.normal(KEY, (1000,))))(np.float32(1.0))
    np.testing.assert_allclose(g, r.normal(KEY, (1000,)).astype(np.float64).mean(), rtol=1e-5)


def test_grad_through_truncated_normal_bounds():
    def total(lo, hi):
        return fnp.sum(r.truncated_normal(KEY, lo, hi, (50,), np.float64))

    g = fg.grad(total, (0, 1))(-1.0, 2.0)
    eps = 1e-6
    fd = (
        (total(-1.0 + eps, 2.0) - total(-1.0 - eps, 2.0)) / (2 * eps),
        (total(-1.0, 2.0 + eps) - total(-1.0, 2.0 - eps)) / (2 * eps),
    )
    np.testing.assert_allclose(g, fd, rtol=1e-6)
