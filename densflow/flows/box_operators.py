r"""The proximal operators of the implicit flow steps on the no-flux box (:ref:`boxes`).

The box twins of :mod:`densflow.flows.proximal`: the same :math:`K` with the box's
difference operators (:mod:`densflow.core.box`), so no flux crosses the walls and
:math:`K\mathbf 1 = 0` still conserves mass.

* Wasserstein: :math:`K = L_m = \sum_d D_d^\top \operatorname{diag}(m_d) D_d` on the
  :math:`n - 1` interior edges of each line, :math:`m_d` the centred (arithmetic or
  logarithmic) mean of the edge's two cells; there is no wrap-around edge.
* Fisher–Rao: unchanged (:class:`densflow.flows.proximal.FisherRaoProx`, which
  :func:`densflow.flows.proximal.make_proximal` builds on either boundary).
* Mahalanobis: :math:`K = A^+`, the Neumann Laplacian's pseudo-inverse by DCT-II.

The preconditioners are those of the torus with the cosine transform in place of the
FFT: the Hessian model :math:`S[\tau\hat A + \tau^2\hat A^2\hat c]S` (Wasserstein) or
:math:`\tau/\hat A + \tau^2\hat c/\hat A^2` (Mahalanobis) is diagonal in the DCT-II
basis, with :math:`\hat A(k) = \sum_d (2n\sin(\pi k_d/2n))^2`.
"""

import numpy as np
import scipy.fft as sfft

from ..core.box import box_laplacian_symbol, weighted_laplacian_box
from ..kernels.box import edge_laplacian_box_2d
from .prox_base import MahalanobisBase, WassersteinBase

__all__ = ["BoxWassersteinProx", "BoxMahalanobisProx", "make_box_proximal"]


class _CosineModel:
    """Shared pieces: the box's Laplacian symbol on the DCT-II index grid."""

    def __init__(self, grid):
        self.n, self.dim = grid.n, grid.dim
        self.symbol = box_laplacian_symbol(grid.n, grid.dim)
        self.shape = grid.shape

    @staticmethod
    def multiply(r, multiplier):
        rhat = sfft.dctn(r, type=2, norm="ortho")
        rhat *= multiplier
        return sfft.idctn(rhat, type=2, norm="ortho", overwrite_x=True)


class BoxWassersteinProx(_CosineModel, WassersteinBase):
    r""":math:`K = L_m` on the box with centred edge mobilities at ``p_star``;
    preconditioner :math:`S^{-1}[\tau\hat A + \tau^2\hat A^2\hat c]^{+}S^{-1}` by DCT-II,
    :math:`S = \operatorname{diag}(p^*)^{1/2}`
    (:class:`~densflow.flows.prox_base.WassersteinBase`).

    ``edge_mean(a, b)`` is the mobility of the edge between cells of densities ``a``
    and ``b`` (the arithmetic or logarithmic mean of :mod:`densflow.flows.proximal`)."""

    multigrid_boundary = "neumann"

    def __init__(self, grid, p_star, edge_mean):
        super().__init__(grid)
        self._bind(grid, p_star, edge_mean)

    @staticmethod
    def neighbour(p, axis):
        """``p`` moved one cell back along ``axis``; the last slice (a wall, whose edge
        is never read) repeats the last cell."""
        idx = np.minimum(np.arange(p.shape[axis]) + 1, p.shape[axis] - 1)
        return np.take(p, idx, axis=axis)

    def apply(self, x):
        """:math:`L_m x`."""
        x = np.ascontiguousarray(x, dtype=float)
        if self.dim == 1:
            return weighted_laplacian_box(x, self.mobilities[0], self.n)
        out = np.empty_like(x)
        edge_laplacian_box_2d(x, self.mobilities[0], self.mobilities[1], self.n, out)
        return out


class BoxMahalanobisProx(_CosineModel, MahalanobisBase):
    r""":math:`K = A^+` of the box (DCT-II; :class:`~densflow.flows.prox_base.MahalanobisBase`)."""

    def __init__(self, grid, p_star=None):
        super().__init__(grid)
        self._bind()

    def apply(self, x):
        """:math:`A^+ x`."""
        return self.multiply(np.asarray(x, dtype=float), self.inverse)


def make_box_proximal(metric, grid, p_star, edge_mean):
    """The proximal operator of ``metric`` (``"wasserstein"`` or ``"mahalanobis"``) on
    the box ``grid`` at ``p_star``, with the edge mobility ``edge_mean(a, b)``."""
    if metric == "wasserstein":
        return BoxWassersteinProx(grid, p_star, edge_mean)
    if metric == "mahalanobis":
        return BoxMahalanobisProx(grid, p_star)
    raise ValueError(f"metric must be 'wasserstein' or 'mahalanobis' on the box's own "
                     f"operators (Fisher–Rao's is the torus's), got {metric!r}")
