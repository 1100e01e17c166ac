r"""Periodic orthonormal wavelet bases and the diagonals of the combined metric
(:ref:`metrics`).

For a grid with ``n`` points per axis and a decomposition level ``L``, the columns
:math:`w_i` of the orthonormal basis :math:`W` of PyWavelets' ``mode="periodization"``
transform come in *blocks*: the approximation block at level ``L`` and, per level
``j``, one (1D) or three (2D) detail blocks. Within a block the basis vectors are
translates of one another by :math:`r = 2^j` points along each axis, and in 2D every
basis vector is a tensor product :math:`a \otimes b` of the 1D scaling function
:math:`\varphi_j` or wavelet :math:`\psi_j` of its level. Hence the diagonals

.. math::

    (H_1 p)_i = \sum_d \sum_s (D_d w_i)_s^2\, p_s, \qquad
    (H_2 p)_i = \sum_s w_i(s)^2\, p_s, \qquad
    (h_3)_i = \sum_d \lVert D_d w_i \rVert^2

are, within a block, circular correlations of ``p`` with the compactly supported
kernels :math:`\sum_d (D_d w)^2` and :math:`w^2` sampled with stride :math:`r`. In 2D
:math:`(D_1 w)^2 = (Da)^2 \otimes b^2` and :math:`w^2 = a^2 \otimes b^2` are separable,
so the correlations are done one axis at a time, sharing the axis-1 pass among the
three blocks of a level. A kernel of level ``j`` has about :math:`(F-1)\,2^j` taps
(``F`` the filter length) and is evaluated at :math:`N/2^{j\,\mathrm{dim}}` points,
so each level costs :math:`O(F N)` and all of them :math:`O(F N \log N)` — Claims 1–2
of Ying (2021), with no :math:`N \times N` matrix and no stored :math:`H_1, H_2`.

Coefficients are kept in the *pyramid layout* of ``pywt.coeffs_to_array`` (an array of
the grid's shape); the transforms are the numba kernels of :mod:`densflow.kernels.dwt`.
"""

import numpy as np
import pywt

from ..kernels import diagonals as DK
from ..kernels import dwt as K
from .operators import forward_difference

__all__ = ["WaveletBasis", "valid_levels", "cached_basis"]


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
        if not isinstance(wavelet, (str, pywt.Wavelet)):
            raise ValueError(f"a name, not a {type(wavelet).__name__}")
        w = wavelet if isinstance(wavelet, pywt.Wavelet) else pywt.Wavelet(wavelet)
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


class _Factor:
    """A 1D periodic function ``f`` (scaling function or wavelet of one level) with the
    compact windows of ``f**2`` and ``(D f)**2``."""

    def __init__(self, f, n):
        df = forward_difference(f, 0, n)
        sq, dsq = f * f, df * df
        support = np.flatnonzero((sq != 0) | (dsq != 0))
        # smallest circular window holding the support: cut at the largest gap
        if support.size == n or support.size == 0:
            t0, length = 0, n
        else:
            gaps = np.diff(np.r_[support, support[0] + n])
            cut = int(np.argmax(gaps))
            t0 = int(support[(cut + 1) % support.size])
            length = int(n - gaps[cut] + 1)
        idx = (t0 + np.arange(length)) % n
        self.t0 = t0
        self.sq = np.ascontiguousarray(sq[idx])
        self.dsq = np.ascontiguousarray(dsq[idx])
        self.norm_sq = float(sq.sum())
        self.dnorm_sq = float(dsq.sum())


