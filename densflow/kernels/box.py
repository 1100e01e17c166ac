"""numba kernels of the no-flux (Neumann) box: difference stencils without the
wrap-around edge, the exact 1D weighted-Laplacian solve and the fused vector work of
the 2D weighted-Laplacian CG (the box twins of :mod:`densflow.kernels.stencils` and
:mod:`densflow.kernels.cg`).

On a line of ``n`` cells the edges are ``(i, i+1)`` for ``i = 0 .. n-2``; the flux on
edge ``(i, i+1)`` is ``mu[i] * n * (x[i+1] - x[i])`` (the mobility of the edge's left
cell, as on the periodic grid), and no flux crosses the walls.
"""

import numba as nb
import numpy as np

from .box_diagonals import reflected_diagonals_1d
from .dwt import dwt1, idwt1
from .metric import eigenvalues, spread_residue

_JIT = dict(cache=True, nogil=True, error_model="numpy")
_JIT_FAST = dict(_JIT, fastmath={"reassoc", "contract"})


@nb.njit(**_JIT)
def weighted_laplacian_box_1d(x, mu, n, out):
    """``out = D^T (mu * D x)`` on a line of ``n`` cells with no-flux walls."""
    n2 = float(n) * float(n)
    for i in range(n):
        v = 0.0
        if i > 0:
            v += mu[i - 1] * (x[i] - x[i - 1])
        if i < n - 1:
            v -= mu[i] * (x[i + 1] - x[i])
        out[i] = n2 * v


@nb.njit(**_JIT)
def edge_laplacian_box_2d(x, m0, m1, n, out):
    """``out = D_1^T (m0 * D_1 x) + D_2^T (m1 * D_2 x)`` on an ``n x n`` box (no flux
    through the walls): ``m0[i, j]`` is the mobility of the edge ``(i, j)-(i+1, j)``,
    ``m1[i, j]`` that of ``(i, j)-(i, j+1)``; the last row of ``m0`` and column of
    ``m1`` (wall edges) are not read. Returns ``x.out``."""
    n2 = float(n) * float(n)
    curvature = 0.0
    for i in range(n):
        for j in range(n):
            xc = x[i, j]
            v = 0.0
            if i > 0:
                v += m0[i - 1, j] * (xc - x[i - 1, j])
            if i < n - 1:
                v -= m0[i, j] * (x[i + 1, j] - xc)
            if j > 0:
                v += m1[i, j - 1] * (xc - x[i, j - 1])
            if j < n - 1:
                v -= m1[i, j] * (x[i, j + 1] - xc)
            v *= n2
            out[i, j] = v
            curvature += xc * v
    return curvature


@nb.njit(**_JIT)
def weighted_laplacian_box_2d(x, mu, n, out):
    """``out = sum_d D_d^T (mu * D_d x)`` on an ``n x n`` box; returns ``x.out``."""
    return edge_laplacian_box_2d(x, mu, mu, n, out)


@nb.njit(**_JIT)
def laplacian_box_1d(x, n, out):
    """``out = D^T D x``, the Neumann ``-Delta`` on a line of ``n`` cells."""
    n2 = float(n) * float(n)
    for i in range(n):
        v = 0.0
        if i > 0:
            v += x[i] - x[i - 1]
        if i < n - 1:
            v -= x[i + 1] - x[i]
        out[i] = n2 * v


@nb.njit(**_JIT)
def laplacian_box_2d(x, n, out):
    """``out = (D_1^T D_1 + D_2^T D_2) x`` on an ``n x n`` box."""
    n2 = float(n) * float(n)
    for i in range(n):
        for j in range(n):
            xc = x[i, j]
            v = 0.0
            if i > 0:
                v += xc - x[i - 1, j]
            if i < n - 1:
                v -= x[i + 1, j] - xc
            if j > 0:
                v += xc - x[i, j - 1]
            if j < n - 1:
                v -= x[i, j + 1] - xc
            out[i, j] = n2 * v


