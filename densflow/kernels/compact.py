r"""numba kernels of the compact Newton solve in the density for energies of KL and
Dirichlet terms (no :math:`H^{-1}` term) on a periodic grid
(:meth:`densflow.newton.NewtonStep`, ``preconditioner="compact"``).

The Hessian is :math:`H = \operatorname{diag}(c) + a_3 A`, :math:`c = (\alpha_2 + \nu)/p`,
a stencil; the Newton system is :math:`H x = g - \kappa\mathbf 1` with
:math:`\sum_s x_s = 0` (the mass-zero subspace).

* 2D: conjugate gradients preconditioned by the Jacobi diagonal in its mass-preserving
  form :math:`z = D^{-1}(r - \kappa\mathbf 1)`, :math:`\kappa = \sum_s (r_s/D_s) /
  \sum_s (1/D_s)`, the whole loop in one call.
* 1D: a direct solve: :math:`H` is a cyclic tridiagonal, solved by the Thomas
  algorithm with a Sherman–Morrison correction for the corners for the right-hand sides
  :math:`g` and :math:`\mathbf 1`; :math:`x = H^{-1}g - \kappa H^{-1}\mathbf 1`,
  :math:`\kappa = \sum H^{-1}g / \sum H^{-1}\mathbf 1`.
"""

import numba as nb
import numpy as np

from .stencils import laplacian_1d, laplacian_2d

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_JIT)
def hessian_product(d, c, a3, n, dim, work, out):
    """``out = c d + a3 A d - mean`` (flat arrays, ``dim`` 1 or 2); returns ``d.out``: the
    compact Hessian product in one plain pass (the CG below sweeps rows instead)."""
    if a3 > 0.0:
        if dim == 1:
            laplacian_1d(d, n, work)
        else:
            laplacian_2d(d.reshape((n, n)), n, work.reshape((n, n)))
    total = 0.0
    m = d.shape[0]
    for i in range(m):
        h = c[i] * d[i]
        if a3 > 0.0:
            h += a3 * work[i]
        out[i] = h
        total += h
    mean = total / m
    curvature = 0.0
    for i in range(m):
        out[i] -= mean
        curvature += d[i] * out[i]
    return curvature


_SUMS = dict(_JIT, fastmath={"reassoc"})


@nb.njit(**_JIT)
def _product_row(di, dm, dp, ci, a3, n2, hi, n):
    """One row of ``h = c d + a3 A d`` (rows ``i-1, i, i+1`` of ``d``), the inner loop
    without wrap-around branches (vectorised)."""
    if a3 > 0.0:
        for j in range(1, n - 1):
            hi[j] = ci[j] * di[j] + a3 * (n2 * (4.0 * di[j] - dm[j] - dp[j] - di[j - 1]
                                                 - di[j + 1]))
        for j in (0, n - 1):
            jm = j - 1 if j > 0 else n - 1
            jp = j + 1 if j < n - 1 else 0
            hi[j] = ci[j] * di[j] + a3 * (n2 * (4.0 * di[j] - dm[j] - dp[j] - di[jm] - di[jp]))
    else:
        for j in range(n):
            hi[j] = ci[j] * di[j]


@nb.njit(**_SUMS)
def _sums(d, h):
    """``(sum h, sum d h, sum d)`` (flat; reassociated: vectorised)."""
    th = 0.0
    tdh = 0.0
    td = 0.0
    for i in range(d.shape[0]):
        th += h[i]
        tdh += d[i] * h[i]
        td += d[i]
    return th, tdh, td


@nb.njit(**_JIT)
def _update(x, r, d, h, alpha, mean):
    """``h -= mean``; ``x += alpha d``; ``r -= alpha h`` (flat)."""
    for i in range(x.shape[0]):
        hi = h[i] - mean
        x[i] += alpha * d[i]
        r[i] -= alpha * hi


@nb.njit(**_SUMS)
def _dot(a, b):
    """``a.b`` (flat; reassociated)."""
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@nb.njit(**_SUMS)
def _sum(a):
    """``sum a`` (flat; reassociated)."""
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i]
    return total


