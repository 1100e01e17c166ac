r"""Newton steps for free energies along exponential curves (:ref:`free-energies`).

:class:`FreeNewtonStep` is :class:`densflow.newton.NewtonStep` preconditioned by the
inverse Hessian diagonal (:class:`densflow.metrics.diagonal.HessianDiagonal`), with one
correction of its direction in the nearly empty cells. There the step is read as a
change of :math:`\log p` (:mod:`densflow.energies.mirror`): :math:`u_i = s_i/p_i`, which
the rounding fix of a mass-preserving direction (:func:`densflow.metrics.mass_fix`)
perturbs by up to 100 % when :math:`|s_i|` is below the rounding residue's share. The
correction recomputes those entries from the Newton residual :math:`r = g - Hs` (one
Hessian product): with :math:`\lambda` the multiplier of the mass constraint (the
:math:`Q`-weighted mean of :math:`r`, :math:`Q` the preconditioner's weights),

.. math::

    s_i \leftarrow s_i + Q_i (r_i - \lambda) \qquad (N p_i < \text{TAIL}),

a Jacobi sweep, exact where the diagonal :math:`\alpha/p_i` dominates the row. Mass is
restored by subtracting :math:`(\sum_s s_s)\,p`, which changes :math:`u` by a constant:
the exponential curve is the same.
"""

import numpy as np

from .core.operators import dot
from .energies.mirror import LOG_FLOOR
from .newton import NewtonStep

__all__ = ["FreeNewtonStep", "TAIL", "FLOOR"]

#: Cells holding less than ``TAIL / N`` get the Jacobi correction.
TAIL = 1e-6

#: Cells at most this full sit at the floor of the exponential curves
#: (:data:`densflow.energies.mirror.LOG_FLOOR`, with margin); a step that would lower
#: them further leaves them (an empty region of a porous-medium state: the constraint
#: p >= 0 is active there).
FLOOR = np.exp(-LOG_FLOOR + 10.0)


class FreeNewtonStep(NewtonStep):
    """:class:`~densflow.newton.NewtonStep` whose Newton directions are corrected in the
    nearly empty cells (see the module); ``preconditioning`` a
    :class:`~densflow.metrics.diagonal.HessianDiagonal`."""

    def direction(self, p, g, gap=None):
        s = super().direction(p, g, gap)
        if not self.newton_direction:
            return s
        stuck = (p <= FLOOR) & (s > 0)  # at the curves' floor and pushed down: fixed
        if np.any(stuck):
            s = np.where(stuck, 0.0, s)
            s = s - s.sum() * p
        tail = p * p.size < TAIL
        if not np.any(tail):
            return s
        w = 1.0 / self.inner.diagonal(p)
        r = g - self.energy.hessian_product(p, s)
        self.stats["hessian_products"] += 1
        lam = dot(w, r) / w.sum()
        s = s.copy()
        s[tail] += w[tail] * (r[tail] - lam)
        return s - s.sum() * p
