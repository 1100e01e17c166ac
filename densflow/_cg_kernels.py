"""numba kernels fusing the vector work of the 2D weighted-Laplacian CG
(:class:`densflow.operators.WeightedLaplacianSolver`): per iteration one call before
and one after the FFT pair of the preconditioner, instead of a dozen numpy calls."""

import numba as nb

from ._kernels import weighted_laplacian_2d

_JIT = dict(cache=True, nogil=True)


@nb.njit(**_JIT)
def cg_update(x, res, d, ld, mu, n, rz, scale, t):
    """``ld = L_mu d``; ``x += a d``, ``res -= a ld`` with ``a = rz / d.ld``; ``t = scale * res``.
    Returns ``(|res|^2, d.ld)``."""
    weighted_laplacian_2d(d, mu, n, ld)
    curvature = 0.0
    for i in range(n):
        for j in range(n):
            curvature += d[i, j] * ld[i, j]
    alpha = rz / curvature
    rr = 0.0
    for i in range(n):
        for j in range(n):
            x[i, j] += alpha * d[i, j]
            r = res[i, j] - alpha * ld[i, j]
            res[i, j] = r
            rr += r * r
            t[i, j] = scale[i, j] * r
    return rr, curvature


@nb.njit(**_JIT)
def cg_direction(t, scale, res, d, rz, first):
    """``z = scale * t - mean``; ``d = z + (res.z / rz) d`` (``d = z`` when ``first``).
    Returns ``res.z``."""
    n = t.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            t[i, j] *= scale[i, j]
            total += t[i, j]
    mean = total / (n * n)
    rz_new = 0.0
    for i in range(n):
        for j in range(n):
            t[i, j] -= mean
            rz_new += res[i, j] * t[i, j]
    if first:  # d may hold anything (0 * nan is nan)
        for i in range(n):
            for j in range(n):
                d[i, j] = t[i, j]
        return rz_new
    beta = rz_new / rz
    for i in range(n):
        for j in range(n):
            d[i, j] = t[i, j] + beta * d[i, j]
    return rz_new