@nb.njit(**_SUMS)
def _jacobi_dot(r, inv_diag, kappa):
    """``r.z``, ``z = D^-1 (r - kappa)`` (flat; reassociated)."""
    total = 0.0
    for i in range(r.shape[0]):
        total += r[i] * (inv_diag[i] * (r[i] - kappa))
    return total


@nb.njit(**_JIT)
def _jacobi_direction(r, inv_diag, kappa, beta, d):
    """``d = D^-1 (r - kappa) + beta d`` (flat)."""
    for i in range(r.shape[0]):
        d[i] = inv_diag[i] * (r[i] - kappa) + beta * d[i]


@nb.njit(**_JIT)
def jacobi_cg(g, c, a3, n, forcing_max, forcing_floor, max_iter, x):
    """Solve ``H x = g - mean(g)`` on an ``n x n`` grid's mass-zero subspace by
    Jacobi-preconditioned CG into ``x`` (flat arrays). Stops when ``r.z <= eta^2 r0.z0``,
    ``eta = min(forcing_max, max(sqrt(r0.z0), forcing_floor))`` (the forcing of
    :class:`densflow.newton.Newton`). Returns ``(iterations, r.z)``. Each iteration is
    four vectorised passes: the product with its sums, the update of ``x`` and ``r``,
    ``r.z``, the direction (the sums reassociated)."""
    m = g.shape[0]
    n2 = float(n) * float(n)
    mean = _sum(g) / m
    r = np.empty(m)
    inv_diag = np.empty(m)
    lap = 4.0 * n2 * a3  # the diagonal of a3 A
    for i in range(m):
        r[i] = g[i] - mean
        x[i] = 0.0
        inv_diag[i] = 1.0 / (c[i] + lap)
    den = _sum(inv_diag)
    kappa = _dot(r, inv_diag) / den
    rz = _jacobi_dot(r, inv_diag, kappa)
    if not rz > 0.0:
        return 0, rz
    eta = min(forcing_max, max(np.sqrt(rz), forcing_floor))
    stop = eta * eta * rz
    d = np.zeros(m)
    _jacobi_direction(r, inv_diag, kappa, 0.0, d)
    h = np.empty(m)
    d2, h2, c2 = d.reshape((n, n)), h.reshape((n, n)), c.reshape((n, n))
    its = 0
    for _ in range(max_iter):
        its += 1
        for i in range(n):
            im = i - 1 if i > 0 else n - 1
            ip = i + 1 if i < n - 1 else 0
            _product_row(d2[i], d2[im], d2[ip], c2[i], a3, n2, h2[i], n)
        th, tdh, td = _sums(d, h)
        mean = th / m
        curvature = tdh - mean * td
        if not curvature > 0.0:
            break
        _update(x, r, d, h, rz / curvature, mean)
        kappa = _dot(r, inv_diag) / den
        rz_new = _jacobi_dot(r, inv_diag, kappa)
        if rz_new <= stop:
            break
        _jacobi_direction(r, inv_diag, kappa, rz_new / rz, d)
        rz = rz_new
    return its, rz


@nb.njit(**_JIT)
def _thomas(lower, diag, upper_prod, rhs):
    """Solve in place the tridiagonal system with constant off-diagonal ``lower`` and
    main diagonal ``diag`` for every column of ``rhs``; ``upper_prod`` is scratch."""
    n, k = rhs.shape
    w = upper_prod
    b = diag[0]
    for col in range(k):
        rhs[0, col] /= b
    w[0] = 0.0
    for i in range(1, n):
        w[i] = lower / b
        b = diag[i] - lower * w[i]
        for col in range(k):
            rhs[i, col] = (rhs[i, col] - lower * rhs[i - 1, col]) / b
    for i in range(n - 2, -1, -1):
        for col in range(k):
            rhs[i, col] -= w[i + 1] * rhs[i + 1, col]


