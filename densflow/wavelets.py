r"""Periodic orthonormal wavelet bases and the diagonals of DESIGN.md §2.

For a grid with ``n`` points per axis and a decomposition level ``L``, the columns
:math:`w_i` of the orthonormal basis :math:`W` produced by PyWavelets with
``mode="periodization"`` come in *blocks*: the approximation block at level ``L`` and,
per level ``j``, one (1D) or three (2D) detail blocks. Within a block the basis vectors
are translates of one another by :math:`2^j` points along each axis, and in 2D every
basis vector is a tensor product :math:`a \otimes b` of 1D scaling functions and
wavelets. Hence the diagonals

.. math::

    (H_1 p)_i = \sum_d \sum_s (D_d w_i)_s^2\, p_s, \qquad
    (H_2 p)_i = \sum_s w_i(s)^2\, p_s, \qquad
    (h_3)_i = \sum_d \lVert D_d w_i \rVert^2

are, within a block, circular correlations of ``p`` with the fixed kernels
:math:`K_1 = \sum_d (D_d w)^2` and :math:`K_2 = w^2` sampled with stride :math:`2^j`.
They are computed with one FFT of ``p`` and, per block, a product with the kernel's
spectrum folded to the coarse grid (sampling with stride ``r`` in space is summing
the ``r`` aliases in frequency) and an inverse FFT of the block's size:
:math:`O(N \log N)` in all, never an :math:`N \times N` matrix (Claims 1–2 of Ying 2021).
"""

import warnings

import numpy as np
import pywt

from .operators import forward_difference

__all__ = ["WaveletBasis", "valid_levels"]

MODE = "periodization"


def valid_levels(n):
    """Decomposition levels ``L >= 1`` with ``n`` divisible by ``2**L``."""
    levels = []
    level = 1
    while n % (2**level) == 0:
        levels.append(level)
        level += 1
    return levels


def _orthogonal_wavelet(wavelet):
    try:
        w = pywt.Wavelet(wavelet) if not isinstance(wavelet, pywt.Wavelet) else wavelet
    except ValueError as exc:
        raise ValueError(
            f"wavelet must name a discrete PyWavelets wavelet, got {wavelet!r} ({exc})"
        ) from None
    if not w.orthogonal:
        raise ValueError(
            f"wavelet must be orthogonal (e.g. 'haar', 'db2', 'db4', 'sym4', 'coif2'); "
            f"{w.name!r} is not"
        )
    return w


