r"""Search curves that stay positive: :math:`q(\eta) = p\,e^{-\eta s/p}/Z(\eta)`
(:ref:`free-energies`).

Newton's straight line :math:`p - \eta s` must stop short of the boundary of the
positive orthant, so a cell that has to fall by orders of magnitude (an aggregate
forming; the tails of a stationary state, :math:`p \sim e^{-40}/N`) falls by at most a
fixed fraction per step, and every other cell's step is cut with it. Along the
exponential (mirror) curve

.. math::

    q(\eta) = \frac{p\, e^{-\eta u}}{Z(\eta)}, \quad u = s/p, \quad
    Z(\eta) = \sum_s p_s e^{-\eta u_s}, \qquad
    \dot q(0) = -s \;\;(\textstyle\sum_s s_s = 0),

the density stays positive and has mass 1 for every :math:`\eta`; its slope at
:math:`\eta = 0` is the line's (so Armijo's test is unchanged), and it departs from the
line only at second order, :math:`O(s^2/p)`: Newton's local convergence is kept. In a
nearly empty cell, where the entropy :math:`\alpha\operatorname{diag}(1/p)` dominates
the Hessian, the Newton direction is :math:`s_i = p_i (g_i - c)/\alpha` and the full
step is :math:`\alpha\log q_i = \alpha\log p_i - (g_i - c)`: the cell lands on its
stationary value in one step, which the straight line cannot do.

The energy change along the curve is summed term by term as a difference
(:meth:`densflow.energies.Term.change`), so that it stays accurate when it is far
below the rounding of :math:`E` itself.
"""

import numpy as np

from .base import EnergyView

__all__ = ["ExponentialLine", "MirrorLines", "LOG_FLOOR"]

#: Floor of log q (e^-700 ~ 1e-304: no cell underflows to 0; a cell of a vacuum region
#: of a porous-medium state stays there).
LOG_FLOOR = 700.0


class ExponentialLine:
    r"""The energy along :math:`q(\eta) = p e^{-\eta s/p}/Z(\eta)` from a state at ``p``."""

    def __init__(self, energy, state, s):
        self.energy, self.state = energy, state
        p = state.p
        with np.errstate(over="ignore", divide="ignore"):
            self.u = s / p  # (the state's p > 0)
        self.log_p = np.log(p)
        self._cache = None

    def point(self, eta):
        """``(q, log(q/p))`` at ``eta``."""
        p = self.state.p
        x = np.clip(-eta * self.u, -2 * LOG_FLOOR, LOG_FLOOR)
        if np.max(np.abs(x)) < 1.0:  # Z near 1: accurate to the rounding of its change
            log_z = np.log1p(float(np.sum(p * np.expm1(x))))
        else:
            y = self.log_p + x
            top = y.max()
            log_z = top + np.log(float(np.sum(np.exp(y - top))))
        # no cell falls below e^-LOG_FLOOR (nor underflows to 0); the mass this adds is
        # at most N e^-LOG_FLOOR
        log_ratio = np.maximum(x - log_z, -LOG_FLOOR - self.log_p)
        q = p * np.exp(log_ratio)
        if np.max(np.abs(x)) >= 1.0:  # a long step: the exp/log rounding of Z off the mass
            total = float(q.sum())
            q /= total
            log_ratio -= np.log(total)
        return q, log_ratio

    def _at(self, eta):
        if self._cache is None or self._cache[0] != eta:
            q, log_ratio = self.point(eta)
            changes = [t.change(st, q, log_ratio) for (_, t), st in
                       zip(self.energy.active_terms, self.state.parts)]
            delta = sum(a * d for (a, _), (d, _) in zip(self.energy.active_terms, changes))
            self._cache = (eta, q, float(delta), [st for _, st in changes])
        return self._cache

    def delta(self, eta):
        r""":math:`E(q(\eta)) - E(p)`."""
        return self._at(eta)[2]

    def state_at(self, eta):
        _, q, _, parts = self._at(eta)
        return self.energy._combine(q, parts)


class MirrorLines(EnergyView):
    """The energy as the loop sees it when its steps follow exponential curves
    (:class:`ExponentialLine`); everything else is the energy's."""

    #: What run files record as ``newton_line``.
    kind = "exponential"

    def line(self, state, s, positive=True):
        return ExponentialLine(self.energy, state, np.ascontiguousarray(s, dtype=float))