@nb.njit(**_JIT)
def weighted_laplacian_pinv_box_1d(r, inv_mu, n, out):
    """Zero-mean solution of ``D^T (mu D x) = r - mean(r)`` on a line with no-flux walls.

    ``D^T q = r - mean r`` with ``q_{-1} = q_{n-1} = 0`` gives the flux
    ``q_i = -(1/n) sum_{j<=i} (r_j - mean r)``; then ``x_{i+1} = x_i + q_i / (n mu_i)``.
    """
    mean_r = 0.0
    for i in range(n):
        mean_r += r[i]
    mean_r /= n
    q = 0.0
    x = 0.0
    total = 0.0
    out[0] = 0.0
    for i in range(n - 1):
        q -= (r[i] - mean_r) / n
        x += q * inv_mu[i] / n
        out[i + 1] = x
        total += x
    total /= n
    for i in range(n):
        out[i] -= total


@nb.njit(**_JIT)
def cg_update_box(x, res, d, ld, mu, n, rz, scale, t, inv_rho):
    """:func:`densflow.kernels.cg.cg_update` with the box stencil."""
    curvature = weighted_laplacian_box_2d(d, mu, n, ld)
    alpha = rz / curvature
    rr = 0.0
    for i in range(n):
        for j in range(n):
            x[i, j] += alpha * d[i, j]
            r = res[i, j] - alpha * ld[i, j]
            res[i, j] = r
            rr += r * r
            t[i, j] = scale[i, j] * r * inv_rho
    return rr, curvature


@nb.njit(**_JIT)
def extend_2d(v, out):
    """``out`` (``2n x 2n``) = the even reflection of ``v`` (``n x n``) in one pass."""
    n = v.shape[0]
    m = 2 * n
    for x in range(n):
        row = v[x]
        top = out[x]
        bottom = out[m - 1 - x]
        for y in range(n):
            a = row[y]
            top[y] = a
            top[m - 1 - y] = a
            bottom[y] = a
            bottom[m - 1 - y] = a


@nb.njit(**_JIT)
def fold_2d(u, out):
    """``out`` (``n x n``) = the sum of ``u`` (``2n x 2n``) over the four reflections."""
    n = out.shape[0]
    m = 2 * n
    for x in range(n):
        top = u[x]
        bottom = u[m - 1 - x]
        o = out[x]
        for y in range(n):
            o[y] = (top[y] + top[m - 1 - y]) + (bottom[y] + bottom[m - 1 - y])


# -- the combined metric's 1D direction on the box, in one call -------------------------
@nb.njit(**_JIT_FAST)
def reflected_direction_1d(p, g, offsets, strides, t0s, starts, lengths, wsq, wdsq, lo, hi,
                           level, a1, a2, a3h3, ones, scale, share_factor, s):
    r"""The box's combined direction :math:`\mathcal E^\top M_{2n}(\mathcal E p)\,
    \mathcal E g` (times ``scale``) with the residue spread, from the box's ``p`` and
    ``g`` (``n`` points) in one call: the reflected basis's diagonals
    (:func:`densflow.kernels.box_diagonals.reflected_diagonals_1d`, the reflection read from
    ``p``), the eigenvalues, the transform pair of the reflection of ``g`` in place in one
    ``2n`` buffer with the projection ``c = lam1.W^T v / lam1.W^T 1`` (``lam1 = lam *
    ones``), the fold, and the even spread of the rounding residue. Returns False when
    the residue needs the weighted spread (``s`` then holds the direction before it)."""
    n = p.shape[0]
    m2 = 2 * n
    h1 = np.empty(m2)
    h2 = np.empty(m2)
    reflected_diagonals_1d(p, offsets, strides, t0s, starts, lengths, wsq, wdsq, h1, h2,
                           a1 > 0.0, a2 > 0.0)
    lam = h1  # the eigenvalues overwrite h1 (read before written, entry by entry)
    eigenvalues(h1, h2, a1, a2, a3h3, lam)
    c = np.empty(m2)
    for x in range(n):
        v = g[x]
        c[x] = v
        c[m2 - 1 - x] = v
    dwt1(c, lo, hi, level, c)
    num = 0.0
    den = 0.0
    for i in range(m2):
        if ones[i] != 0.0:
            w = lam[i] * ones[i]
            num += w * c[i]
            den += w * ones[i]
    cc = num / den if den > 0.0 else 0.0
    for i in range(m2):
        c[i] = lam[i] * (c[i] - cc * ones[i])
    idwt1(c, lo, hi, level, c)
    for x in range(n):
        s[x] = scale * (c[x] + c[m2 - 1 - x])
    return spread_residue(s, share_factor, s)
