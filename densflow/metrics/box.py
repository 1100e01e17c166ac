r"""The metrics on the no-flux (Neumann) box (:ref:`boxes`).

* Wasserstein: :math:`M(p) = \sum_d D_d^\top \operatorname{diag}(p) D_d` with the box's
  differences (no flux through the walls; :math:`M\mathbf 1 = 0`).
* Fisher–Rao: :math:`\operatorname{diag}(p)`, as on the torus (its binding is the
  periodic one).
* Mahalanobis: :math:`A^+` of the Neumann Laplacian by DCT-II.
* Combined: the periodic combined metric of the even reflection, restricted to the box
  by the symmetrising projection (:mod:`densflow.core.box_wavelets`):
  :math:`M_{\mathrm{box}}(p) = E^\top M_{2n}(\mathcal E p) E`. Its mass-preserving form is
  the restriction of the reflected grid's: with :math:`E\mathbf 1_n = 2^{-\mathrm{dim}/2}
  \mathbf 1_{2n}` the constants :math:`c` of the two projections agree, so the box's
  direction is :math:`2^{-\mathrm{dim}}\,\mathcal E^\top s_{2n}`, :math:`s_{2n}` the
  reflected grid's direction at :math:`(\mathcal E p, \mathcal E g)`. In 1D (KL-like
  terms) the whole direction is one compiled call from the box's ``p`` and ``g``
  (:func:`densflow.kernels.box.reflected_direction_1d`).

Importing this module registers the bindings in
:data:`densflow.metrics.natural.BOUNDARY_BINDERS` (:mod:`densflow.metrics` does).
"""

import numpy as np

from ..core.box import laplacian_pinv_for, weighted_laplacian_box
from ..core.box_wavelets import extend, fold, reflected_basis
from ..kernels import box as BK
from .massfix import RESIDUE_SHARE
from .natural import BOUNDARY_BINDERS, _Bound, _BoundCombined, _BoundWasserstein, mass_fix

__all__ = ["bind_wasserstein", "bind_mahalanobis", "bind_combined"]

BOUNDARY = "neumann"


class _BoundWassersteinBox(_BoundWasserstein):
    def apply(self, p, g):
        return weighted_laplacian_box(g, p, self.n)


class _BoundPinv(_Bound):
    """:math:`M = A^+` of the box (DCT-II)."""

    def __init__(self, grid):
        self._pinv = laplacian_pinv_for(grid)

    def apply(self, p, g):
        return self._pinv(g)

    def direction(self, p, g):
        return mass_fix(self._pinv(g))


class _BoundCombinedBox(_Bound):
    r""":math:`M_{\mathrm{box}}(p) = E^\top M_{2n}(\mathcal E p) E` (see the module)."""

    def __init__(self, inner, dim):
        self.inner = inner
        self.basis = inner.basis  # the reflected grid's (its level goes to run files)
        self.scale = 0.5**dim  # E^T u E = 2^-dim fold(u(extend .))

    def eigenvalues(self, p):
        r""":math:`\lambda(\mathcal E p)` of the reflected basis (pyramid layout)."""
        return self.inner.eigenvalues(p)

    # the inner metric takes the box density itself: the reflected basis's diagonals read
    # the box's cells (ReflectedBasis.diagonals), the reflected density is never formed

    def apply(self, p, g):
        return self.operator(p)(g)

    def operator(self, p):
        op, s = self.inner.operator(p), self.scale
        return lambda v: s * fold(op(extend(v)))

    def preconditioner(self, p):
        pre, s = self.inner.preconditioner(p), self.scale
        return lambda v: s * fold(pre(extend(v)))

    def direction(self, p, g):
        inner = self.inner
        if p.ndim == 1 and inner.mobility is None:  # one compiled call (KL terms, or none)
            b = inner.basis
            s = np.empty(p.shape)
            if BK.reflected_direction_1d(
                    np.ascontiguousarray(p, dtype=float), np.ascontiguousarray(g, dtype=float),
                    *b._flat, b.lo, b.hi, b.level, inner.a1, inner.a2, inner._a3h3,
                    inner.ones_coeffs, self.scale, RESIDUE_SHARE, s):
                return s
            return mass_fix(s)
        return mass_fix(self.scale * fold(inner.direction(p, extend(g))))


def bind_wasserstein(metric, energy):
    """The Wasserstein metric of ``energy``'s box."""
    return _BoundWassersteinBox(energy.grid.n)


def bind_mahalanobis(metric, energy):
    """The Mahalanobis metric :math:`A^+` of ``energy``'s box."""
    return _BoundPinv(energy.grid)


def bind_combined(metric, energy):
    """The combined metric of ``energy``'s box (reflected basis, symmetrising projection)."""
    basis = reflected_basis(energy.grid, metric.wavelet, metric.level)
    return _BoundCombinedBox(_BoundCombined(basis, energy), energy.grid.dim)


BOUNDARY_BINDERS.update({(BOUNDARY, "wasserstein"): bind_wasserstein,
                         (BOUNDARY, "mahalanobis"): bind_mahalanobis,
                         (BOUNDARY, "combined"): bind_combined})
