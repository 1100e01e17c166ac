"""numba kernels of the geometric multigrid (:mod:`densflow.core.multigrid`).

Every 2D kernel works on the *unscaled* 5-point operator

.. math::

    (A x)_{ij} = c_{ij} x_{ij} + \\sum_{\\text{edges } e \\ni (i,j)} w_e\\,(x_{ij} - x_{e'})

with ``wx[i, j]`` the weight of the edge ``(i, j)-(i+1, j)`` and ``wy[i, j]`` that of
``(i, j)-(i, j+1)``, indices taken modulo the shape: a no-flux (Neumann) grid is the
periodic one with zero weight on the wrap-around edges, so one set of kernels serves
both boundaries. Only the interpolation needs the boundary (``periodic``): the missing
neighbour of a wall cell is the cell itself (a constant ghost).
"""

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_JIT)
def point_2d(x, c, wx, wy, i, j):
    """``(A x)[i, j]`` (unscaled 5-point operator, see the module docstring; indices
    wrap)."""
    n0, n1 = x.shape
    im = i - 1 if i > 0 else n0 - 1
    ip = i + 1 if i < n0 - 1 else 0
    jm = j - 1 if j > 0 else n1 - 1
    jp = j + 1 if j < n1 - 1 else 0
    xc = x[i, j]
    return (c[i, j] * xc + wx[im, j] * (xc - x[im, j]) + wx[i, j] * (xc - x[ip, j])
            + wy[i, jm] * (xc - x[i, jm]) + wy[i, j] * (xc - x[i, jp]))


@nb.njit(**_JIT)
def operator_2d(x, c, wx, wy, out):
    """``out = A x`` (unscaled 5-point operator, see the module docstring)."""
    n0, n1 = x.shape
    for i in range(n0):
        for j in range(n1):
            out[i, j] = point_2d(x, c, wx, wy, i, j)


@nb.njit(**_JIT)
def diagonal_2d(c, wx, wy, out):
    """``out`` = the diagonal of ``A``."""
    n0, n1 = c.shape
    for i in range(n0):
        im = i - 1 if i > 0 else n0 - 1
        for j in range(n1):
            jm = j - 1 if j > 0 else n1 - 1
            out[i, j] = c[i, j] + wx[im, j] + wx[i, j] + wy[i, jm] + wy[i, j]


@nb.njit(**_JIT)
def _relax_row(x, b, wx, wy, inv_diag, i, colour):
    """Gauss–Seidel on the cells of row ``i`` with ``(i + j) % 2 == colour``."""
    n0, n1 = x.shape
    im = i - 1 if i > 0 else n0 - 1
    ip = i + 1 if i < n0 - 1 else 0
    for j in range((i + colour) % 2, n1, 2):
        jm = j - 1 if j > 0 else n1 - 1
        jp = j + 1 if j < n1 - 1 else 0
        s = (b[i, j] + wx[im, j] * x[im, j] + wx[i, j] * x[ip, j]
             + wy[i, jm] * x[i, jm] + wy[i, j] * x[i, jp])
        x[i, j] = s * inv_diag[i, j]


@nb.njit(**_JIT)
def _residual_row(x, b, c, wx, wy, r, i, colour):
    """``r = b - A x`` on the cells of row ``i`` of ``colour``, 0 on the others."""
    for j in range(x.shape[1]):
        if (i + j) % 2 != colour:
            r[i, j] = 0.0
            continue
        r[i, j] = b[i, j] - point_2d(x, c, wx, wy, i, j)


@nb.njit(**_JIT)
def symmetric_half(x, b, wx, wy, inv_diag, first):
    """Gauss–Seidel on colour ``first`` then on the other colour, in one pass over the
    rows (the second colour one row behind the first; rows 0 and ``n0 - 1`` of the
    second colour, which need the wrap-around row, last): the same result as two
    half-sweeps with half the memory traffic. Needs ``n0 >= 4``."""
    n0 = x.shape[0]
    second = 1 - first
    for i in range(n0):
        _relax_row(x, b, wx, wy, inv_diag, i, first)
        if i >= 2:
            _relax_row(x, b, wx, wy, inv_diag, i - 1, second)
    _relax_row(x, b, wx, wy, inv_diag, n0 - 1, second)
    _relax_row(x, b, wx, wy, inv_diag, 0, second)


