r"""The compact Newton solve in the density (:class:`densflow.newton.Newton`'s
``preconditioner="compact"``, the default for energies of KL and Dirichlet terms):
the Hessian :math:`(\alpha_2 + \nu)/p + \alpha_3 A` is a stencil, solved in one
compiled call (:mod:`densflow.kernels.compact`), and the step is taken straight or
along the Fisher–Rao exponential map (:func:`fisher_rao_retraction`), whichever ends
at the lower energy (docs :ref:`compact-newton`).
"""

import weakref

import numpy as np

from .core.operators import dot, laplacian
from .energies.terms import KL
from .kernels import compact as CK
from .kernels.newton import step_ratio
from .metrics.natural import mass_fix

__all__ = ["CompactNewton", "fisher_rao_retraction", "RETRACT", "RETRACT_BELOW"]

#: Whether compact Newton steps may be taken along the Fisher–Rao exponential map
#: (:meth:`CompactNewton._compact_direction`; ``False``: always straight).
RETRACT = True

#: Compact Newton steps that change every cell by less than this fraction of its mass
#: are taken straight, without comparing with the retracted step.
RETRACT_BELOW = 1e-2


def fisher_rao_retraction(p, s):
    r"""The density step :math:`p - q` to :math:`q = p\,e^{-s/p}/Z` (:math:`Z` the
    normalisation): the Newton step :math:`-s` taken along the Fisher–Rao (entropic)
    exponential map instead of the straight line.

    :math:`q > 0` always, so the fraction-to-the-boundary rule never cuts it, and
    :math:`q = p - s + O(s^2/p)`, so Newton's local quadratic convergence is kept. For
    the KL term alone, whose Newton step is :math:`s = p(\log(p/\mu) - \kappa)`, it
    lands on :math:`\mu` exactly, where the straight step overshoots wherever
    :math:`p/\mu` is far from 1. The exponent is clipped to :math:`[-700, 50]`.
    """
    return p - _retracted(p, s)


def _retracted(p, s):
    """The end :math:`q` of :func:`fisher_rao_retraction`: two compiled passes around
    numpy's (vectorised) exponential."""
    flat_p = np.ascontiguousarray(p, dtype=float).reshape(-1)
    q = np.empty(flat_p.shape[0])
    CK.retraction_exponent(flat_p, np.ascontiguousarray(s, dtype=float).reshape(-1), q)
    np.exp(q, out=q)
    CK.scale_and_normalise(q, flat_p)
    return q.reshape(np.shape(p))


#: The terms of :meth:`CompactNewton._value` per energy (and its terms' weights).
_VALUE_TERMS = weakref.WeakKeyDictionary()


def _value_terms(energy):
    """``(a2, m, a3, b, const)`` of :func:`densflow.kernels.compact.relative_value` for
    ``energy`` (KL and Dirichlet terms), kept while the energy lives (a run's steps
    share them: 60 µs of a 0.5 ms solve at 2D 64²)."""
    key = tuple((a, id(t)) for a, t in energy.active_terms)
    kept = _VALUE_TERMS.get(energy)
    if kept is not None and kept[0] == key:
        return kept[1]
    grid = energy.grid
    a2 = a3 = const = 0.0
    m = np.zeros(grid.shape)
    b = np.zeros(grid.shape)
    for a, t in energy.active_terms:
        if type(t) is KL:
            a2 += a
            m += a * np.log(t.mu)
        else:
            a3 += a
            u = laplacian(np.asarray(t.mu, dtype=float), grid.n)
            b += a * u
            const += 0.5 * a * float(dot(t.mu, u))
    terms = (a2, (m / a2).reshape(-1), a3, b.reshape(-1), const)
    _VALUE_TERMS[energy] = (key, terms)
    return terms


class CompactNewton:
    """The compact solve and step of :class:`densflow.newton.NewtonStep` (a mixin: it
    uses the step's ``energy``, ``settings``, ``stats``, ``first_step`` and
    ``_floor``)."""

    _value_terms = None

    def _compact_direction(self, p, g, gap):
        """The compact Newton step, straight or along the Fisher–Rao exponential map
        (:func:`fisher_rao_retraction`), whichever ends at the lower energy (the
        straight one shortened by the fraction-to-the-boundary rule; a one-pass energy
        evaluation each, :meth:`_value`); a step that
        changes no cell by more than ``RETRACT_BELOW`` of its mass is taken straight
        (the two differ by :math:`O(s^2/p)`)."""
        s = self._solve_compact(p, g, gap, 0.0)
        if not RETRACT or step_ratio(np.ascontiguousarray(p, dtype=float).reshape(-1),
                                     s.reshape(-1)) < RETRACT_BELOW:
            return s
        q = _retracted(p, s)
        value = self._value
        return p - q if value(q) < value(p - self.first_step(p, s, 1.0) * s) else s

    def _value(self, q):
        """The compact energy at ``q``: numpy's logarithm, then one compiled pass
        (:func:`densflow.kernels.compact.relative_value` plus its constant); ``inf``
        unless ``q > 0``. The pass's terms are made once per energy
        (:func:`_value_terms`)."""
        if self._value_terms is None:
            self._value_terms = _value_terms(self.energy)
        a2, m, a3, b, const = self._value_terms
        q = np.ascontiguousarray(q, dtype=float)
        if not q.min() > 0.0:
            return np.inf
        flat = q.reshape(-1)
        return CK.relative_value(flat, np.log(flat), a2, m, a3, b, q.shape[0], q.ndim) + const

    def _solve_compact(self, p, g, gap, nu):
        """The compact solve (:mod:`densflow.kernels.compact`)."""
        w = self.energy.weights
        c = (w["fisher_rao"] + nu) / np.maximum(p, 1e-300)
        x = np.empty(p.size)
        flat_g = np.ascontiguousarray(g, dtype=float).reshape(-1)
        if p.ndim == 1:
            CK.tridiagonal_newton_1d(flat_g, c, w["mahalanobis"], p.shape[0], x)
            its = 1
        else:
            its, _ = CK.jacobi_cg(flat_g, c.reshape(-1), w["mahalanobis"], p.shape[0],
                                  self.settings.forcing_max, self._floor(gap),
                                  self.settings.cg_max_iter, x)
        self.stats["cg_iterations"] += its
        self.stats["hessian_products"] += its
        return mass_fix(x.reshape(p.shape))
