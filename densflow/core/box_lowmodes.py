r"""A low-mode (Galerkin) correction of the 2D box's :math:`L_\mu^+` preconditioner
(:ref:`boxes`).

The conjugate gradients of :class:`densflow.core.box.BoxWeightedLaplacianSolver` are
preconditioned by :math:`B = F F^\top`, :math:`F = S^{-1}\,\mathcal C^{-1}\hat A^{+1/2}`,
with :math:`S = \operatorname{diag}(\mu^{1/2})`, :math:`\mathcal C` the orthonormal
DCT-II and :math:`\hat A` the Neumann Laplacian's symbol. On the box
:math:`\mu^{1/2}` has a normal derivative at the walls, so :math:`\mu^{1/2}`-scaled
functions meet a Robin, not a Neumann, condition: the spectrum of
:math:`C = F^\top L_\mu F` has a few outliers on either side of 1 (at 32² to 128² on the
paper's μ: about 0.23, 0.25, 0.32 below and 2.7, 3.6, 3.7 above, the same at every
size, whereas the torus's spectrum lies in [0.44, 2.1]), and CG needs about twice the
torus's iterations.

The correction replaces :math:`C` by its Galerkin inverse on a small subspace
:math:`Z` of the DCT coordinates (orthonormal columns):

.. math::

    B_Z = F\big[(I - ZZ^\top) + Z G^{-1} Z^\top\big]F^\top, \qquad G = Z^\top C Z,

symmetric positive definite for any :math:`Z` (:math:`G` is), and equal to :math:`B`
off :math:`Z`. :math:`Z` is the span of the ``modes`` eigenvectors of :math:`C` farthest
from 1 on a coarse box (``coarse`` cells per axis, μ averaged onto its cells; a few tens
of Lanczos products there), kept on the lowest ``block`` × ``block`` DCT frequencies
(the outliers are smooth: 91–99 % of their energy lies in the lowest 16 × 16 at 128²)
and orthonormalised; :math:`G` is formed on the fine box with ``modes`` products. The
correction costs two small dense products per CG iteration.
"""

import numpy as np
import scipy.fft as sfft
import scipy.sparse.linalg as spl

__all__ = ["LowModeCorrection", "low_mode_correction", "COARSE", "MODES", "BLOCK", "MIN_N"]

#: Cells per axis of the coarse box on which the outlying modes are found.
COARSE = 32
#: Number of corrected modes.
MODES = 24
#: The modes are kept on the lowest BLOCK x BLOCK DCT frequencies.
BLOCK = 24
#: Boxes with fewer cells per axis are not corrected.
MIN_N = 16


def _average_matrix(n, m):
    """``(m, n)`` matrix averaging ``n`` cells of ``[0, 1]`` onto ``m`` cells (overlaps)."""
    fine = np.arange(n + 1) / n
    coarse = np.arange(m + 1) / m
    R = np.zeros((m, n))
    for i in range(m):
        lo = np.maximum(fine[:-1], coarse[i])
        hi = np.minimum(fine[1:], coarse[i + 1])
        R[i] = np.maximum(hi - lo, 0.0) * m
    return R


class _Scaled:
    r""":math:`F`, :math:`F^\top` and :math:`C = F^\top L F` of one box (DCT coordinates)."""

    def __init__(self, mu, operator, symbol):
        self.mu, self.n = mu, mu.shape[0]
        self.inv_sqrt_mu = 1.0 / np.sqrt(mu)
        with np.errstate(divide="ignore"):
            self.half = np.where(symbol > 0, 1.0 / np.sqrt(np.where(symbol > 0, symbol, 1.0)), 0.0)
        self.operator = operator

    def F(self, h):
        return sfft.idctn(h * self.half, type=2, norm="ortho") * self.inv_sqrt_mu

    def Ft(self, v):
        return sfft.dctn(v * self.inv_sqrt_mu, type=2, norm="ortho") * self.half

    def C(self, h):
        return self.Ft(self.operator(self.F(h), self.mu))


class LowModeCorrection:
    r"""The correction :math:`\hat A^{+1/2} Z (G^{-1} - I) Z^\top \hat A^{+1/2}` in DCT
    coordinates, for :meth:`apply`.

    Attributes
    ----------
    basis : ndarray, shape (block * block, modes)
        :math:`\hat A^{+1/2} Z` on the block (row-major frequencies).
    middle : ndarray, shape (modes, modes)
        :math:`G^{-1} - I`.
    block : int
    """

    def __init__(self, basis, middle, block):
        self.basis, self.middle, self.block = basis, middle, block

    def take(self, y):
        """The block of ``y`` the correction reads (a float64 copy)."""
        b = self.block
        return np.array(y[:b, :b], dtype=float).reshape(-1)

    def add(self, yb, out):
        r"""``out[:b, :b] += basis middle basisᵀ yb``, ``yb`` = :meth:`take` of the DCT
        of the scaled residual (before the symbol is applied)."""
        b = self.block
        delta = self.basis @ (self.middle @ (self.basis.T @ yb))
        out[:b, :b] += delta.reshape(b, b).astype(out.dtype, copy=False)


def low_mode_correction(mu, operator, symbol_of, coarse=COARSE, modes=MODES, block=BLOCK):
    r"""The :class:`LowModeCorrection` of the box weight ``mu`` (``(n, n)``), or ``None``
    when the box is smaller than :data:`MIN_N` or the subspace cannot be formed.

    Parameters
    ----------
    mu : ndarray
        Positive weight, shape ``(n, n)``.
    operator : callable
        ``(x, mu) -> L_mu x`` on a box of ``mu``'s shape.
    symbol_of : callable
        ``m -> `` the Neumann Laplacian's DCT symbol on an ``m x m`` box.
    """
    n = mu.shape[0]
    if n < MIN_N:
        return None
    m = min(coarse, n)
    R = _average_matrix(n, m)
    small = _Scaled(R @ mu @ R.T, operator, symbol_of(m))

    def shifted(v):  # C - I on the coarse DCT coordinates; the constant mode -> 0
        h = v.reshape(m, m)
        out = small.C(h) - h
        out[0, 0] = 0.0
        return out.reshape(-1)

    k = min(modes, m * m - 2)
    v0 = np.cos(np.arange(m * m) * 0.7071)  # fixed start: the same subspace every time
    lin = spl.LinearOperator((m * m, m * m), shifted, dtype=float)
    try:
        _, vecs = spl.eigsh(lin, k=k, which="LM", tol=1e-2, v0=v0, maxiter=50 * k)
    except spl.ArpackNoConvergence as exc:
        vecs = exc.eigenvectors
    except spl.ArpackError:
        return None
    b = min(block, m)
    Z = vecs.reshape(m, m, -1)[:b, :b].reshape(b * b, -1).copy()
    Z[0] = 0.0  # the constant mode is not in the range
    if Z.shape[1] == 0:
        return None
    Z, _ = np.linalg.qr(Z)
    fine = _Scaled(mu, operator, symbol_of(n))
    CZ = np.empty_like(Z)
    for j in range(Z.shape[1]):
        h = np.zeros((n, n))
        h[:b, :b] = Z[:, j].reshape(b, b)
        CZ[:, j] = fine.C(h)[:b, :b].reshape(-1)
    G = Z.T @ CZ
    w, U = np.linalg.eigh(0.5 * (G + G.T))
    if not (np.all(np.isfinite(w)) and w.min() > 1e-8 * w.max()):
        return None
    middle = (U / w) @ U.T - np.eye(w.size)
    basis = fine.half[:b, :b].reshape(-1, 1) * Z
    return LowModeCorrection(basis, middle, b)
