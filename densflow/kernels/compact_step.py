r"""A whole compact Newton step in two compiled calls (:mod:`densflow.compact_fused`):
the energies of one KL and at most one Dirichlet term on a periodic 1D or 2D grid.

* :func:`compact_direction`: the Newton system :math:`(\operatorname{diag}(a_2/p) +
  a_3 A)x = g - \kappa\mathbf 1` solved (1D directly, 2D by Jacobi CG:
  :mod:`densflow.kernels.compact`), the rounding residue spread evenly, and, when the
  step changes some cell by ``retract_below`` of its mass or more, the exponent of its
  Fisher–Rao retraction (the caller takes numpy's vectorised exponential of it).
* :func:`compact_finish`: the retracted end point against the straight one shortened by
  the fraction-to-the-boundary rule (the lower energy wins), the decrement, the first
  trial step, Armijo backtracking with the Dirichlet part exact along the line, and the
  new state of both terms.

At 2D 64² the arithmetic of a step is about 40 µs; the Python calls of the general
path around it cost about twice that.
"""

import numba as nb
import numpy as np

from .compact import jacobi_cg, relative_value, scale_and_normalise, tridiagonal_newton_1d
from .energy import _kl_trial
from .log import BLOCK, log_into
from .metric import spread_residue, spread_weighted
from .stencils import laplacian_1d, laplacian_2d

__all__ = ["compact_direction", "compact_finish", "STRAIGHT", "RETRACT", "APPLIED",
           "NO_STEP", "NOT_FUSED"]

_JIT = dict(cache=True, nogil=True, error_model="numpy")

#: :func:`compact_direction`'s outcomes: the straight step is the direction; the
#: retraction's exponent is ready (compare the two).
STRAIGHT, RETRACT = 0, 1

#: :func:`compact_finish`'s outcomes: a step taken; no trial step accepted (the loop
#: tries the metric's step); the general path must take the step (no descent).
APPLIED, NO_STEP, NOT_FUSED = 0, 1, 2


@nb.njit(**_JIT)
def compact_direction(p, g, a2, a3, n, dim, forcing_max, forcing_floor, max_iter, share,
                      retract, retract_below, x, s, e, inv_p):
    r"""The compact Newton step ``s`` at ``p`` (gradient ``g``; flat arrays, work array
    ``x``; ``inv_p`` :math:`= 1/p` is written for :func:`compact_finish`) and, with
    ``retract`` when :math:`\max_i |s_i|/p_i \ge` ``retract_below``, the exponent ``e``
    :math:`= \operatorname{clip}(-s/p, -700, 50)` of its retraction. Returns
    ``(outcome, iterations)``: :data:`STRAIGHT` or :data:`RETRACT`. The rounding
    residue of ``x`` is spread as :func:`densflow.metrics.mass_fix` spreads it."""
    m = p.shape[0]
    c = np.empty(m)
    for i in range(m):
        inv_p[i] = 1.0 / p[i]
        c[i] = a2 * min(inv_p[i], 1e300)
    if dim == 1:
        tridiagonal_newton_1d(g, c, a3, n, x)
        its = 1
    else:
        its, _ = jacobi_cg(g, c, a3, n, forcing_max, forcing_floor, max_iter, x)
    if not spread_residue(x, share, s):
        spread_weighted(x, share, s)
    if not retract:
        return STRAIGHT, its
    big = 0.0
    for i in range(m):
        big = max(big, abs(s[i]) * inv_p[i])
    if not big >= retract_below:
        return STRAIGHT, its
    for i in range(m):
        e[i] = min(max(-(s[i] * inv_p[i]), -700.0), 50.0)
    return RETRACT, its


@nb.njit(**_JIT)
def _boundary_step(s, inv_p, first, boundary):
    r"""``min(first, boundary t_max)``, :math:`t_{\max} = 1/\max_i (s_i/p_i)` the
    largest step keeping :math:`p - t s > 0` (``first`` when no :math:`s_i > 0`)."""
    big = 0.0
    for i in range(s.shape[0]):
        big = max(big, s[i] * inv_p[i])
    if not big > 0.0:
        return first
    return min(first, boundary / big)


