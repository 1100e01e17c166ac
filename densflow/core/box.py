r"""Difference operators on the no-flux (Neumann) box and the solves built on them
(:ref:`boxes`), and the choice of operators by a grid's boundary.

On :math:`[0, 1]^{\mathrm{dim}}` with ``n`` cells per axis, :math:`(D_d p)_e =
n\,(p_{i+e_d} - p_i)` on the :math:`n - 1` interior edges of each line (no wrap-around
edge), :math:`A = \sum_d D_d^\top D_d` is the Neumann Laplacian and
:math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d` takes the mobility of an
edge from its left cell, as the periodic grid does. :math:`A` is diagonalised by the
orthonormal DCT-II (``scipy.fft.dctn(type=2, norm="ortho")``) with eigenvalues

.. math:: \hat A(k) = \sum_d \big(2 n \sin(\pi k_d / 2n)\big)^2, \qquad k_d = 0, \dots, n-1.
"""

import numpy as np
import scipy.fft as sfft

from ..kernels import box as K
from ..kernels import cg as CG
from . import operators as P
from .box_lowmodes import low_mode_correction
from .operators import (MIXED_PRECISION_MAX_RTOL, LinearSolveError,
                        WeightedLaplacianSolver, dot, inverse_symbol)

__all__ = [
    "laplacian_box",
    "weighted_laplacian_box",
    "box_laplacian_symbol",
    "apply_box_laplacian_pinv",
    "BoxWeightedLaplacianSolver",
    "laplacian_for",
    "weighted_laplacian_for",
    "laplacian_pinv_for",
    "weighted_laplacian_solver",
]


def laplacian_box(p, n):
    r""":math:`A p` on the box (the Neumann :math:`-\Delta`)."""
    p = np.ascontiguousarray(p, dtype=float)
    out = np.empty_like(p)
    (K.laplacian_box_1d if p.ndim == 1 else K.laplacian_box_2d)(p, n, out)
    return out


def weighted_laplacian_box(x, mu, n):
    r""":math:`L_\mu x = \sum_d D_d^\top (\mu \odot D_d x)` on the box."""
    x = np.ascontiguousarray(x, dtype=float)
    out = np.empty_like(x)
    (K.weighted_laplacian_box_1d if x.ndim == 1 else K.weighted_laplacian_box_2d)(
        x, np.ascontiguousarray(mu, dtype=float), n, out)
    return out


def box_laplacian_symbol(n, dim):
    r"""Eigenvalues of the box's :math:`A` on the DCT-II index grid,
    :math:`\sum_d (2n \sin(\pi k_d/2n))^2`."""
    line = (2.0 * n * np.sin(np.pi * np.arange(n) / (2.0 * n))) ** 2
    if dim == 1:
        return line
    return line[:, None] + line[None, :]


def apply_box_laplacian_pinv(g, symbol=None, inverse=None):
    r"""Apply the box's :math:`A^+` by DCT-II: divide by the symbol, drop the constant mode.

    The result has zero mean and :math:`A^+ A x = x - \bar x`.
    """
    if inverse is None:
        inverse = inverse_symbol(symbol)
    ghat = sfft.dctn(g, type=2, norm="ortho")
    ghat *= inverse
    return sfft.idctn(ghat, type=2, norm="ortho", overwrite_x=True)


