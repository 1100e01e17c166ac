r"""The porous-medium internal energy (:ref:`free-energies`).

With :math:`\rho = N p` the density on the unit cell,

.. math::

    E(p) = \frac1N \sum_s \frac{\rho_s^m}{m-1}, \qquad
    \nabla E(p) = \frac{m}{m-1}\,\rho^{m-1}, \qquad
    \nabla^2 E(p) = \operatorname{diag}\big(m N \rho^{m-2}\big),

and :math:`E = +\infty` where some :math:`p_s \le 0`. The Hessian is diagonal, so the
term is Fisher–Rao-like, with mobility :math:`q = \rho^{2-m}/(m N)`. Its Wasserstein
gradient flow is the porous-medium equation :math:`\partial_t\rho = \Delta \rho^m`.
"""

import numbers

import numpy as np

from ..core.state import State
from .terms import Term

__all__ = ["PorousMedium"]


class PorousLine:
    r"""The porous-medium term along :math:`p - \eta s`, as an entry-by-entry difference

    .. math:: E(q) - E(p) = \frac{1}{N(m-1)} \sum_s \rho_s^m\,
              \operatorname{expm1}\!\big(m \operatorname{log1p}(-\eta s_s/p_s)\big),

    accurate when both energies are large and close; :math:`+\infty` when some
    :math:`q_s \le 0`.
    """

    def __init__(self, term, state, s):
        self.term, self.state = term, state
        self.ratio = s / state.p  # the state's p > 0 (else its value is inf)

    def delta(self, eta, q):
        t = -eta * self.ratio
        if not np.all(t > -1.0):
            return np.inf
        m = self.term.m
        total = np.sum(self.state.parts * np.expm1(m * np.log1p(t)))
        return float(total / (self.term.grid.size * (m - 1.0)))

    def state_at(self, eta, q):
        return self.term.evaluate(q)


class PorousMedium(Term):
    r"""Porous-medium energy :math:`\int \rho^m/(m-1)` (Fisher–Rao-like).

    Parameters
    ----------
    grid : Grid
        The periodic grid.
    m : float
        The exponent, :math:`m > 1` (finite).

    Examples
    --------
    >>> grid = df.Grid(256)                                              # doctest: +SKIP
    >>> E = df.energies.PorousMedium(grid, 2) + df.energies.Potential(grid, lambda x: np.cos(2 * np.pi * x))
    >>> df.solve(E, grid.uniform(), gtol=1e-12).message
    """

    kind = "fisher_rao"
    name = "PorousMedium"
    positive_domain = True

    def __init__(self, grid, m):
        super().__init__(grid)
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not (np.isfinite(m) and m > 1):
            raise ValueError(f"m must be a finite number > 1 (the porous-medium exponent), got {m!r}")
        self.m = float(m)

    def evaluate(self, p):
        p = np.asarray(p, dtype=float)
        N, m = self.grid.size, self.m
        rho = N * p
        if not np.all(p > 0):
            return State(p, np.inf, np.full(p.shape, np.nan), np.full(p.shape, np.nan))
        rho_m1 = rho ** (m - 1.0)
        rho_m = rho_m1 * rho
        value = float(np.sum(rho_m)) / (N * (m - 1.0))
        return State(p, value, (m / (m - 1.0)) * rho_m1, rho_m)

    def line(self, state, s):
        return PorousLine(self, state, s)

    def change(self, state, q, log_ratio):
        r""":math:`\frac{1}{N(m-1)}\sum_s \rho_s^m \operatorname{expm1}(m\log(q_s/p_s))`."""
        m = self.m
        total = np.sum(state.parts * np.expm1(m * log_ratio))
        return float(total / (self.grid.size * (m - 1.0))), self.evaluate(q)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`m N \rho^{m-2} v` (``p`` floored at 1e-300)."""
        N, m = self.grid.size, self.m
        return (m * N) * (N * np.maximum(p, 1e-300)) ** (m - 2.0) * v

    def mobility(self, p):
        r""":math:`q = \rho^{2-m}/(m N)`, the inverse of the Hessian's diagonal."""
        N, m = self.grid.size, self.m
        return (N * np.maximum(p, 1e-300)) ** (2.0 - m) / (m * N)

    def label(self):
        return f"PorousMedium(m={self.m!r})"

    def __repr__(self):
        return f"PorousMedium({self.grid!r}, m={self.m!r})"
