r"""Energies restricted to a search line :math:`\eta \mapsto p - \eta s` (the line
search of :func:`densflow.solve`).

Setting a line up applies each quadratic term's operator to ``s`` once; a trial step
then costs :math:`O(N)`: the quadratic terms are exact quadratics in :math:`\eta`
(two scalars each), the KL term one compiled pass. :meth:`EnergyLine.backtrack` runs a
whole Armijo backtracking in one compiled call.
"""

import numpy as np

from ..core.operators import dot
from ..core.state import State
from ..kernels import energy as EK

__all__ = ["EnergyLine", "QuadraticLine", "KLLine"]


class QuadraticLine:
    r"""Exact restriction of a quadratic term to :math:`\eta \mapsto p - \eta s`."""

    def __init__(self, state, s, hs, center):
        self.state, self.s, self.hs, self.center = state, s, hs, center
        g = state.gradient
        if g.flags.c_contiguous and s.flags.c_contiguous and hs.flags.c_contiguous:
            self.slope, self.curvature = EK.two_dots(g, s, hs)
        else:
            self.slope, self.curvature = dot(g, s), dot(s, hs)

    def delta(self, eta, q):
        return -eta * self.slope + 0.5 * eta * eta * self.curvature

    def state_at(self, eta, q):
        u = np.empty_like(self.hs)
        return State(q, EK.quadratic_state(q, self.center, self.state.gradient, self.hs, eta, u), u)


class KLLine:
    r"""The KL term along :math:`\eta \mapsto p - \eta s`."""

    def __init__(self, term, state, s):
        self.term, self.state, self.s = term, state, s

    def delta(self, eta, q):
        # at q = p - eta s, summed entry by entry so that small differences of large
        # sums stay accurate; +inf outside the positive orthant
        return EK.kl_line_delta(self.state.p, self.s, eta, self.term.mu, self.state.parts)

    def state_at(self, eta, q):
        return self.term.evaluate(q)


class EnergyLine:
    r"""The energy along :math:`\eta \mapsto p - \eta s` from a :class:`State` at ``p``.

    Setting it up applies each quadratic term's operator to ``s`` once; afterwards
    :meth:`delta` (:math:`E(p-\eta s) - E(p)`, computed as a difference so that it
    stays accurate when both values are tiny) and :meth:`state_at` cost :math:`O(N)`.
    Outside the positive orthant the energy is :math:`+\infty` (:ref:`stepping`) unless
    ``positive=False`` and no term is (KL, porous medium). ``known`` maps the index of a
    quadratic active term to its operator applied to ``s`` when the caller has it
    already (Newton in the potential knows :math:`L_\mu^+ s` exactly), which saves
    that term's solve.
    """

    def __init__(self, energy, state, s, positive=True, known=None):
        self.energy, self.state = energy, state
        self.s = s = np.ascontiguousarray(s, dtype=float)
        self.positive = positive
        known = {} if known is None else known
        self.lines = [(a, QuadraticLine(st, s, known[j], t.center) if j in known else t.line(st, s))
                      for j, ((a, t), st) in enumerate(zip(energy.active_terms, state.parts))]
        # a KL line is +inf outside the orthant by itself
        self._check_sign = positive and not energy._has_kl
        self._fused = energy._fused_line
        if self._fused:
            k = energy._line_kl
            self._kl = self.lines[k] if k is not None else (0.0, None)
            quadratic = [line for j, line in enumerate(self.lines) if j != k]
            self._q_slope = sum(a * ln.slope for a, ln in quadratic)
            self._q_curvature = sum(a * ln.curvature for a, ln in quadratic)

    def point(self, eta):
        q = np.empty(self.s.shape)
        EK.step_point(np.ascontiguousarray(self.state.p), self.s, eta, q)
        return q

    def delta(self, eta):
        r""":math:`E(p - \eta s) - E(p)`."""
        if self._check_sign and not EK.stays_positive(self.state.p, self.s, eta):
            return np.inf
        total = 0.0
        for a, ln in self.lines:
            total += a * ln.delta(eta, None)
        return float(total)

    def backtrack(self, slope, eta, shrink, c1, min_step):
        """Armijo backtracking from ``eta`` in one compiled call: ``(eta, delta, trials)``
        with ``eta = None`` when no step ``>= min_step`` passes; ``None`` when the line's
        terms need the general loop (several KL terms, or terms that are not exact
        quadratics along the line, such as the porous medium)."""
        if not self._fused:
            return None
        a, kl = self._kl
        p = self.state.p
        mu, log_ratio = (kl.term.mu, kl.state.parts) if kl is not None else (p, p)
        eta, delta, trials = EK.backtrack(p, self.s, a, mu, log_ratio, self._check_sign,
                                          self._q_slope, self._q_curvature, slope, eta,
                                          shrink, c1, min_step)
        return (None, None, trials) if eta < 0 else (eta, delta, trials)

    def state_at(self, eta, q=None):
        """The energy's :class:`State` at :math:`q = p - \\eta s`."""
        q = self.point(eta) if q is None else q
        parts = [ln.state_at(eta, q) for _, ln in self.lines]
        return self.energy._combine(q, parts)

