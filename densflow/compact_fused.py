r"""The compact Newton step in the density, KL and Dirichlet terms: a whole step in two
compiled calls.

At 2D 64² a compact step's arithmetic (the Jacobi CG, the retraction, two energy
values, the backtracking's trials, the new state) is about 40 µs, and the general path
— :meth:`NewtonStep.direction <densflow.newton.NewtonStep.direction>`, the loop's
decrement, the energy's line, the line search, the new state — spent about 80 µs more
in Python calls. :func:`fused_compact_step` gives the loop
(:mod:`densflow.optim.loop`, ``Bound.fused_step``) the same step from
:func:`densflow.kernels.compact_step.compact_direction` and
:func:`~densflow.kernels.compact_step.compact_finish` around numpy's exponential: the
same direction, choice between the straight and the retracted step, first trial,
Armijo rule and state update (rounding aside: the logarithms and some sums run in
another order), the same inner counts. The loop keeps everything else. Whatever the
kernels do not cover goes the general way, decided from the state alone (so a resumed
run repeats it): revival of nearly empty cells, no descent; when no trial step is accepted the loop takes the
metric's fallback step as usual.

It applies to :class:`~densflow.newton.Newton` with the compact solve (the default for
these energies) on an energy of one :class:`~densflow.energies.KL` and at most one
:class:`~densflow.energies.Dirichlet` term with the Armijo line search.
"""

import numpy as np

from .fused_terms import COMPACT_KINDS, new_state, one_term_each
from .kernels import compact_step as CS
from .metrics.massfix import RESIDUE_SHARE
from .newton import NewtonStep
from .newton_compact import _value_terms
from . import newton_compact
from .optim.linesearch import Armijo
from .optim.result import INNER_HISTORIES

__all__ = ["fused_compact_step"]


def fused_compact_step(step, energy, line_search):
    """``fused(state, gap)`` for the loop, or ``None`` where it does not apply (module
    docstring). ``fused`` returns ``None`` (take the general path for this step) or
    ``(s, slope, eta, state)``, ``eta = None`` when no trial step was accepted."""
    if (type(step) is not NewtonStep or step.kind != "compact"
            or type(line_search) is not Armijo):
        return None
    terms = one_term_each(energy, COMPACT_KINDS)
    if terms is None or terms[0][0] is None:  # (a KL term is needed)
        return None
    (j2, a2, kl), (j3, a3, dirichlet) = terms
    grid = energy.grid
    n, dim, shape = grid.n, grid.dim, grid.shape
    mu2 = np.ascontiguousarray(kl.mu, dtype=float).reshape(-1)
    mu3 = np.ascontiguousarray(dirichlet.mu if dirichlet is not None else kl.mu,
                               dtype=float).reshape(-1)
    zeros = np.zeros(mu2.shape)
    _, m, _, b, _ = _value_terms(energy)
    settings = step.settings
    revive = step._revive
    search = (float(line_search.eta0), float(line_search.shrink), float(line_search.c1),
              float(line_search.min_step))
    boundary = float(settings.boundary)
    count = len(energy.active_terms)

    def fused(state, gap):
        p = state.p
        if revive and p.min() * p.size < settings.revive_below:
            return None  # the metric's revival step: the general path
        pf = np.ascontiguousarray(p, dtype=float).reshape(-1)
        gf = np.ascontiguousarray(state.gradient, dtype=float).reshape(-1)
        x, s, e, inv_p = np.empty((4, pf.shape[0]))
        outcome, its = CS.compact_direction(
            pf, gf, a2, a3, n, dim, float(settings.forcing_max), step._floor(gap),
            int(settings.cg_max_iter), RESIDUE_SHARE, newton_compact.RETRACT,
            newton_compact.RETRACT_BELOW, x, s, e, inv_p)
        retracted = outcome == CS.RETRACT
        if retracted:
            np.exp(e, out=e)
        parts = state.parts
        log_ratio = parts[j2].parts.reshape(-1)
        u3 = parts[j3].gradient.reshape(-1) if j3 is not None else zeros
        q, a_s, u3n, lrn, gkn, grad = np.empty((6,) + shape)
        outcome, slope, eta, v2, v3 = CS.compact_finish(
            pf, gf, s, e, retracted, inv_p, log_ratio, u3, mu2, mu3, a2, a3, n, dim, m, b,
            boundary, search[0], search[1], search[2], search[3], q.reshape(-1),
            a_s.reshape(-1), u3n.reshape(-1), lrn.reshape(-1), gkn.reshape(-1),
            grad.reshape(-1))
        if outcome == CS.NOT_FUSED:
            return None
        step.stats = dict.fromkeys(INNER_HISTORIES, 0)
        step.stats["cg_iterations"] = step.stats["hessian_products"] = its
        step.newton_direction = True
        s = s.reshape(shape)
        if outcome == CS.NO_STEP:
            return s, float(slope), None, None
        return s, float(slope), float(eta), new_state(q, grad, count, terms, (v2, v3),
                                                      ((gkn, lrn), (u3n,)))

    return fused
