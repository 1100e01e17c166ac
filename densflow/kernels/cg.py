"""numba kernels fusing the vector work of the 2D weighted-Laplacian CG
(:class:`densflow.core.operators.WeightedLaplacianSolver`): per iteration one call before
and one after the FFT pair of the preconditioner, instead of a dozen numpy calls.

The preconditioner's input ``t = scale * res / rho`` is written in the dtype of the
array ``t`` passed in (float32 for the mixed-precision solve, float64 otherwise);
``rho`` (the previous residual norm) keeps it away from float32's underflow. Every
other quantity is float64."""

import numba as nb

from .stencils import weighted_laplacian_2d

_JIT = dict(cache=True, nogil=True)


@nb.njit(**_JIT)
def cg_update(x, res, d, ld, mu, n, rz, scale, t, inv_rho):
    """``ld = L_mu d``; ``x += a d``, ``res -= a ld`` with ``a = rz / d.ld``;
    ``t = scale * res * inv_rho``. Returns ``(|res|^2, d.ld)``."""
    curvature = weighted_laplacian_2d(d, mu, n, ld)
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
def cg_direction(t, scale, res, d, rz, first, rho):
    """``z = rho * (scale * t - mean)``; ``d = z + (res.z / rz) d`` (``d = z`` when
    ``first``). Returns ``res.z``."""
    n = t.shape[0]
    total = 0.0
    rz_raw = 0.0
    res_sum = 0.0
    for i in range(n):
        for j in range(n):
            z = scale[i, j] * t[i, j]
            total += z
            rz_raw += res[i, j] * z
            res_sum += res[i, j]
    mean = total / (n * n)
    rz_new = rho * (rz_raw - mean * res_sum)
    beta = 0.0 if first else rz_new / rz
    for i in range(n):
        for j in range(n):
            z = rho * (scale[i, j] * t[i, j] - mean)
            if first:  # d may hold anything (0 * nan is nan)
                d[i, j] = z
            else:
                d[i, j] = z + beta * d[i, j]
    return rz_new
