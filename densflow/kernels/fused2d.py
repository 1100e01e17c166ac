r"""The line search and new state of a 2D step of Newton in the potential in one compiled
call (:mod:`densflow.potential_fused`): the decrement, the quadratic terms' slopes and
curvatures, the first trial step, Armijo backtracking and the new state of the three
standard terms, in five passes over the grid where the general path (the energy's line,
the line search, the line's states and their sum) makes about twice as many; at 512²
the passes, not the arithmetic, are the cost.
"""

import numba as nb
import numpy as np

from .energy import _kl_trial, _stays_positive
from .newton import boundary_ratio
from .stencils import laplacian_2d

__all__ = ["potential_line_2d", "APPLIED", "NO_STEP", "NOT_FUSED"]

_JIT = dict(cache=True, nogil=True, error_model="numpy")
_SUMS = dict(_JIT, fastmath={"reassoc"})

#: :func:`potential_line_2d`'s outcomes: a step taken; no trial step accepted (the loop
#: tries the metric's step); no descent (the caller takes the general path).
APPLIED, NO_STEP, NOT_FUSED = 0, 1, 2


@nb.njit(**_SUMS)
def _dots(s, g, u1, hs, u3, a_s):
    """``(s.g, u1.s, s.hs, u3.s, s.a_s)`` in one pass (reassociated)."""
    t0 = t1 = t2 = t3 = t4 = 0.0
    for i in range(s.shape[0]):
        si = s[i]
        t0 += si * g[i]
        t1 += u1[i] * si
        t2 += si * hs[i]
        t3 += u3[i] * si
        t4 += si * a_s[i]
    return t0, t1, t2, t3, t4


@nb.njit(**_SUMS)
def _state(p, s, eta, q, w, u1, hs, u3, a_s, mu3, lrn, a1, a2, a3, u1n, u3n, gkn, grad,
           kl_point):
    """The new state at ``q = p - eta s`` in one pass (``q`` and ``lrn`` already hold
    the accepted trial's point and log ratio when ``kl_point``); returns the terms'
    values ``(v1, v2, v3)`` (unweighted)."""
    v1 = v2 = v3 = 0.0
    for i in range(p.shape[0]):
        if kl_point:
            qi = q[i]
        else:
            qi = p[i] - eta * s[i]
            q[i] = qi
        x = u1[i] - eta * hs[i]
        u1n[i] = x
        v1 += (qi - w[i]) * x
        gi = a1 * x
        if a2 > 0.0:
            lr = lrn[i]
            v2 += qi * lr
            gkn[i] = lr + 1.0
            gi += a2 * (lr + 1.0)
        if a3 > 0.0:
            y = u3[i] - eta * a_s[i]
            u3n[i] = y
            v3 += (qi - mu3[i]) * y
            gi += a3 * y
        grad[i] = gi
    return 0.5 * v1, v2, 0.5 * v3


@nb.njit(**_JIT)
def potential_line_2d(p, g, s, hs, u1, u3, log_ratio, w, mu2, mu3, a1, a2, a3, n, eta0,
                      boundary, check_sign, shrink, c1, min_step, q, a_s, u1n, u3n, lrn,
                      gkn, grad):
    r"""The step along the Newton direction ``s`` (``hs`` :math:`= L_w^+ s`, from the
    potential step) from ``p`` with gradient ``g`` (flat arrays of an ``n x n`` grid;
    the :math:`H^{-1}` part ``u1`` :math:`= L_w^+(p - w)`, the Dirichlet part ``u3``
    :math:`= A(p - \mu_3)`, the KL part's ``log_ratio``; weights ``a1, a2, a3``, a
    zero weight leaves its term out).

    The decrement :math:`s\cdot g`; the first trial ``eta0``, with KL at most
    ``boundary`` times the largest step keeping :math:`p - \eta s > 0`; Armijo
    backtracking (shrink ``shrink``, constant ``c1``, down to ``min_step``) with the
    quadratic terms exact along the line (``check_sign`` without KL: a trial leaving
    the positive orthant is refused); at the accepted :math:`q = p - \eta s`: ``u1n``
    :math:`= u_1 - \eta\,hs`, ``u3n`` :math:`= u_3 - \eta A s` (``a_s`` :math:`= A s`),
    ``lrn``, ``gkn`` the KL part's log ratio (kept from the accepted trial) and
    gradient, ``grad`` the weighted sum.

    Returns ``(outcome, slope, eta, v1, v2, v3)``: :data:`APPLIED`, :data:`NO_STEP` or
    :data:`NOT_FUSED`, the decrement and the terms' values at ``q`` (unweighted).
    """
    if a3 > 0.0:
        laplacian_2d(s.reshape((n, n)), n, a_s.reshape((n, n)))
    slope, q1, c1_, q3, c3 = _dots(s, g, u1, hs, u3 if a3 > 0.0 else s, a_s if a3 > 0.0 else s)
    if not (slope > 0.0 and slope < np.inf):
        return NOT_FUSED, slope, np.nan, 0.0, 0.0, 0.0
    if not a3 > 0.0:
        q3 = c3 = 0.0
    q_slope = a1 * q1 + a3 * q3
    q_curvature = a1 * c1_ + a3 * c3
    eta = eta0
    if a2 > 0.0:
        ratio = boundary_ratio(p, s)
        if ratio < np.inf:
            eta = min(eta0, boundary * ratio)
    while eta >= min_step:
        quadratic = -eta * q_slope + 0.5 * eta * eta * q_curvature
        if a2 > 0.0:
            delta = a2 * _kl_trial(p, s, eta, mu2, log_ratio, q, lrn, True) + quadratic
        elif check_sign and not _stays_positive(p, s, eta):
            delta = np.inf
        else:
            delta = quadratic
        if delta <= -c1 * eta * slope:
            v1, v2, v3 = _state(p, s, eta, q, w, u1, hs, u3, a_s, mu3, lrn, a1, a2, a3, u1n,
                                u3n, gkn, grad, a2 > 0.0)
            return APPLIED, slope, eta, v1, v2, v3
        eta *= shrink
    return NO_STEP, slope, np.nan, 0.0, 0.0, 0.0
