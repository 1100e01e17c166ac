"""numba kernels of the combined metric's step: the eigenvalues from the diagonals,
the projected operator ``W diag(lam) (W^T v - c W^T 1)`` in one call, and the even
spread of a direction's rounding residue. Same arithmetic as the numpy expressions
they replace (:mod:`densflow.metrics`), without a call per array operation."""

import numba as nb
import numpy as np

from .diagonals import diagonals_1d
from .dwt import dwt1, dwt2, idwt1, idwt2
from .stencils import dot_serial

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})


@nb.njit(**_JIT)
def eigenvalues(h1, h2, a1, a2, a3h3, lam):
    """``lam = 1 / (a3h3 + a1/h1 + a2/h2)`` (terms with weight 0 left out), and 0 where
    the denominator is not finite and positive (``h1 = 0``: a constant basis vector)."""
    hf1 = h1.reshape(-1)
    hf2 = h2.reshape(-1)
    af = a3h3.reshape(-1)
    lf = lam.reshape(-1)
    for i in range(lf.shape[0]):
        denom = af[i]
        if a1 > 0.0:
            denom += a1 / hf1[i]
        if a2 > 0.0:
            denom += a2 / hf2[i]
        lf[i] = 1.0 / denom if (denom > 0.0 and denom < np.inf) else 0.0


@nb.njit(**_JIT)
def _project_scale(coeffs, lam, ones, lam1, den):
    cf = coeffs.reshape(-1)
    lf = lam.reshape(-1)
    of = ones.reshape(-1)
    if den > 0.0:
        c = dot_serial(lam1.reshape(-1), cf) / den
        for i in range(cf.shape[0]):
            cf[i] = lf[i] * (cf[i] - c * of[i])
    else:
        for i in range(cf.shape[0]):
            cf[i] *= lf[i]


@nb.njit(**_JIT)
def combined_1d(v, lo, hi, level, lam, ones, lam1, den, out):
    """``out = W diag(lam) (W^T v - c W^T 1)``, ``c = lam1.W^T v / den`` (``c = 0`` when
    ``den = 0``), on a 1D grid."""
    coeffs = np.empty(v.shape[0])
    dwt1(v, lo, hi, level, coeffs)
    _project_scale(coeffs, lam, ones, lam1, den)
    idwt1(coeffs, lo, hi, level, out)


@nb.njit(**_JIT)
def combined_2d(v, lo, hi, level, lam, ones, lam1, den, out):
    """:func:`combined_1d` on a square 2D grid."""
    coeffs = np.empty(v.shape)
    dwt2(v, lo, hi, level, coeffs)
    _project_scale(coeffs, lam, ones, lam1, den)
    idwt2(coeffs, lo, hi, level, out)


@nb.njit(**_JIT)
def _residue(s, share_factor, out):
    """Flat views of ``s`` and ``out``, ``N``, the residue ``t = sum s`` and the even
    share ``share_factor |t| / N``."""
    sf = s.reshape(-1)
    total = 0.0
    for i in range(sf.shape[0]):
        total += sf[i]
    return sf, out.reshape(-1), sf.shape[0], total, share_factor * abs(total) / sf.shape[0]


@nb.njit(**_JIT)
def spread_residue(s, share_factor, out):
    """``out = s - sum(s)/N`` when every ``|s_i| >= share_factor |sum(s)| / N`` and return
    True; otherwise leave ``out`` alone and return False (the caller then spreads the
    residue by weights)."""
    sf, of, N, total, share = _residue(s, share_factor, out)
    for i in range(N):
        if abs(sf[i]) < share:
            return False
    shift = total / N
    for i in range(N):
        of[i] = sf[i] - shift
    return True


@nb.njit(**_JIT)
def spread_weighted(s, share_factor, out):
    """``out = s - (t / sum m) m``, ``t = sum s``, ``m = min(1, |s| / share)``, ``share =
    share_factor |t| / N`` (``out = s - t/N`` when ``sum m`` is not a positive number):
    the spread of :func:`densflow.metrics.mass_fix` when some entry is below the even
    share (:func:`spread_residue` returned False: ``t != 0``)."""
    sf, of, N, total, share = _residue(s, share_factor, out)
    den = 0.0
    for i in range(N):
        den += min(1.0, abs(sf[i]) / share)
    if den > 0.0 and den < np.inf:
        f = total / den
        for i in range(N):
            of[i] = sf[i] - f * min(1.0, abs(sf[i]) / share)
    else:
        for i in range(N):
            of[i] = sf[i] - total / N


@nb.njit(**_JIT)
def combined_direction_1d(p, g, offsets, strides, t0s, starts, lengths, wsq, wdsq, lo, hi,
                          level, a1, a2, a3h3, ones, share_factor, s):
    """The combined metric's direction at ``p`` on a 1D grid in one call: the diagonals,
    the eigenvalues, ``s = W diag(lam) (W^T g - c W^T 1)`` and the even spread of its
    rounding residue. Returns False when the residue needs the weighted spread (``s``
    then holds the direction before it)."""
    n = p.shape[0]
    h1 = np.empty(n)
    h2 = np.empty(n)
    diagonals_1d(p, offsets, strides, t0s, starts, lengths, wsq, wdsq, h1, h2, a1 > 0.0, a2 > 0.0)
    lam = np.empty(n)
    eigenvalues(h1, h2, a1, a2, a3h3, lam)
    lam1 = lam * ones
    combined_1d(g, lo, hi, level, lam, ones, lam1, dot_serial(lam1, ones), s)
    return spread_residue(s, share_factor, s)