class WaveletBasis:
    r"""The periodic orthonormal wavelet basis :math:`W` of a grid.

    Parameters
    ----------
    grid : Grid
        The periodic grid.
    wavelet : str or pywt.Wavelet
        An orthogonal wavelet (Daubechies ``"dbK"`` in the paper).
    level : int or None
        Decomposition level ``L``; ``n`` must be divisible by ``2**L``. ``None`` takes
        the deepest level PyWavelets advises for the filter length
        (``pywt.dwt_max_level``), capped by divisibility and at least 1.

    Notes
    -----
    Coefficient arrays follow PyWavelets: ``wavedec`` / ``wavedec2`` lists,
    ``[cA_L, cD_L, ..., cD_1]`` in 1D and ``[cA_L, (cH_L, cV_L, cD_L), ...]`` in 2D.
    """

    def __init__(self, grid, wavelet="db4", level=None):
        self.grid = grid
        self.wavelet = _orthogonal_wavelet(wavelet)
        n = grid.n
        levels = valid_levels(n)
        if not levels:
            raise ValueError(
                f"n={n} is odd: a periodized wavelet basis needs n divisible by 2**level "
                f"for some level >= 1"
            )
        if level is None:
            advised = pywt.dwt_max_level(n, self.wavelet.dec_len)
            level = max(1, min(advised, levels[-1]))
        else:
            if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
                raise TypeError(f"level must be an integer or None, got {level!r}")
            if level not in levels:
                raise ValueError(
                    f"level={level} needs n divisible by 2**{level}={2**level}, but n={n}; "
                    f"levels that work for n={n}: {levels[0]}..{levels[-1]}"
                )
        self.level = int(level)
        self._build_blocks()

    # -- transforms ---------------------------------------------------------------
    def analysis(self, f):
        r"""Wavelet coefficients :math:`W^\top f` (a PyWavelets coefficient list)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if self.grid.dim == 1:
                return pywt.wavedec(f, self.wavelet, mode=MODE, level=self.level)
            return pywt.wavedec2(f, self.wavelet, mode=MODE, level=self.level)

    def synthesis(self, coeffs):
        r"""The function :math:`W c` from a coefficient list."""
        if self.grid.dim == 1:
            return pywt.waverec(coeffs, self.wavelet, mode=MODE)
        return pywt.waverec2(coeffs, self.wavelet, mode=MODE)

    def blocks(self, coeffs):
        """The coefficient arrays of a coefficient list, in block order."""
        if self.grid.dim == 1:
            return list(coeffs)
        out = [coeffs[0]]
        for details in coeffs[1:]:
            out.extend(details)
        return out

    def from_blocks(self, arrays):
        """Inverse of :meth:`blocks`."""
        if self.grid.dim == 1:
            return list(arrays)
        coeffs = [arrays[0]]
        for k in range(1, len(arrays), 3):
            coeffs.append(tuple(arrays[k : k + 3]))
        return coeffs

    # -- setup --------------------------------------------------------------------
    def _build_blocks(self):
        grid = self.grid
        n, dim = grid.n, grid.dim
        zero = self.analysis(np.zeros(grid.shape))
        arrays = self.blocks(zero)
        self.block_shapes = [a.shape for a in arrays]
        self.strides = [n // a.shape[0] for a in arrays]
        self.h3 = []
        self._spectra = []
        for b, shape in enumerate(self.block_shapes):
            unit = [np.zeros(s) for s in self.block_shapes]
            unit[b][(0,) * dim] = 1.0
            w = self.synthesis(self.from_blocks(unit))
            if b == 0 and all(s == 1 for s in shape):
                # full depth: the approximation vector is the constant 1/sqrt(N); make
                # its derivative exactly zero so that H1 p = 0 there (lambda = 0 when
                # alpha1 > 0) instead of a rounding residue
                w = np.full(grid.shape, 1.0 / np.sqrt(grid.size))
            if dim == 1:
                k1 = forward_difference(w, 0, n) ** 2
                self._spectra.append((np.conj(np.fft.fft(k1)), np.conj(np.fft.fft(w**2))))
                self.h3.append(float(k1.sum()))
            else:
                a, c = _separable_factors(w)
                da, dc = forward_difference(a, 0, n), forward_difference(c, 0, n)
                f = lambda v: np.conj(np.fft.fft(v))  # noqa: E731
                self._spectra.append((f(a**2), f(da**2), f(c**2), f(dc**2)))
                self.h3.append(float((da**2).sum() * (c**2).sum() + (a**2).sum() * (dc**2).sum()))

    # -- diagonals ----------------------------------------------------------------
    def diagonals(self, p, need_h1=True, need_h2=True):
        r"""Return the block lists :math:`H_1 p` and :math:`H_2 p` (``None`` if not needed).

        Costs one FFT of ``p`` and, per block, :math:`O(N)` work plus an inverse FFT
        of the block's size.
        """
        n, dim = self.grid.n, self.grid.dim
        P = np.fft.fftn(p)
        h1 = [] if need_h1 else None
        h2 = [] if need_h2 else None
        for r, spec in zip(self.strides, self._spectra):
            m = n // r
            if dim == 1:
                k1, k2 = spec
                if need_h1:
                    h1.append(_fold_1d(P * k1, r, m))
                if need_h2:
                    h2.append(_fold_1d(P * k2, r, m))
            else:
                a2, da2, c2, dc2 = spec
                if need_h2:
                    h2.append(_fold_2d(P, a2, c2, r, m))
                if need_h1:
                    h1.append(_fold_2d(P, da2, c2, r, m) + _fold_2d(P, a2, dc2, r, m))
        return h1, h2


def _fold_1d(C, r, m):
    return np.fft.ifft(C.reshape(r, m).sum(axis=0)).real / r


def _fold_2d(P, u, v, r, m):
    # (P * u[:, None] * v[None, :]) folded by r along both axes, one axis at a time
    Q = (P * v[None, :]).reshape(P.shape[0], r, m).sum(axis=1)
    Q = (Q * u[:, None]).reshape(r, m, m).sum(axis=0)
    return np.fft.ifft2(Q).real / (r * r)


def _separable_factors(w):
    """Factor a rank-one 2D array ``w = a ⊗ c`` (``a`` along axis 0)."""
    i, j = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    a = w[:, j].copy()
    c = w[i, :] / w[i, j]
    if not np.allclose(np.outer(a, c), w, rtol=0, atol=1e-12 * np.abs(w).max()):
        raise RuntimeError("2D wavelet basis vector is not separable; unexpected pywt layout")
    return a, c
