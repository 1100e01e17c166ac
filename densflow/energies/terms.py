r"""Energies over probability vectors on a periodic grid (:ref:`energies`).

Three terms, each of one *kind* (the natural metric that matches its Hessian):

* :class:`HMinus1` (Wasserstein-type): :math:`E_1(p) = \tfrac12 (p-\mu)^\top L_\mu^+ (p-\mu)`,
  :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`.
* :class:`KL` (Fisher–Rao-type): :math:`E_2(p) = \sum_s p_s \log(p_s/\mu_s)`.
* :class:`Dirichlet` (Mahalanobis-type): :math:`E_3(p) = \tfrac12 (p-\mu)^\top A (p-\mu)`,
  :math:`A = -\Delta = \sum_d D_d^\top D_d`.

Free-energy terms without a reference measure (porous medium, potential, interaction)
live in :mod:`densflow.energies.porous`, :mod:`~densflow.energies.potential` and
:mod:`~densflow.energies.interaction`.

The base class :class:`Term` and the sums :math:`E = \sum_k \alpha_k E_k` built by
``alpha * term`` and ``+`` (:class:`Energy`) live in :mod:`densflow.energies.base`; both
names are re-exported here. Each term declares how
its Hessian enters the combined metric (its ``kind``, see :class:`Term`). Along a search
line :math:`p - \eta s` the quadratic terms are exact quadratics in :math:`\eta`, so a
line-search trial costs :math:`O(N)` (one linear solve per direction, none per trial);
see :meth:`Energy.evaluate` and :meth:`Energy.line`.
"""

import numpy as np

from ..kernels import energy as EK
from .base import KINDS, Energy, Term, _Quadratic
from .lines import KLLine, State
from ..core.box import laplacian_for, weighted_laplacian_solver

__all__ = ["Term", "HMinus1", "KL", "Dirichlet", "Energy", "KINDS"]

#: Relative residual of the 2D solve :math:`L_\mu^+ s` along a search direction.
LINE_RTOL = 1e-8


class HMinus1(_Quadratic):
    r"""Weighted :math:`\dot H^{-1}(\mu)` energy (Wasserstein-type).

    .. math::

        E_1(p) = \tfrac12 (p-\mu)^\top L_\mu^+ (p-\mu), \qquad
        \nabla E_1(p) = L_\mu^+ (p-\mu),

    with :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`. The pseudo-inverse
    is applied exactly in 1D (cumulative sums) and by FFT-preconditioned conjugate
    gradients in 2D (:class:`densflow.core.operators.WeightedLaplacianSolver`); the gradient
    has zero mean.
    """

    kind = "wasserstein"
    name = "HMinus1"

    def __init__(self, grid, mu):
        super().__init__(grid, mu)
        self.solver = weighted_laplacian_solver(self.mu, grid)  # FFT or DCT (no-flux box)

    def _apply(self, r):
        return self.solver.solve(r)

    def _apply_to_direction(self, s):
        # the line search's L^+ s: 1e-8 suffices, since the solver re-evaluates the
        # gradient from the density every few iterations (2D; exact in 1D)
        return self.solver.solve(s, rtol=LINE_RTOL)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`L_\mu^+ v` (2D: CG to relative residual ``rtol``, default the solver's)."""
        return self.solver.solve(v, rtol=rtol)


class Dirichlet(_Quadratic):
    r"""Dirichlet energy (Mahalanobis-type).

    .. math::

        E_3(p) = \tfrac12 (p-\mu)^\top A (p-\mu), \qquad \nabla E_3(p) = A (p-\mu),
        \qquad A = -\Delta = \sum_d D_d^\top D_d .
    """

    kind = "mahalanobis"
    name = "Dirichlet"
    #: The wavelet diagonal is the basis' :math:`h_3` (the combined metric sums the
    #: weights of such terms before scaling it).
    diagonal_is_h3 = True

    def __init__(self, grid, mu):
        super().__init__(grid, mu)
        self._laplacian = laplacian_for(grid)  # periodic or no-flux box

    def _apply(self, r):
        return self._laplacian(r)

    def wavelet_diagonal(self, basis):
        return basis.h3


class KL(Term):
    r"""Kullback–Leibler divergence (Fisher–Rao-type).

    .. math::

        E_2(p) = \sum_s p_s \log\frac{p_s}{\mu_s}, \qquad
        \nabla E_2(p) = \log\frac{p}{\mu} + 1,

    and :math:`E_2 = +\infty` where some :math:`p_s \le 0`.
    """

    kind = "fisher_rao"
    name = "KL"
    positive_domain = True
    kl_divergence = True

    def mobility(self, p):
        """:math:`q = p` (the Hessian is :math:`\\operatorname{diag}(1/p)`)."""
        return p

    def evaluate(self, p):
        p = np.ascontiguousarray(p, dtype=float)
        log_ratio = np.empty(p.shape)
        gradient = np.empty(p.shape)
        value = EK.kl_state(p, self.mu, log_ratio, gradient)
        return State(p, value, gradient, log_ratio)

    def line(self, state, s):
        return KLLine(self, state, s)

    def change(self, state, q, log_ratio):
        r""":math:`\sum_s (q_s - p_s)\log(q_s/\mu_s) + \sum_s p_s \log(q_s/p_s)`."""
        new = self.evaluate(q)
        p = state.p
        return float(np.sum((q - p) * new.parts) + np.sum(p * log_ratio)), new

    def hessian_product(self, p, v, rtol=None):
        r""":math:`\operatorname{diag}(1/p)\, v`, with ``p`` floored at 1e-300 (for a
        subnormal ``p``, :math:`1/p` overflows)."""
        return v / np.maximum(p, 1e-300)