class BoxWeightedLaplacianSolver(WeightedLaplacianSolver):
    r"""Applies :math:`L_\mu^+` on the box for a fixed positive weight :math:`\mu`.

    * 1D: exact in :math:`O(N)`. With the flux :math:`q = \mu\,Dx` on the
      :math:`n-1` edges, :math:`D^\top q = r - \bar r` and no flux through the walls
      give :math:`q_i = -\tfrac1n \sum_{j \le i} (r_j - \bar r)`, and
      :math:`x_{i+1} = x_i + q_i/(n\mu_i)`.
    * 2D: conjugate gradients with the preconditioner :math:`P\mu^{-1/2} A^+
      \mu^{-1/2}P`, :math:`A^+` by DCT-II (the periodic solver's construction with the
      cosine transform in place of the FFT; the same float32 rule for the
      preconditioner's transforms), corrected on a few smooth modes
      (:mod:`densflow.core.box_lowmodes`, built at the first solve: 6–31 ms from 16² to
      256², 0.17 s at 512²). At the walls :math:`\mu^{1/2}` does not satisfy the
      Neumann condition, which puts a few outliers in the preconditioned spectrum: without
      the correction CG needs about twice the periodic solver's iterations on the
      paper's μ (32–34 to 1e-13 from 16² to 512², 20–21 to 1e-8), with it 15–19 and
      10–13 (the torus: 11–15 and 8–10).

    Parameters and failures are those of
    :class:`densflow.core.operators.WeightedLaplacianSolver`.
    """

    #: The preconditioner's transforms run in float32 (when :attr:`mixed`) for solves to
    #: at most this relative residual: on the box for every tolerance, unlike the torus
    #: (:data:`densflow.core.operators.MIXED_PRECISION_MAX_RTOL`). Measured on the
    #: paper's four 2D panels on the box (combined metric, uniform start, E <= 1e-12):
    #: the same first-order (18/19/13/17 at 64², 15/19/12/15 at 256², 16/16/12/16 at
    #: 512²) and Newton (3/2/6/3) iteration counts with either rule; the first-order
    #: runs took 1.91 -> 1.68 s at 256² and 9.67 -> 8.84 s at 512². A float64 DCT-II
    #: pair costs 2.4x a float32 one at 512² (4.0 against 1.7 ms), 2x an rfft pair.
    mixed_max_rtol = np.inf

    def __init__(self, mu, n, rtol=1e-13, maxiter=500):
        super().__init__(mu, n, rtol=rtol, maxiter=maxiter)
        if self.dim == 2:
            self._inv_symbol = inverse_symbol(box_laplacian_symbol(self.n, 2))
            self._inv_symbol32 = self._inv_symbol.astype(np.float32)
        self._correction = None
        self._corrected = False

    @property
    def correction(self):
        """The low-mode correction of the 2D preconditioner
        (:func:`densflow.core.box_lowmodes.low_mode_correction`; built at the first
        solve, ``None`` on small boxes)."""
        if not self._corrected:
            self._correction = low_mode_correction(
                self.mu, lambda x, mu: weighted_laplacian_box(x, mu, mu.shape[0]),
                lambda m: box_laplacian_symbol(m, 2))
            self._corrected = True
        return self._correction

    def _precondition(self, t, inverse, corr):
        ghat = sfft.dctn(t, type=2, norm="ortho")
        yb = None if corr is None else corr.take(ghat)
        ghat *= inverse
        if corr is not None:
            corr.add(yb, ghat)
        return sfft.idctn(ghat, type=2, norm="ortho", overwrite_x=True)

    def solve(self, r, rtol=None):
        """Return :math:`L_\\mu^+ r` (the mean of ``r`` is removed first); ``rtol``
        overrides the CG tolerance for this call (2D)."""
        r = np.ascontiguousarray(r, dtype=float)
        if self.dim == 1:
            out = np.empty_like(r)
            K.weighted_laplacian_pinv_box_1d(r, self._inv_mu, self.n, out)
            return out
        return self._solve_cg(r - r.mean(), self.rtol if rtol is None else rtol)

    def _solve_cg(self, r, rtol):
        rnorm0 = np.sqrt(dot(r, r))
        x = np.zeros_like(r)
        self.last_iterations = 0
        if rnorm0 == 0.0:
            return x
        res = r.copy()
        d = np.empty_like(r)
        ld = np.empty_like(r)
        scale = self._inv_sqrt_mu
        mixed = self.mixed and rtol <= self.mixed_max_rtol
        inverse = self._inv_symbol32 if mixed else self._inv_symbol
        corr = self.correction
        t = (scale * (res / rnorm0)).astype(inverse.dtype)
        rho = rnorm0
        t = self._precondition(t, inverse, corr)
        rz = CG.cg_direction(t, scale, res, d, 1.0, True, rho)
        it = 0
        rr = rnorm0 * rnorm0
        for it in range(1, self.maxiter + 1):
            rr, _ = K.cg_update_box(x, res, d, ld, self.mu, self.n, rz, scale, t, 1.0 / rho)
            if np.sqrt(rr) <= rtol * rnorm0:
                self.last_iterations = it
                x -= x.mean()
                return x
            t = self._precondition(t, inverse, corr)
            rz = CG.cg_direction(t, scale, res, d, rz, False, rho)
            if not np.isfinite(rz):
                break
            rho = np.sqrt(rr)
        raise LinearSolveError(
            f"the H^-1 term's linear solve (weighted Laplacian CG on the no-flux box) did "
            f"not reach rtol={rtol:g} in {it} iterations (relative residual "
            f"{np.sqrt(rr) / rnorm0:.2e}; mu spans max/min = {self.contrast:.1e}, beyond "
            f"about 1e9 in 2D this solve cannot be done in double precision)"
        )


# -- operators by boundary -----------------------------------------------------------
def laplacian_for(grid):
    r"""The map :math:`x \mapsto A x` of ``grid`` (periodic or box)."""
    n = grid.n
    if grid.periodic:
        return lambda x: P.laplacian(x, n)
    return lambda x: laplacian_box(x, n)


def weighted_laplacian_for(grid):
    r"""The function ``(x, mu, n) -> L_mu x`` of ``grid``'s boundary."""
    return P.weighted_laplacian if grid.periodic else weighted_laplacian_box


def laplacian_pinv_for(grid):
    r"""The map :math:`g \mapsto A^+ g` of ``grid``: FFT on the torus, DCT-II on the box."""
    if grid.periodic:
        inverse = inverse_symbol(P.laplacian_symbol(grid.n, grid.dim))
        return lambda g: P.apply_laplacian_pinv(g, inverse=inverse)
    inverse = inverse_symbol(box_laplacian_symbol(grid.n, grid.dim))
    return lambda g: apply_box_laplacian_pinv(g, inverse=inverse)


def weighted_laplacian_solver(mu, grid, **options):
    r"""The :math:`L_\mu^+` solver of ``grid``'s boundary
    (:class:`~densflow.core.operators.WeightedLaplacianSolver` or
    :class:`BoxWeightedLaplacianSolver`)."""
    cls = WeightedLaplacianSolver if grid.periodic else BoxWeightedLaplacianSolver
    return cls(mu, grid.n, **options)
