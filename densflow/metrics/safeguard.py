r"""The safeguard of a bound metric on rough and nearly vanishing densities
(:ref:`metrics`): :class:`Safeguard`, and the blended preconditioner it hands to Newton's
method."""

import numpy as np

from ..core.operators import dot
from .massfix import mass_fix

__all__ = ["Safeguard", "BlendedPreconditioner"]


class BlendedPreconditioner:
    r"""The safeguard's map :math:`v \mapsto \tilde M(v - c\mathbf 1)` with
    :math:`\tilde M = D M D + F`, :math:`F = (I - D^2)\operatorname{diag}(p)/\alpha_2`
    (see :class:`Safeguard`); ``operator`` applies :math:`M(p)`."""

    def __init__(self, operator, d, f):
        self.operator, self.d, self.f = operator, d, f
        self.w = operator(d)
        self.den = dot(d, self.w) + f.sum()

    def __call__(self, v):
        d, f = self.d, self.f
        u = self.operator(d * v)
        c = (dot(d, u) + dot(f, v)) / self.den
        return d * (u - c * self.w) + f * (v - c)


class Safeguard:
    r"""Makes a bound metric usable on rough and nearly vanishing densities.

    Let :math:`\delta = \tau / N` (``floor`` :math:`=\tau`, a fraction of the uniform
    density). Where :math:`p \ge \delta` everywhere, the direction is exactly the
    wrapped metric's. Otherwise:

    * energies with a KL term (:math:`\alpha_2 > 0`), which keep :math:`p > 0`: the
      metric is blended with the Fisher–Rao metric of the KL term in the cells where
      :math:`p < \delta` (with a porous-medium term: :math:`\operatorname{diag}(p)/\alpha_2`
      replaced by the inverse :math:`\operatorname{diag}(q)` of the Fisher–Rao-like
      terms' Hessian, see :meth:`densflow.energies.Energy.fisher_rao_part`),

      .. math::

          \tilde M = D\,M(p)\,D + (I - D^2)\operatorname{diag}(p)/\alpha_2, \qquad
          D = \operatorname{diag}(\min(1, p/\delta)),

      so that in a nearly empty cell :math:`s_i \approx p_i (g_i - c)/\alpha_2`: it shrinks with
      :math:`p_i` and the step is not throttled by positivity. (A wavelet of a coarse
      scale spans full and empty cells alike; its diagonal entries :math:`H_1 p`,
      :math:`H_2 p` average :math:`p` over the support and do not vanish where
      :math:`p` does, which is what stalls the plain metric.)
    * energies without a KL or porous-medium term are defined for every :math:`p`; the
      solver then does not enforce positivity, and the metric's :math:`p`-dependent
      parts are evaluated at the floored density :math:`\max(p, \delta)`.

    Both :math:`\tilde M` and :math:`M(\max(p,\delta))` are symmetric positive
    semidefinite, so the direction :math:`s = \tilde M (g - c\mathbf 1)` conserves mass
    and has :math:`s\cdot g \ge 0` as before.
    """

    def __init__(self, bound, energy, floor=0.1):
        if not (isinstance(floor, (int, float)) and 0 < floor <= 1):
            raise ValueError(f"floor must be a number in (0, 1], got {floor!r}")
        self.bound = bound
        self.floor = float(floor)
        self.alpha2, self.mobility = energy.fisher_rao_part()
        self.positive_domain = energy.positive_domain
        self.delta = self.floor / energy.grid.size

    @property
    def requires_positive(self):
        """Whether iterates must stay in the positive orthant (energies with KL or a
        porous-medium term)."""
        return self.positive_domain

    def preconditioner(self, p):
        """The safeguarded map :math:`v \\mapsto \\tilde M (v - c\\mathbf 1)` (see
        :meth:`densflow.metrics._Bound.preconditioner`), formed once for ``p``."""
        if p.min() >= self.delta:
            return self.bound.preconditioner(p)
        if not self.positive_domain:
            return self.bound.preconditioner(np.maximum(p, self.delta))
        d = np.minimum(1.0, p / self.delta)
        q = p if self.mobility is None else self.mobility(p)
        return BlendedPreconditioner(self.bound.operator(p), d, (1.0 - d * d) * q / self.alpha2)

    def direction(self, p, g):
        if p.min() >= self.delta:
            return self.bound.direction(p, g)
        if not self.positive_domain:
            return self.bound.direction(np.maximum(p, self.delta), g)
        return mass_fix(self.preconditioner(p)(g))
