r"""The proximal operators of the implicit flow steps (:ref:`flows`).

An implicit step of the flow of :math:`F` in the metric :math:`M` moves by
:math:`p = q - \tau K \varphi`, where :math:`K = M(p^*)` is symmetric positive
semidefinite with :math:`K\mathbf 1 = 0` (so mass is conserved):

* Wasserstein: :math:`K = L_m = \sum_d D_d^\top \operatorname{diag}(m_d) D_d` with the
  *centred* edge mobility :math:`m_d = \tfrac12 (p^*_s + p^*_{s+e_d})` (arithmetic mean)
  or the logarithmic mean :math:`(a - b)/(\log a - \log b)`, which makes the discrete
  flux :math:`m\,D\log p = D p` exact for the entropy;
* Fisher–Rao: :math:`K = \operatorname{diag}(p^*) - p^* p^{*\top} / \textstyle\sum p^*`,
  the mass-preserving form of :math:`\operatorname{diag}(p^*)`;
* Mahalanobis: :math:`K = A^+` (FFT).

Each operator also applies a preconditioner for the step's Hessian in the potential
variables, :math:`\tau K + \tau^2 K \nabla^2F K` (see :mod:`densflow.flows.step`), built
from a constant-coefficient model of the energy's curvature
(:func:`densflow.flows.step.curvature_model`).
"""

import numpy as np
import scipy.fft as sfft

from ..core.operators import apply_laplacian_pinv, laplacian_symbol, weighted_laplacian
from ..kernels.flows import edge_laplacian_2d
from .box_operators import make_box_proximal
from .prox_base import MahalanobisBase, WassersteinBase

__all__ = ["FLOW_METRICS", "COMBINED_REFUSAL", "MOBILITIES", "WassersteinProx", "FisherRaoProx", "MahalanobisProx",
           "make_proximal"]

#: Metrics of :func:`densflow.flow`.
FLOW_METRICS = ("wasserstein", "fisher_rao", "mahalanobis")
#: Why ``metric="combined"`` has no flow (the message of its refusal).
COMBINED_REFUSAL = (
    "metric='combined' has no flow: the wavelet-combined metric of Ying (2021) is an "
    "approximate inverse Hessian of the energy (a preconditioner built from the energy's "
    "own weights), so its flow is a continuous-time Newton flow whose path depends on the "
    "wavelet basis and relaxes every mode at a rate near 1; it is the flow of no PDE and its "
    "time is not physical time. Use densflow.solve(..., metric='combined') for the minimiser, "
    "or metric='wasserstein', 'fisher_rao' or 'mahalanobis' for a time-accurate flow")
#: Edge mobilities of the Wasserstein step.
MOBILITIES = ("arithmetic", "logarithmic")


def _edge_mean(a, b, kind):
    if kind == "arithmetic":
        return 0.5 * (a + b)
    # logarithmic mean (a - b)/(log a - log b), = a where a == b (to rounding)
    la, lb = np.log(a), np.log(b)
    diff = la - lb
    close = np.abs(diff) < 1e-6
    safe = np.where(close, 1.0, diff)
    out = np.where(close, np.sqrt(a * b) * (1.0 + diff * diff / 24.0), (a - b) / safe)
    return out


class _FourierModel:
    """Shared pieces: the grid's Laplacian symbol on the rfftn grid."""

    def __init__(self, grid):
        self.n, self.dim = grid.n, grid.dim
        self.symbol = laplacian_symbol(grid.n, grid.dim)
        self.axes = tuple(range(grid.dim))
        self.shape = grid.shape

    def multiply(self, r, multiplier):
        rhat = sfft.rfftn(r, axes=self.axes)
        rhat *= multiplier
        return sfft.irfftn(rhat, s=self.shape, axes=self.axes, overwrite_x=True)


class WassersteinProx(_FourierModel, WassersteinBase):
    r""":math:`K = L_m` with centred edge mobilities at ``p_star``.

    Preconditioner: :math:`L_m \approx S A S`, :math:`S = \operatorname{diag}(p^*)^{1/2}`,
    so the Hessian :math:`\tau L_m + \tau^2 L_m \nabla^2F L_m` is modelled by
    :math:`S\,[\tau \hat A + \tau^2 \hat A^2 \hat c]\,S` with :math:`\hat c(k)` the symbol
    of :math:`S \nabla^2F S`; its inverse costs one FFT pair
    (:class:`~densflow.flows.prox_base.WassersteinBase`).
    """

    multigrid_boundary = "periodic"

    def __init__(self, grid, p_star, mobility="arithmetic"):
        super().__init__(grid)
        self._bind(grid, p_star, lambda a, b: _edge_mean(a, b, mobility))

    @staticmethod
    def neighbour(p, axis):
        return np.roll(p, -1, axis=axis)

    def apply(self, x):
        """:math:`L_m x`."""
        x = np.ascontiguousarray(x, dtype=float)
        if self.dim == 1:
            return weighted_laplacian(x, self.mobilities[0], self.n)
        out = np.empty_like(x)
        edge_laplacian_2d(x, self.mobilities[0], self.mobilities[1], self.n, out)
        return out


class MahalanobisProx(_FourierModel, MahalanobisBase):
    r""":math:`K = A^+` by FFT (:class:`~densflow.flows.prox_base.MahalanobisBase`)."""

    def __init__(self, grid, p_star=None):
        super().__init__(grid)
        self._bind()

    def apply(self, x):
        """:math:`A^+ x`."""
        return apply_laplacian_pinv(np.asarray(x, dtype=float), inverse=self.inverse)


class FisherRaoProx:
    r""":math:`K = \operatorname{diag}(p^*) - p^*p^{*\top}/\sum p^*`; the Hessian model is
    the diagonal :math:`\tau p^* (1 + \tau \bar c)`, :math:`\bar c` the mean curvature of
    :math:`S\nabla^2 F S`."""

    name = "fisher_rao"

    def __init__(self, grid, p_star):
        self.shape = grid.shape
        self.weight = np.ascontiguousarray(p_star, dtype=float)
        self._total = float(self.weight.sum())

    def apply(self, x):
        """:math:`K x = p^* (x - \\langle p^*, x\\rangle / \\sum p^*)`."""
        w = self.weight
        return w * (x - float(np.vdot(w, x)) / self._total)

    def preconditioner(self, tau, curvature):
        c = float(curvature(np.zeros(1))[0])
        inv = 1.0 / (tau * self.weight * (1.0 + tau * max(c, 0.0)))

        def precondition(r):
            return inv * r

        return precondition


def make_proximal(metric, grid, p_star, mobility):
    """The proximal operator of ``metric`` (a name of :data:`FLOW_METRICS`) at ``p_star``."""
    if not grid.periodic and metric != "fisher_rao":  # no-flux box: flows.box_operators
        return make_box_proximal(metric, grid, p_star, lambda a, b: _edge_mean(a, b, mobility))
    if metric == "wasserstein":
        return WassersteinProx(grid, p_star, mobility)
    if metric == "fisher_rao":
        return FisherRaoProx(grid, p_star)
    return MahalanobisProx(grid, p_star)
