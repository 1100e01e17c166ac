"""numba kernels of the time-accurate flows (:mod:`densflow.flows`): the weighted
Laplacian with one mobility per edge direction (the centred mobility of the Wasserstein
step differs between the two edges that leave a cell in 2D)."""

import numba as nb

from .multigrid import point_2d

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_JIT)
def edge_laplacian_2d(x, m0, m1, n, out):
    """``out = D_1^T (m0 * D_1 x) + D_2^T (m1 * D_2 x)`` on an ``n x n`` periodic grid.

    ``m0[i, j]`` is the mobility of the edge ``(i, j)-(i+1, j)``, ``m1[i, j]`` that of
    ``(i, j)-(i, j+1)``."""
    n2 = float(n) * float(n)
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        for j in range(n):
            jm = j - 1 if j > 0 else n - 1
            jp = j + 1 if j < n - 1 else 0
            xc = x[i, j]
            out[i, j] = n2 * (m0[im, j] * (xc - x[im, j]) - m0[i, j] * (x[ip, j] - xc)
                              + m1[i, jm] * (xc - x[i, jm]) - m1[i, j] * (x[i, jp] - xc))


@nb.njit(**_JIT)
def screened_product(d, c, wx, wy, out):
    """``out = A d`` for the unscaled 5-point ``A`` of :mod:`densflow.kernels.multigrid`
    (``c`` the shift, ``wx``/``wy`` the edge weights, zero on a box's walls); returns
    ``d·out``."""
    n0, n1 = d.shape
    acc = 0.0
    for i in range(n0):
        for j in range(n1):
            v = point_2d(d, c, wx, wy, i, j)
            out[i, j] = v
            acc += d[i, j] * v
    return acc


@nb.njit(**_JIT)
def screened_update(y, r, d, bd, alpha, c, s):
    """``y += alpha d``, ``r -= alpha bd``, ``s = r / c`` in one pass."""
    n0, n1 = y.shape
    for i in range(n0):
        for j in range(n1):
            y[i, j] += alpha * d[i, j]
            rk = r[i, j] - alpha * bd[i, j]
            r[i, j] = rk
            s[i, j] = rk / c[i, j]


@nb.njit(**_JIT)
def screened_residual_sq(s, r, c, wx, wy):
    """``‖A s − r‖²`` (with ``s = r/c``: the squared norm of the diffusion part of
    ``A s``, the Newton residual the screened CG leaves)."""
    n0, n1 = s.shape
    acc = 0.0
    for i in range(n0):
        for j in range(n1):
            v = point_2d(s, c, wx, wy, i, j) - r[i, j]
            acc += v * v
    return acc


@nb.njit(**_JIT)
def next_direction(d, z, beta):
    """``d = z + beta d`` in place."""
    n0, n1 = d.shape
    for i in range(n0):
        for j in range(n1):
            d[i, j] = z[i, j] + beta * d[i, j]