@nb.njit(**_JIT)
def presmooth_from_zero(x, b, c, wx, wy, inv_diag, r):
    """Red–black Gauss–Seidel from ``x = 0`` (red: ``x = b/diag``; then black) and the
    residual ``r = b - A x``, which vanishes on the black cells just relaxed — in one
    pass over the rows (each stage a row or two behind the previous). Needs ``n0 >= 4``."""
    n0, n1 = x.shape
    for i in range(n0):
        for j in range(n1):
            x[i, j] = b[i, j] * inv_diag[i, j] if (i + j) % 2 == 0 else 0.0
        if i >= 2:
            _relax_row(x, b, wx, wy, inv_diag, i - 1, 1)
        if i >= 4:
            _residual_row(x, b, c, wx, wy, r, i - 2, 0)
    _relax_row(x, b, wx, wy, inv_diag, n0 - 1, 1)
    _relax_row(x, b, wx, wy, inv_diag, 0, 1)
    _residual_row(x, b, c, wx, wy, r, n0 - 2, 0)
    _residual_row(x, b, c, wx, wy, r, n0 - 1, 0)
    _residual_row(x, b, c, wx, wy, r, 0, 0)
    _residual_row(x, b, c, wx, wy, r, 1, 0)


@nb.njit(**_JIT)
def scale_checked(w, scale):
    """``w *= scale`` in place (``w`` C-contiguous); ``False`` if an entry is negative or
    not finite."""
    ok = True
    flat = w.reshape(w.size)
    for k in range(flat.size):
        v = flat[k] * scale
        if not (v >= 0.0 and v < np.inf):
            ok = False
        flat[k] = v
    return ok


@nb.njit(**_JIT)
def any_positive(c):
    flat = c.reshape(c.size)
    for k in range(flat.size):
        if flat[k] > 0.0:
            return True
    return False


@nb.njit(**_JIT)
def _near(i, nc, periodic):
    """The coarse cell on the near side of fine cell ``i`` (and its own coarse cell)."""
    ic = i // 2
    if i % 2 == 0:
        k = ic - 1
    else:
        k = ic + 1
    if k < 0:
        k = nc - 1 if periodic else 0
    elif k >= nc:
        k = 0 if periodic else nc - 1
    return ic, k


@nb.njit(**_JIT)
def prolong_add(u, x, periodic):
    """``x += P u``: cell-centred bilinear interpolation (weights 9/16, 3/16, 3/16,
    1/16 of the four nearest coarse cells), a constant ghost at a wall."""
    n0, n1 = x.shape
    nc0, nc1 = u.shape
    for i in range(n0):
        ic, ik = _near(i, nc0, periodic)
        for j in range(n1):
            jc, jk = _near(j, nc1, periodic)
            x[i, j] += (0.5625 * u[ic, jc] + 0.1875 * (u[ik, jc] + u[ic, jk])
                        + 0.0625 * u[ik, jk])


@nb.njit(**_JIT)
def restrict(r, out, periodic):
    """``out = Pᵀ r`` (the exact transpose of :func:`prolong_add`)."""
    n0, n1 = r.shape
    out[:, :] = 0.0
    nc0, nc1 = out.shape
    for i in range(n0):
        ic, ik = _near(i, nc0, periodic)
        for j in range(n1):
            jc, jk = _near(j, nc1, periodic)
            v = r[i, j]
            out[ic, jc] += 0.5625 * v
            out[ik, jc] += 0.1875 * v
            out[ic, jk] += 0.1875 * v
            out[ik, jk] += 0.0625 * v


