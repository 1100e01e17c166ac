r"""Newton's preconditioner for free energies: the inverse of the Hessian's diagonal
(:ref:`free-energies`).

A free energy's Hessian is a diagonal (its Fisher–Rao-like terms, :math:`\sum_k
\alpha_k/q_k(p)`: KL :math:`\alpha/p`, porous medium :math:`\alpha m N\rho^{m-2}`) plus
constant translation-invariant operators (interaction :math:`K`, Dirichlet :math:`A`),
whose diagonal :math:`e_0^\top H e_0` is the same in every cell. The preconditioner is

.. math::

    P v = Q (v - c\mathbf 1), \quad c = \frac{\mathbf 1^\top Q v}{\mathbf 1^\top Q \mathbf 1},
    \qquad Q^{-1} = \sum_k \frac{\alpha_k}{q_k(p)} + \max\Big(0, \sum_j \alpha_j
    (K_j)_{00}\Big),

exact on the diagonal part, so that in a nearly empty cell (where :math:`\alpha/p`
dominates) the preconditioned Hessian is the identity: PCG resolves those cells as well
as the occupied ones, which a wavelet metric (averaging :math:`p` over a wavelet's
support) does not. A smooth interaction kernel has few Fourier modes above the
diagonal's scale, so PCG converges in a few iterations of :math:`O(N\log N)` each.
The first-order fallback direction is the wrapped metric's.
"""

import numpy as np

from ..core.operators import dot

__all__ = ["HessianDiagonal", "applies"]


def applies(energy):
    r"""Whether ``energy`` is a free energy this preconditioner serves: no known minimum,
    a Fisher–Rao-like term, no Wasserstein-like (:math:`H^{-1}`) term and no Dirichlet
    term. (A differential operator's diagonal is a poor preconditioner of it, condition
    :math:`\sim n^2`: the wavelet metric is made for those; 1D, KL and Dirichlet on two
    reference measures: 112 products against 31.)"""
    kinds = {t.kind for _, t in energy.active_terms}
    laplacian = any(getattr(t, "diagonal_is_h3", False) for _, t in energy.active_terms)
    return (energy.min_value is None and energy.positive_domain and "fisher_rao" in kinds
            and "wasserstein" not in kinds and not laplacian)


class HessianDiagonal:
    """Preconditioning for :class:`densflow.newton.NewtonStep`: ``preconditioner(p)`` the
    inverse Hessian diagonal in its mass-preserving form; ``direction`` (the fallback),
    ``floor``, ``bound`` and ``requires_positive`` those of the wrapped metric ``inner``
    (a bound metric or its :class:`~densflow.metrics.Safeguard`)."""

    #: What run files record as ``newton_preconditioner``.
    kind = "diagonal"

    def __init__(self, inner, energy):
        self.inner = inner
        self.alpha2, self.mobility = energy.fisher_rao_part()
        e0 = np.zeros(energy.grid.shape)
        e0.flat[0] = 1.0
        constant = [(a, t) for a, t in energy.active_terms if t.kind == "mahalanobis"]
        self.constant = max(0.0, sum(a * float(t.hessian_product(e0, e0).flat[0])
                                     for a, t in constant))
        self.requires_positive = getattr(inner, "requires_positive", True)

    @property
    def floor(self):
        return getattr(self.inner, "floor", np.nan)

    @property
    def bound(self):
        return getattr(self.inner, "bound", self.inner)

    def diagonal(self, p):
        """The Hessian's diagonal (its constant part clipped at 0)."""
        p = np.maximum(p, 1e-300)
        q = p if self.mobility is None else self.mobility(p)
        return self.alpha2 / q + self.constant

    def preconditioner(self, p):
        w = 1.0 / self.diagonal(p)
        total = w.sum()
        return lambda v: w * (v - dot(w, v) / total)

    def direction(self, p, g):
        return self.inner.direction(p, g)
