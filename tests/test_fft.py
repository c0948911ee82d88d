"""funcgrad.numpy.fft against NumPy, finite differences, a Python loop (vmap) and eager
mode (jit); round trips. The ``fft`` primitive's own rules are in ``tests/specs/fft.py``."""

from __future__ import annotations

import numpy as np
import pytest

import funcgrad as fg
import funcgrad.numpy as fnp
from tests.helpers import check_grads

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 6))
Z = X + 1j * RNG.standard_normal((4, 6))

CASES = {
    "fft": (lambda a: fnp.fft.fft(a), lambda a: np.fft.fft(a), Z),
    "fft_real_input": (lambda a: fnp.fft.fft(a), lambda a: np.fft.fft(a), X),
    "fft_n_axis0": (lambda a: fnp.fft.fft(a, 7, 0), lambda a: np.fft.fft(a, 7, 0), Z),
    "ifft_crop": (lambda a: fnp.fft.ifft(a, 4), lambda a: np.fft.ifft(a, 4), Z),
    "rfft": (lambda a: fnp.fft.rfft(a), lambda a: np.fft.rfft(a), X),
    "rfft_odd_pad": (lambda a: fnp.fft.rfft(a, 9), lambda a: np.fft.rfft(a, 9), X),
    "irfft": (lambda a: fnp.fft.irfft(a), lambda a: np.fft.irfft(a), Z),
    "irfft_n_axis0": (lambda a: fnp.fft.irfft(a, 5, 0), lambda a: np.fft.irfft(a, 5, 0), Z),
    "fft2": (lambda a: fnp.fft.fft2(a), lambda a: np.fft.fft2(a), Z),
    "ifft2_s": (lambda a: fnp.fft.ifft2(a, (3, 8)), lambda a: np.fft.ifft2(a, (3, 8)), Z),
    "fftn_axes": (
        lambda a: fnp.fft.fftn(a, axes=(1, 0)),
        lambda a: np.fft.fftn(a, axes=(1, 0)),
        Z,
    ),
    "ifftn": (lambda a: fnp.fft.ifftn(a), lambda a: np.fft.ifftn(a), Z),
    "rfftn": (lambda a: fnp.fft.rfftn(a), lambda a: np.fft.rfftn(a), X),
    "irfftn_s": (
        lambda a: fnp.fft.irfftn(a, (4, 9), axes=(0, 1)),
        lambda a: np.fft.irfftn(a, (4, 9), axes=(0, 1)),
        Z,
    ),
    "fft_ortho": (
        lambda a: fnp.fft.fft(a, norm="ortho"),
        lambda a: np.fft.fft(a, norm="ortho"),
        Z,
    ),
    "ifft_forward": (
        lambda a: fnp.fft.ifft(a, norm="forward"),
        lambda a: np.fft.ifft(a, norm="forward"),
        Z,
    ),
    "irfft_ortho": (
        lambda a: fnp.fft.irfft(a, norm="ortho"),
        lambda a: np.fft.irfft(a, norm="ortho"),
        Z,
    ),
    "rfft_forward": (
        lambda a: fnp.fft.rfft(a, norm="forward"),
        lambda a: np.fft.rfft(a, norm="forward"),
        X,
    ),
    "fftshift": (lambda a: fnp.fft.fftshift(a), lambda a: np.fft.fftshift(a), X),
    "ifftshift_axis": (
        lambda a: fnp.fft.ifftshift(a, axes=1),
        lambda a: np.fft.ifftshift(a, axes=1),
        Z,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_match_numpy(name):
    f, ref, a = CASES[name]
    got = f(a)
    want = ref(a)
    assert np.asarray(got).dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_jit_matches_eager(name):
    f, _, a = CASES[name]
    np.testing.assert_allclose(fg.jit(f)(a), f(a), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_match_finite_differences(name):
    f, _, a = CASES[name]
    check_grads(f, (a,), order=1, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", ["fft", "rfft", "irfft", "fft2", "rfftn", "irfftn_s"])
def test_vmap_matches_loop(name):
    f, _, a = CASES[name]
    batch = np.stack([a, 2 * a, a[::-1].copy()])
    out = fg.vmap(f)(batch)
    np.testing.assert_allclose(out, np.stack([f(b) for b in batch]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 15])
def test_round_trips(n):
    x = RNG.standard_normal((3, n))
    np.testing.assert_allclose(fnp.fft.irfft(fnp.fft.rfft(x), n), x, atol=1e-12)
    z = x + 1j * x[::-1]
    np.testing.assert_allclose(fnp.fft.ifft(fnp.fft.fft(z)), z, atol=1e-12)
    np.testing.assert_allclose(
        fg.jit(lambda v: fnp.fft.irfft(fnp.fft.rfft(v), n))(x), x, atol=1e-12
    )


def test_single_precision_and_errors():
    x32 = X.astype(np.float32)
    assert fnp.fft.rfft(x32).dtype == np.complex64
    assert fg.jit(fnp.fft.fft)(x32).dtype == np.complex64
    assert fnp.fft.irfft(fnp.fft.rfft(x32)).dtype == np.float32
    np.testing.assert_allclose(fnp.fft.fft(x32), np.fft.fft(X), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="fnp.fft.rfft: needs a real input"):
        fnp.fft.rfft(Z)
    with pytest.raises(ValueError, match="norm"):
        fnp.fft.fft(Z, norm="bogus")
    with pytest.raises(TypeError, match="RFFT needs a real"):
        fg.lax.fft(Z, "RFFT", (6,))


def test_power_spectrum_gradient():
    """A spectral loss: d/dx sum |rfft(x)|^2 w against the closed form through the DFT
    matrix (a real linear map M: sum_k w_k |M_k x|^2, gradient 2 Re(M^H diag(w) M x))."""
    n = 8
    x = RNG.standard_normal(n)
    w = np.linspace(0.5, 2.0, n // 2 + 1)
    m = np.fft.rfft(np.eye(n), axis=0)  # (n//2+1, n): rfft(x) = m @ x

    def loss(v):
        return fnp.sum(w * fnp.abs(fnp.fft.rfft(v)) ** 2)

    want = 2 * np.real(m.conj().T @ (w * (m @ x)))
    np.testing.assert_allclose(fg.grad(loss)(x), want, rtol=1e-12)
    np.testing.assert_allclose(fg.jit(fg.grad(loss))(x), want, rtol=1e-12)
    check_grads(loss, (x,), order=2)
