r"""Newton in the potential, 1D with a direct solve: a whole step in one compiled call.

At n = 512 a step's arithmetic (the direct solve, a few stencils, the backtracking's
trials) is 16 µs (saddle-point form) to 50 µs (band), and the general path —
:meth:`PotentialNewtonStep.direction
<densflow.potential_newton.PotentialNewtonStep.direction>`, the loop's decrement, the
energy's line, the line search, the new state — spent about 40 µs in Python calls.
:func:`fused_step` gives the loop (:mod:`densflow.optim.loop`, ``Bound.fused_step``)
the same step from :func:`densflow.kernels.fused1d.potential_step_1d`: the same
direction, first trial, Armijo rule and state update (rounding aside: its sums run in
another order), the same inner counts (one Hessian formed), and the loop keeps
everything else — stopping rules, histories, recording, snapshots, callbacks, failure
reports. Whatever the kernel does not cover goes the general way, decided from the
state alone (so a resumed run repeats it): revival of nearly empty cells, a failed
pivot, a rounding residue that needs the weighted spread, no descent; when no trial
step is accepted the loop takes the metric's fallback step as usual.

In 2D the direction stays the step's own (its PCG, :meth:`PotentialNewtonStep.direction
<densflow.potential_newton.PotentialNewtonStep.direction>`), and the rest of the step —
decrement, first trial, Armijo backtracking, the new state — is one compiled call
(:func:`densflow.kernels.fused2d.potential_line_2d`): five passes over the grid where
the general path made about twice as many (256² 14.6 → 12.6 ms a run, 512² 58.1 →
54.6 ms, with glibc's memory handling pinned so that page faults do not blur the
difference: ``benchmarks/solve_costs.py --fused --malloc pinned``), the accepted
trial's point and log ratio kept for the KL state.

In 1D it applies to the direct solves (``PotentialNewton(preconditioner="direct")``, the
default in 1D up to :data:`densflow.potential_newton.DIRECT_MAX_N` points, in either
``direct_form``, and ``"saddle"``, the default above that) on an energy
of one :class:`~densflow.energies.HMinus1`, at most one :class:`~densflow.energies.KL`
and at most one :class:`~densflow.energies.Dirichlet` term, with the Armijo line search
and ``damping_tries = 0`` (the default).
"""

import numpy as np

from .fused_terms import POTENTIAL_KINDS, new_state, one_term_each
from .kernels import fused1d as FK
from .kernels import fused2d as F2
from .metrics.massfix import RESIDUE_SHARE
from .optim.linesearch import Armijo
from .potential_newton import PotentialNewtonStep
from .optim.result import INNER_HISTORIES

__all__ = ["fused_step"]


#: The saddle-point workspace's arrays where the band form runs (unused, empty).
_NO_SADDLE = (np.empty((0, 3)), np.empty((0, 4)), np.empty((0, 2)))


def _terms(energy):
    """:func:`~densflow.fused_terms.one_term_each` of the HMinus1, KL and Dirichlet kinds,
    or ``None`` without an HMinus1 term."""
    terms = one_term_each(energy, POTENTIAL_KINDS)
    return terms if terms is not None and terms[0][0] is not None else None