@nb.njit(**_JIT)
def tridiagonal_cyclic(b, c, w, out):
    """Solve the 1D operator ``(A x)_i = c_i x_i + w_{i-1}(x_i - x_{i-1}) + w_i (x_i -
    x_{i+1})`` (indices modulo ``n``; ``w[n-1]`` is the wrap-around edge, zero on a
    no-flux line) exactly: cell 0 is eliminated, leaving a tridiagonal path solved
    twice by the Thomas algorithm, and the scalar Schur complement gives ``x_0``. When
    the Schur complement vanishes (``c ≡ 0``: ``A`` singular, ``b`` mean-free) ``x_0 =
    0``; the caller removes the mean."""
    n = b.shape[0]
    m = n - 1
    # path on cells 1..n-1: diag d, off-diagonal -w
    cp = np.empty(m)
    u = np.empty(m)
    v = np.empty(m)
    for k in range(m):
        i = k + 1
        d = c[i] + w[i - 1] + w[i]
        rhs_u = b[i]
        rhs_v = 0.0
        if i == 1:
            rhs_v += w[0]
        if i == n - 1:
            rhs_v += w[n - 1]
        if k > 0:
            lo = -w[i - 1]
            denom = d - lo * cp[k - 1]
            rhs_u -= lo * u[k - 1]
            rhs_v -= lo * v[k - 1]
        else:
            denom = d
        cp[k] = -w[i] / denom if k < m - 1 else 0.0
        u[k] = rhs_u / denom
        v[k] = rhs_v / denom
    for k in range(m - 2, -1, -1):
        u[k] -= cp[k] * u[k + 1]
        v[k] -= cp[k] * v[k + 1]
    # x_path = u + x0 * v; row 0: d0 x0 - w0 x1 - w_{n-1} x_{n-1} = b0
    d0 = c[0] + w[0] + w[n - 1]
    schur = d0 - w[0] * v[0] - w[n - 1] * v[m - 1]
    rhs = b[0] + w[0] * u[0] + w[n - 1] * u[m - 1]
    x0 = rhs / schur if schur > 1e-13 * d0 else 0.0
    out[0] = x0
    for k in range(m):
        out[k + 1] = u[k] + x0 * v[k]


@nb.njit(**_JIT)
def coarsen_galerkin(c, wx, wy, cc, wxc, wyc):
    """Galerkin coarse coefficients of the piecewise-constant interpolation: sums of the
    four fine shifts and of the two fine edges crossing each coarse edge."""
    nc0, nc1 = cc.shape
    for I in range(nc0):
        for J in range(nc1):
            i, j = 2 * I, 2 * J
            cc[I, J] = c[i, j] + c[i + 1, j] + c[i, j + 1] + c[i + 1, j + 1]
            wxc[I, J] = wx[i + 1, j] + wx[i + 1, j + 1]
            wyc[I, J] = wy[i, j + 1] + wy[i + 1, j + 1]


@nb.njit(**_JIT)
def coarsen_mean(c, wx, wy, cc, wxc, wyc):
    """Re-discretised coarse coefficients for the bilinear :func:`prolong_add`: sums of
    the four fine shifts, a coarse edge the mean of the two fine edges crossing it."""
    nc0, nc1 = cc.shape
    for I in range(nc0):
        for J in range(nc1):
            i, j = 2 * I, 2 * J
            cc[I, J] = c[i, j] + c[i + 1, j] + c[i, j + 1] + c[i + 1, j + 1]
            wxc[I, J] = 0.5 * (wx[i + 1, j] + wx[i + 1, j + 1])
            wyc[I, J] = 0.5 * (wy[i, j + 1] + wy[i + 1, j + 1])


@nb.njit(**_JIT)
def prolong_add_constant(u, x, scale):
    """``x += scale * P u``, ``P`` the piecewise-constant interpolation (2×2 aggregates)."""
    n0, n1 = x.shape
    for i in range(n0):
        for j in range(n1):
            x[i, j] += scale * u[i // 2, j // 2]


@nb.njit(**_JIT)
def restrict_constant(r, out, scale):
    """``out = scale * Pᵀ r`` (sums over the 2×2 aggregates)."""
    n0, n1 = r.shape
    out[:, :] = 0.0
    for i in range(n0):
        for j in range(n1):
            out[i // 2, j // 2] += scale * r[i, j]
