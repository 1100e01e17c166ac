"""A real FFT pair with a Fourier multiplier, :math:`x \\mapsto \\mathcal F^{-1}(m\\,
\\mathcal F x)` on a periodic grid, with preallocated buffers (Newton in the potential's
preconditioner, :mod:`densflow.potential_newton`).

``scipy.fft.rfftn``/``irfftn`` check and normalise their arguments on every call, about
13 µs per pair: half of the pair's time on a 64² grid, where a whole Newton solve is
about 2 ms with 16 pairs. :class:`FourierPair` calls scipy's pocketfft binding directly
with fixed axes, normalisation and output buffers (bit for bit the result of the public
functions, checked once at import); without that binding (another scipy) it uses the
public functions.

On more than one axis the binding's inverse transform (``c2r``) allocates a complex
temporary of the whole half-spectrum on every call (a fresh, page-faulting array above
glibc's mmap threshold: 258 KB at 256² in float32). The pair instead runs the inverse's
complex passes in place on its own spectrum buffer and the real pass on the last axis
alone, with the normalisation :math:`1/N` applied afterwards: the same passes and the
same rounding as the binding's multi-axis ``c2r``, which scales the last pass's output
by :math:`1/N`.
"""

import numpy as np
import scipy.fft as sfft

try:  # scipy's own binding of pocketfft, as scipy.fft.rfftn/irfftn call it
    from scipy.fft._pocketfft import pypocketfft as _pf
except ImportError:  # pragma: no cover - another scipy layout
    _pf = None

__all__ = ["FourierPair", "DIRECT"]


class FourierPair:
    """``pair(t, m)``: the real array :math:`\\mathcal F^{-1}(m\\,\\mathcal F t)` of
    ``t``'s shape and dtype (float32 or float64; ``m`` the multiplier on the
    half-spectrum, ``rfftn``'s layout, of the matching real dtype). The result is a
    buffer the next call overwrites."""

    def __init__(self, shape, dtype):
        self.shape = tuple(shape)
        self.axes = tuple(range(len(self.shape)))
        dtype = np.dtype(dtype)
        complex_ = np.complex64 if dtype == np.float32 else np.complex128
        self._z = np.empty(self.shape[:-1] + (self.shape[-1] // 2 + 1,), dtype=complex_)
        self._out = np.empty(self.shape, dtype=dtype)
        self._scale = _norm(self.shape, dtype)

    def __call__(self, t, m):
        if DIRECT:
            z = _pf.r2c(t, self.axes, True, 0, self._z, 1)
            z *= m
            return _inverse(z, self.axes, self.shape[-1], self._scale, self._out)
        z = sfft.rfftn(t, axes=self.axes)
        z *= m
        return sfft.irfftn(z, s=self.shape, axes=self.axes, overwrite_x=True)


def _norm(shape, dtype):
    """:math:`1/N` in ``dtype`` as pocketfft's binding makes it (in long double)."""
    return np.dtype(dtype).type(np.longdouble(1) / np.longdouble(np.prod(shape)))


def _inverse(z, axes, last, scale, out):
    """``irfftn(z)`` over ``axes`` into ``out`` (``scale`` = :math:`1/N` in ``out``'s
    dtype), with no temporary: the complex passes in place on ``z``, then the real one."""
    if len(axes) == 1:
        return _pf.c2r(z, axes, last, False, 2, out, 1)
    _pf.c2c(z, axes[:-1], False, 0, z, 1)
    _pf.c2r(z, axes[-1:], last, False, 0, out, 1)
    out *= scale
    return out


def _check():
    """Whether the direct binding gives the public functions' result bit for bit."""
    if _pf is None:
        return False
    try:
        rng = np.random.default_rng(0)
        for shape, dtype in (((8, 6), np.float32), ((8, 6), np.float64), ((10,), np.float64),
                             ((30, 24), np.float32), ((69, 67), np.float64)):
            t = rng.standard_normal(shape).astype(dtype)
            m = rng.random(shape[:-1] + (shape[-1] // 2 + 1,)).astype(dtype)
            axes = tuple(range(len(shape)))
            want = sfft.irfftn(sfft.rfftn(t, axes=axes) * m, s=shape, axes=axes)
            z = _pf.r2c(t, axes, True, 0, None, 1)
            z *= m
            got = _inverse(z, axes, shape[-1], _norm(shape, dtype),
                           np.empty(shape, dtype=dtype))
            if got.dtype != want.dtype or not np.array_equal(got, want):
                return False
        return True
    except Exception:  # pragma: no cover - a changed binding: use the public functions
        return False


#: Whether :class:`FourierPair` calls pocketfft's binding directly (checked at import).
DIRECT = _check()