@nb.njit(**_JIT)
def _value(q, log_q, work, kk, a2, m, a3, b, n, dim):
    """:func:`~densflow.kernels.compact.relative_value` at ``q`` (``inf`` unless every
    ``q_i > 0``), the logarithm taken in blocks into ``log_q``."""
    for i in range(q.shape[0]):
        if not q[i] > 0.0:
            return np.inf
    N = q.shape[0]
    for b0 in range(0, N, BLOCK):
        c = min(BLOCK, N - b0)
        log_into(q[b0:b0 + c], log_q[b0:b0 + c], work, kk)
    return relative_value(q, log_q, a2, m, a3, b, n, dim)


@nb.njit(**_JIT)
def compact_finish(p, g, s, e, retracted, inv_p, log_ratio, u3, mu2, mu3, a2, a3, n, dim,
                   m, b, boundary, eta0, shrink, c1, min_step, q, a_s, u3n, lrn, gkn, grad):
    r"""The rest of the step from :func:`compact_direction`'s ``s`` and ``inv_p`` (with
    ``retracted``: ``e`` holds the exponential of the exponent, overwritten by the
    retracted point).

    The retracted point :math:`q_r = p e / \sum p e` replaces ``s`` by :math:`p - q_r`
    when the energy there (the compact value, ``m`` and ``b`` of
    :func:`densflow.newton_compact._value_terms`) is below that at :math:`p - t s`,
    :math:`t = \min(1, \theta\, t_{\max})`. Then the decrement :math:`s\cdot g`, the
    first trial ``eta0`` shortened to ``boundary`` times the largest step keeping
    :math:`p - \eta s > 0`, Armijo backtracking (the KL part ``log_ratio``, the
    Dirichlet part ``u3`` :math:`= A(p - \mu_3)` exact along the line) and, at the
    accepted :math:`q = p - \eta s`: ``u3n`` :math:`= u_3 - \eta A s`, ``lrn``, ``gkn``
    the KL part's log ratio (kept from the accepted trial) and gradient, ``grad`` the
    weighted sum.

    Returns ``(outcome, slope, eta, v2, v3)``: :data:`APPLIED`, :data:`NO_STEP` or
    :data:`NOT_FUSED`, the decrement and the terms' values at ``q`` (unweighted).
    """
    N = p.shape[0]
    if retracted:
        scale_and_normalise(e, p)
        t = _boundary_step(s, inv_p, 1.0, boundary)
        for i in range(N):
            q[i] = p[i] - t * s[i]
        log_q = np.empty(N)
        work = np.empty(BLOCK, dtype=np.int64)
        kk = np.empty(BLOCK)
        if _value(e, log_q, work, kk, a2, m, a3, b, n, dim) < _value(q, log_q, work, kk, a2,
                                                                      m, a3, b, n, dim):
            for i in range(N):
                s[i] = p[i] - e[i]
    slope = 0.0
    for i in range(N):
        slope += s[i] * g[i]
    if not (slope > 0.0 and slope < np.inf):
        return NOT_FUSED, slope, np.nan, 0.0, 0.0
    eta = _boundary_step(s, inv_p, eta0, boundary)
    q_slope = 0.0
    q_curvature = 0.0
    if a3 > 0.0:
        if dim == 1:
            laplacian_1d(s, n, a_s)
        else:
            laplacian_2d(s.reshape((n, n)), n, a_s.reshape((n, n)))
        for i in range(N):
            q_slope += u3[i] * s[i]
            q_curvature += s[i] * a_s[i]
    accepted = False
    while eta >= min_step:  # Armijo, the trial's point and log ratio kept in q and lrn
        quadratic = a3 * (-eta * q_slope + 0.5 * eta * eta * q_curvature)
        delta = a2 * _kl_trial(p, s, eta, mu2, log_ratio, q, lrn, True) + quadratic
        if delta <= -c1 * eta * slope:
            accepted = True
            break
        eta *= shrink
    if not accepted:
        return NO_STEP, slope, np.nan, 0.0, 0.0
    v2 = 0.0
    v3 = 0.0
    for i in range(N):
        v2 += q[i] * lrn[i]
        gkn[i] = lrn[i] + 1.0
        x = a2 * gkn[i]
        if a3 > 0.0:
            y = u3[i] - eta * a_s[i]
            u3n[i] = y
            v3 += (q[i] - mu3[i]) * y
            x += a3 * y
        grad[i] = x
    return APPLIED, slope, eta, v2, 0.5 * v3