def _pack(factors):
    """Windows of several factors as flat arrays: ``(t0s, starts, lengths, sq, dsq)``."""
    lengths = np.array([f.sq.size for f in factors], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return (np.array([f.t0 for f in factors], dtype=np.int64), starts, lengths,
            np.concatenate([f.sq for f in factors]), np.concatenate([f.dsq for f in factors]))


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
        self.lo = np.asarray(self.wavelet.dec_lo, dtype=float)
        self.hi = np.asarray(self.wavelet.dec_hi, dtype=float)
        self._build()

    # -- transforms ---------------------------------------------------------------
    def analysis(self, f):
        r"""Wavelet coefficients :math:`W^\top f` in the pyramid layout."""
        f = np.ascontiguousarray(f, dtype=float)
        out = np.empty_like(f)
        (K.dwt1 if f.ndim == 1 else K.dwt2)(f, self.lo, self.hi, self.level, out)
        return out

    def synthesis(self, c):
        r"""The function :math:`W c` from pyramid-layout coefficients."""
        c = np.ascontiguousarray(c, dtype=float)
        out = np.empty_like(c)
        (K.idwt1 if c.ndim == 1 else K.idwt2)(c, self.lo, self.hi, self.level, out)
        return out

    # -- setup --------------------------------------------------------------------
    def _factor_functions(self, j):
        """The 1D scaling function and wavelet of level ``j`` at translate 0."""
        n = self.grid.n
        out = []
        for pos in (0, n >> j):
            e = np.zeros(n)
            e[pos] = 1.0
            f = np.empty(n)
            K.idwt1(e, self.lo, self.hi, j, f)
            out.append(f)
        if (n >> j) == 1:
            # full depth: the scaling function is the constant 1/sqrt(n); without the
            # rounding residue its derivative is exactly zero (so H1 p = 0 there)
            out[0] = np.full(n, 1.0 / np.sqrt(n))
        return out

    def _build(self):
        n, dim, L = self.grid.n, self.grid.dim, self.level
        self.factors = {}
        for j in range(1, L + 1):
            phi, psi = self._factor_functions(j)
            self.factors[("phi", j)] = _Factor(phi, n)
            self.factors[("psi", j)] = _Factor(psi, n)
        # blocks: (level, factor per axis, region of the pyramid)
        blocks = []
        hL = n >> L
        if dim == 1:
            blocks.append((L, ("phi",), (slice(0, hL),)))
            for j in range(L, 0, -1):
                h = n >> j
                blocks.append((j, ("psi",), (slice(h, 2 * h),)))
        else:
            blocks.append((L, ("phi", "phi"), (slice(0, hL), slice(0, hL))))
            for j in range(L, 0, -1):
                h = n >> j
                lo_, hi_ = slice(0, h), slice(h, 2 * h)
                blocks.append((j, ("phi", "psi"), (lo_, hi_)))
                blocks.append((j, ("psi", "phi"), (hi_, lo_)))
                blocks.append((j, ("psi", "psi"), (hi_, hi_)))
        self.blocks = blocks
        self.h3 = np.empty(self.grid.shape)
        for j, kinds, region in blocks:
            fs = [self.factors[(k, j)] for k in kinds]
            if dim == 1:
                self.h3[region] = fs[0].dnorm_sq
            else:
                self.h3[region] = fs[0].dnorm_sq * fs[1].norm_sq + fs[0].norm_sq * fs[1].dnorm_sq
        if dim == 2:
            # factor 2 (j - 1) + t: scaling function (t = 0) or wavelet (t = 1) of level j
            self._flat = _pack([self.factors[(kind, j)] for j in range(1, L + 1)
                                for kind in ("phi", "psi")])
        else:
            offsets = np.array([region[0].start for _, _, region in blocks] + [n], dtype=np.int64)
            strides = np.array([1 << j for j, _, _ in blocks], dtype=np.int64)
            self._flat = (offsets, strides) + _pack([self.factors[(kinds[0], j)]
                                                     for j, kinds, _ in blocks])

    # -- diagonals ----------------------------------------------------------------
    def diagonals(self, p, need_h1=True, need_h2=True):
        r"""Pyramid-layout arrays :math:`H_1 p` and :math:`H_2 p` (``None`` if not needed)."""
        p = np.ascontiguousarray(p, dtype=float)
        h1 = np.empty(self.grid.shape) if need_h1 else None
        h2 = np.empty(self.grid.shape) if need_h2 else None
        if self.grid.dim == 1:
            DK.diagonals_1d(p, *self._flat, h1 if need_h1 else p, h2 if need_h2 else p,
                           need_h1, need_h2)
            return h1, h2
        DK.diagonals_2d(p, self.level, *self._flat, h1 if need_h1 else p, h2 if need_h2 else p,
                       need_h1, need_h2)
        return h1, h2


_CACHE = {}
#: Bases kept by :func:`cached_basis` (the most recently built ones).
CACHE_SIZE = 8


def cached_basis(grid, wavelet="db4", level=None):
    """A :class:`WaveletBasis`, shared between calls with the same grid, wavelet and level.

    Building a basis (its factor windows and ``h3``) costs about as much as a few
    iterations at small ``n``; a basis is never modified after it is built, so runs on
    the same grid share one.
    """
    name = wavelet.name if isinstance(wavelet, pywt.Wavelet) else wavelet
    key = (grid.n, grid.dim, name, level) if isinstance(name, str) else None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    basis = WaveletBasis(grid, wavelet, level)
    if key is not None:
        if len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = basis
    return basis