def fused_step(step, energy, line_search, positive=True):
    """``fused(state, gap)`` for the loop, or ``None`` where it does not apply (module
    docstring). ``fused`` returns ``None`` (take the general path for this step) or
    ``(s, slope, eta, state)``, ``eta = None`` when no trial step was accepted."""
    if (type(step) is not PotentialNewtonStep  # (a subclass may change the step)
            or type(line_search) is not Armijo):
        return None
    terms = _terms(energy)
    if terms is None:
        return None
    if step.dim == 2:
        return _fused_line_2d(step, energy, line_search, positive, terms)
    if step.kind not in ("direct", "saddle") or step.settings.damping_tries != 0:
        return None
    (j1, a1, _), (j2, a2, kl), (j3, a3, dirichlet) = terms
    w, n = step.w, step.n
    zeros = np.zeros(w.shape)
    mu2 = kl.mu if kl is not None else w
    mu3 = dirichlet.mu if dirichlet is not None else w
    check_sign = bool(positive and not energy.positive_domain)
    search = (float(line_search.eta0), float(line_search.shrink), float(line_search.c1),
              float(line_search.min_step))
    boundary = float(step.settings.boundary)
    revive = float(step.settings.revive_below)
    work = step.saddle_work if step.saddle else None
    saddle_arrays = (work.sinv, work.border, work.y) if work is not None else _NO_SADDLE
    count = len(energy.active_terms)

    def fused(state, gap):
        p = state.p
        if step.has_kl and p.min() * p.size < revive:
            return None  # the metric's revival step: the general path
        parts = state.parts
        u1 = parts[j1].gradient
        u3 = parts[j3].gradient if j3 is not None else zeros
        log_ratio = parts[j2].parts if j2 is not None else zeros
        s, hs, q, u1n, u3n, lrn, gkn, grad = np.empty((8, n))  # (one allocation)
        outcome, slope, eta, v1, v2, v3, _ = FK.potential_step_1d(
            p, state.gradient, u1, u3, log_ratio, w, mu2, mu3, a1, a2, a3, n, search[0],
            boundary, check_sign, search[1], search[2], search[3], RESIDUE_SHARE,
            s, hs, q, u1n, u3n, lrn, gkn, grad, step.saddle, *saddle_arrays)
        if outcome == FK.NOT_FUSED:
            return None
        step.stats = dict.fromkeys(INNER_HISTORIES, 0)
        step.stats["hessian_products"] = 1  # the system the direct solve factors
        step.newton_direction, step.hint = True, None
        if outcome == FK.NO_STEP:
            return s, float(slope), None, None
        return s, float(slope), float(eta), new_state(
            q, grad, count, terms, (v1, v2, v3), ((u1n,), (gkn, lrn), (u3n,)))

    return fused


def _fused_line_2d(step, energy, line_search, positive, terms):
    """``fused(state, gap)`` in 2D: the step's own direction (its PCG), then the line
    search and the new state in one compiled call
    (:func:`densflow.kernels.fused2d.potential_line_2d`)."""
    (j1, a1, _), (j2, a2, kl), (j3, a3, dirichlet) = terms
    w, n = step.w.reshape(-1), step.n
    zeros = np.zeros(w.shape)
    mu2 = kl.mu.reshape(-1) if kl is not None else w
    mu3 = dirichlet.mu.reshape(-1) if dirichlet is not None else w
    check_sign = bool(positive and not energy.positive_domain)
    search = (float(line_search.eta0), float(step.settings.boundary), check_sign,
              float(line_search.shrink), float(line_search.c1), float(line_search.min_step))
    revive = float(step.settings.revive_below)
    count = len(energy.active_terms)
    shape = (n, n)

    def flat(a):
        return a.reshape(-1)

    def fused(state, gap):
        p = state.p
        if step.has_kl and p.min() * p.size < revive:
            return None  # the metric's revival step: the general path
        s = step.direction(p, state.gradient, gap)
        parts = state.parts
        u3 = flat(parts[j3].gradient) if j3 is not None else zeros
        log_ratio = flat(parts[j2].parts) if j2 is not None else zeros
        # (separate arrays: one block of seven faulted its pages anew every step, 416
        # faults a run at 128² against none)
        q, a_s, u1n, u3n, lrn, gkn, grad = (np.empty(shape) for _ in range(7))
        outcome, slope, eta, v1, v2, v3 = F2.potential_line_2d(
            flat(p), flat(state.gradient), flat(s), flat(step.hint[1]),
            flat(parts[j1].gradient), u3, log_ratio, w, mu2, mu3, a1, a2, a3, n, *search,
            flat(q), flat(a_s), flat(u1n), flat(u3n), flat(lrn), flat(gkn), flat(grad))
        if outcome == F2.NOT_FUSED:
            return None  # no descent: the general path (the same direction again)
        if outcome == F2.NO_STEP:
            return s, float(slope), None, None
        return s, float(slope), float(eta), new_state(
            q, grad, count, terms, (v1, v2, v3), ((u1n,), (gkn, lrn), (u3n,)))

    return fused
