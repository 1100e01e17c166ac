"""numba kernel of Newton's inner conjugate gradients in 1D with the combined metric.

One compiled call runs the whole preconditioned CG of :meth:`densflow.newton.NewtonStep`
(same arithmetic as its Python loop): Hessian products
``a1 L_mu^+ v + (a2 + nu) v / p + a3 A v`` by the 1D kernels, the preconditioner
``W diag(lam) (W^T v - c W^T 1)`` by the combined-metric kernel, and the vector updates, without a
Python round trip per iteration (at n = 512 those round trips are ~90 % of the time).
"""

import numba as nb
import numpy as np

from .stencils import dot_serial, laplacian_1d, weighted_laplacian_pinv_1d
from .metric import combined_1d

_JIT = dict(cache=True, nogil=True, error_model="numpy")  # no zero-division branch


@nb.njit(**_JIT)
def _precondition(r, lo, hi, level, lam, ones, lam1, den, blend, bd, bf, bw, bden,
                  work, out):
    if not blend:
        combined_1d(r, lo, hi, level, lam, ones, lam1, den, out)
        return
    # the safeguard's blend d (M (d r) - c w) + f (r - c), M unprojected (den = 0)
    n = r.shape[0]
    for i in range(n):
        work[i] = bd[i] * r[i]
    combined_1d(work, lo, hi, level, lam, ones, lam1, 0.0, out)
    c = (dot_serial(bd, out) + dot_serial(bf, r)) / bden
    for i in range(n):
        out[i] = bd[i] * (out[i] - c * bw[i]) + bf[i] * (r[i] - c)


@nb.njit(**_JIT)
def newton_cg_1d(g, p, a1, inv_mu, a2, a3, nu, lo, hi, level, lam, ones, lam1, den,
                 blend, bd, bf, bw, bden, forcing_max, forcing_floor, max_iter, x):
    """Solve ``H x = g - mean(g)`` on the mass-zero subspace by PCG into ``x``.

    Stops when ``r.z <= eta^2 r0.z0`` with ``eta = min(forcing_max, max(sqrt(r0.z0),
    forcing_floor))``. Returns ``(iterations, r0.z0)``.
    """
    n = g.shape[0]
    mean = 0.0
    for i in range(n):
        mean += g[i]
    mean /= n
    r = np.empty(n)
    for i in range(n):
        r[i] = g[i] - mean
        x[i] = 0.0
    pwork = np.empty(n)
    z = np.empty(n)
    _precondition(r, lo, hi, level, lam, ones, lam1, den, blend, bd, bf, bw, bden,
                  pwork, z)
    rz = dot_serial(r, z)
    if not rz > 0.0:
        return 0, rz
    eta = min(forcing_max, max(np.sqrt(rz), forcing_floor))
    stop = eta * eta * rz
    d = z.copy()
    hd = np.empty(n)
    work = np.empty(n)
    its = 0
    diag = a2 + nu
    for _ in range(max_iter):
        its += 1
        for i in range(n):
            hd[i] = 0.0
        if a1 > 0.0:
            weighted_laplacian_pinv_1d(d, inv_mu, n, work)
            for i in range(n):
                hd[i] += a1 * work[i]
        if a3 > 0.0:
            laplacian_1d(d, n, work)
            for i in range(n):
                hd[i] += a3 * work[i]
        if diag > 0.0:
            for i in range(n):
                hd[i] += diag * d[i] / max(p[i], 1e-300)
        hmean = 0.0
        for i in range(n):
            hmean += hd[i]
        hmean /= n
        curvature = 0.0
        for i in range(n):
            hd[i] -= hmean
            curvature += d[i] * hd[i]
        if not curvature > 0.0:
            break
        alpha = rz / curvature
        for i in range(n):
            x[i] += alpha * d[i]
            r[i] -= alpha * hd[i]
        _precondition(r, lo, hi, level, lam, ones, lam1, den, blend, bd, bf, bw, bden,
                  pwork, z)
        rz_new = dot_serial(r, z)
        if rz_new <= stop:
            break
        beta = rz_new / rz
        for i in range(n):
            d[i] = z[i] + beta * d[i]
        rz = rz_new
    return its, rz


@nb.njit(**_JIT)
def boundary_ratio(p, s):
    """``min(p_i / s_i)`` over ``s_i > 0`` (``inf`` when no ``s_i > 0``): the largest
    step ``t`` keeping ``p - t s >= 0``, in one pass."""
    best = np.inf
    for i in range(p.shape[0]):
        if s[i] > 0.0:
            r = p[i] / s[i]
            if r < best:
                best = r
    return best


@nb.njit(**_JIT)
def step_ratio(p, s):
    """``max |s_i| / p_i``: the largest relative change of a cell along ``s``."""
    big = 0.0
    for i in range(p.shape[0]):
        r = abs(s[i]) / p[i]
        if r > big:
            big = r
    return big
