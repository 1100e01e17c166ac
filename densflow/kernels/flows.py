"""numba kernels of the time-accurate flows (:mod:`densflow.flows`): the weighted
Laplacian with one mobility per edge direction (the centred mobility of the Wasserstein
step differs between the two edges that leave a cell in 2D)."""

import numba as nb

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