@nb.njit(**_JIT)
def tridiagonal_newton_1d(g, c, a3, n, x):
    """Solve ``H x = g - kappa 1``, ``sum x = 0``, ``H = diag(c) + a3 A`` on a periodic
    line (``c > 0``) exactly into ``x``: Thomas plus Sherman–Morrison for the corners
    (the cyclic tridiagonal of Numerical Recipes' ``cyclic``, with ``gamma = -b_0``)."""
    e = -a3 * float(n) * float(n)  # off-diagonals and corners
    diag = np.empty(n)
    for i in range(n):
        diag[i] = c[i] - 2.0 * e
    rhs = np.zeros((n, 3))  # g, 1 and the Sherman-Morrison column u
    for i in range(n):
        rhs[i, 0] = g[i]
        rhs[i, 1] = 1.0
    if e != 0.0:
        gamma = -diag[0]
        rhs[0, 2] = gamma
        rhs[n - 1, 2] = e
        diag[0] -= gamma
        diag[n - 1] -= e * e / gamma
    scratch = np.empty(n)
    _thomas(e, diag, scratch, rhs)
    if e != 0.0:
        den = 1.0 + rhs[0, 2] + e * rhs[n - 1, 2] / gamma
        for col in range(2):
            fact = (rhs[0, col] + e * rhs[n - 1, col] / gamma) / den
            for i in range(n):
                rhs[i, col] -= fact * rhs[i, 2]
    s0 = 0.0
    s1 = 0.0
    for i in range(n):
        s0 += rhs[i, 0]
        s1 += rhs[i, 1]
    kappa = s0 / s1
    for i in range(n):
        x[i] = rhs[i, 0] - kappa * rhs[i, 1]


@nb.njit(**_SUMS)
def relative_value(q, log_q, a2, m, a3, b, n, dim):
    """``a2 sum q (log q - m) + a3/2 q.A q - q.b`` (flat arrays, ``dim`` 1 or 2, ``q > 0``
    with its logarithm ``log_q`` given: numpy's vectorised logarithm is about four times
    faster than a scalar one in this loop): the energy of KL and Dirichlet terms up to a
    constant, with ``m`` the KL weights' mean of ``log mu`` and ``b = A sum_j a_j mu_j``
    over the Dirichlet terms. For comparing two candidate points (its sums
    reassociated, the inner loops without wrap-around branches: vectorised)."""
    total = 0.0
    for i in range(q.shape[0]):
        total += q[i] * (a2 * (log_q[i] - m[i]) - b[i])
    if not a3 > 0.0:
        return total
    quad = 0.0
    if dim == 1:
        for i in range(n - 1):
            d = q[i + 1] - q[i]
            quad += d * d
        d = q[0] - q[n - 1]
        quad += d * d
    else:
        g = q.reshape((n, n))
        for r in range(n):
            gr, gp = g[r], g[r + 1 if r < n - 1 else 0]
            for c in range(n - 1):
                d1 = gp[c] - gr[c]
                d2 = gr[c + 1] - gr[c]
                quad += d1 * d1 + d2 * d2
            d1 = gp[n - 1] - gr[n - 1]
            d2 = gr[0] - gr[n - 1]
            quad += d1 * d1 + d2 * d2
    return total + 0.5 * a3 * float(n) * float(n) * quad


@nb.njit(**_JIT)
def retraction_exponent(p, s, out):
    """``out = clip(-s/p, -700, 50)`` (flat arrays; the exponent of
    :func:`densflow.newton_compact.fisher_rao_retraction`)."""
    for i in range(p.shape[0]):
        x = -(s[i] / p[i])
        out[i] = min(max(x, -700.0), 50.0)


@nb.njit(**_JIT)
def scale_and_normalise(e, p):
    """``e = p e / sum(p e)`` in place (flat arrays)."""
    total = 0.0
    for i in range(p.shape[0]):
        e[i] *= p[i]
        total += e[i]
    for i in range(p.shape[0]):
        e[i] /= total
