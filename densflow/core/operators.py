r"""Difference operators on periodic grids and the linear solves built on them.

Conventions (:ref:`grid-densities`): :math:`(D_d p)_i = n\,(p_{i+e_d} - p_i)` (periodic forward
difference scaled by ``n``), :math:`A = -\Delta = \sum_d D_d^\top D_d` and the weighted
Laplacian :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`. Stencils run in
numba kernels (:mod:`densflow.kernels.stencils`), FFTs in :mod:`scipy.fft`, all on one thread.
"""

import numpy as np
import scipy.fft as sfft

from ..kernels import cg as CG
from ..kernels import stencils as K

__all__ = [
    "dot",
    "forward_difference",
    "forward_difference_adjoint",
    "laplacian",
    "laplacian_symbol",
    "apply_laplacian_pinv",
    "weighted_laplacian",
    "WeightedLaplacianSolver",
    "LinearSolveError",
]


class LinearSolveError(RuntimeError):
    """An inner linear solve did not reach its tolerance.

    :func:`densflow.solve` turns it into a result with ``converged=False`` and a
    message (the run file marks the run failed); it never escapes to the caller.
    """


def dot(a, b):
    """Inner product of two arrays of the same shape, on one thread.

    (BLAS ``ddot`` starts threads for vectors of some 10^4 entries, and two such
    processes on a 2-core machine then spin against each other.)
    """
    if a.flags.c_contiguous and b.flags.c_contiguous:
        return K.dot_flat(a, b)
    return K.dot_serial(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1))


def forward_difference(p, axis, n):
    r""":math:`(D p)_i = n (p_{i+1} - p_i)` along ``axis`` (periodic)."""
    return n * (np.roll(p, -1, axis=axis) - p)


def forward_difference_adjoint(q, axis, n):
    r""":math:`(D^\top q)_i = n (q_{i-1} - q_i)` along ``axis`` (periodic)."""
    return n * (np.roll(q, 1, axis=axis) - q)


def laplacian(p, n):
    r""":math:`A p = \sum_d D_d^\top D_d p` (the positive semidefinite :math:`-\Delta`)."""
    p = np.ascontiguousarray(p, dtype=float)
    out = np.empty_like(p)
    (K.laplacian_1d if p.ndim == 1 else K.laplacian_2d)(p, n, out)
    return out


def weighted_laplacian(x, mu, n):
    r""":math:`L_\mu x = \sum_d D_d^\top (\mu \odot D_d x)`."""
    x = np.ascontiguousarray(x, dtype=float)
    out = np.empty_like(x)
    (K.weighted_laplacian_1d if x.ndim == 1 else K.weighted_laplacian_2d)(
        x, np.ascontiguousarray(mu, dtype=float), n, out)
    return out


def laplacian_symbol(n, dim):
    r"""Eigenvalues of :math:`A` on the ``rfftn`` frequency grid.

    .. math:: \hat A(k) = \sum_d 4 n^2 \sin^2(\pi k_d / n).
    """
    full = 4.0 * n**2 * np.sin(np.pi * np.arange(n) / n) ** 2
    half = full[: n // 2 + 1]
    if dim == 1:
        return half
    return full[:, None] + half[None, :]


def inverse_symbol(symbol):
    """``1/symbol`` with the zero (constant) mode mapped to 0."""
    inv = np.zeros_like(symbol)
    np.divide(1.0, symbol, out=inv, where=symbol > 0)
    return inv


def apply_laplacian_pinv(g, symbol=None, inverse=None):
    r"""Apply :math:`A^+` with FFTs: divide by the symbol, drop the constant mode.

    ``symbol`` is :func:`laplacian_symbol` for the grid of ``g`` (or pass its
    :func:`inverse_symbol` as ``inverse`` to save the division). The result has zero
    mean, and :math:`A^+ A x = x - \bar x`.
    """
    if inverse is None:
        inverse = inverse_symbol(symbol)
    axes = tuple(range(g.ndim))
    ghat = sfft.rfftn(g, axes=axes)
    ghat *= inverse
    return sfft.irfftn(ghat, s=g.shape, axes=axes)


#: The 1D solve (cumulative sums) is refused, with :class:`LinearSolveError`, when its
#: relative residual on probe right-hand sides exceeds this: it has then lost every
#: digit. Its rounding grows with ``max mu / min mu`` (about 1e-16 times it at n = 512:
#: contrast 5e8 gives 1e-6, 1e13 gives 5e-3, 4e15 gives 1, 3e43 gives 5e7).
ONE_D_MAX_RESIDUAL = 1e-2

#: The 2D solve applies its FFT preconditioner in float32 (the residual, solution and
#: every inner product stay float64) when ``max mu / min mu`` is at most this. The
#: float32 FFT pair takes half the time of the float64 one; the preconditioner's
#: rounding (about 1e-7 of its largest entries) costs CG iterations where mu, and so
#: the preconditioned residual, spans many orders of magnitude. Measured at 256^2 on
#: ``exp(A sin 2 pi x1 sin 2 pi x2)``, iterations to rtol = 1e-13 (float64 -> mixed):
#: contrast 7 (A = 1) 19 -> 20, 400 (A = 3) 23 -> 27, 2.2e4 (A = 5) 31 -> 40,
#: 4.9e8 (A = 10) 66 -> 101; the solutions agree to the tolerance.
MIXED_PRECISION_CONTRAST = 1e4

#: ... and only for solves to a relative residual of at most this. Loose solves stop
#: before later iterations correct the float32 rounding, and the first-order method's
#: line search, which uses ``L_mu^+ s`` at 1e-8, then took more steps (2D 64^2, paper's
#: mu, weights (1, 3e-4, 0) and (1, 3e-4, 1e-4): 27 and 26 iterations in float64, 38
#: and 29 with a float32 line solve, 27 and 26 again with this rule).
MIXED_PRECISION_MAX_RTOL = 1e-10


class WeightedLaplacianSolver:
    r"""Applies :math:`L_\mu^+` for a fixed positive weight :math:`\mu`.

    The result :math:`x = L_\mu^+ r` is the zero-mean solution of :math:`L_\mu x = r -
    \bar r` (the null space of :math:`L_\mu` is the constants).

    * 1D: exact in :math:`O(N)` by two cumulative sums. With :math:`q = \mu\,Dx`,
      :math:`D^\top q = r` gives :math:`q_i = C - \tfrac1n\sum_{j\le i} r_j`; periodicity
      of :math:`x` fixes :math:`C` by :math:`\sum_i q_i/\mu_i = 0`, and
      :math:`x_{i+1} = x_i + q_i/(n\mu_i)`.
    * 2D: conjugate gradients on the zero-mean subspace with the preconditioner
      :math:`P\,\mu^{-1/2} A^+ \mu^{-1/2} P` (:math:`P` removes the mean; :math:`A^+` by
      FFT). Since :math:`L_\mu \approx \mu^{1/2} A\, \mu^{1/2}` for smooth
      :math:`\mu`, about 20 iterations reach ``rtol = 1e-13`` for the paper's
      :math:`\mu` at every grid size, half of what :math:`A^+/\bar\mu` needs.
      Each iteration costs :math:`O(N \log N)`. μ is fixed for a run, so all of this
      is set up once. For :math:`\max\mu/\min\mu \le` :data:`MIXED_PRECISION_CONTRAST`
      and ``rtol`` :math:`\le` :data:`MIXED_PRECISION_MAX_RTOL` the preconditioner's FFT
      pair runs in float32, which halves its cost; the residual that stops CG is the
      float64 one, so the tolerance means the same.

    Parameters
    ----------
    mu : ndarray
        Positive weight of the grid's shape.
    n : int
        Points per axis.
    rtol : float
        2D only: relative residual at which CG stops.
    maxiter : int
        2D only: iteration cap; reaching it (or a residual that is no longer finite)
        raises :class:`LinearSolveError`.

    Notes
    -----
    The zero-mean solution cannot be represented to ``rtol = 1e-13`` once μ spans
    more than about 10 orders of magnitude (``max μ / min μ``): the solution is huge
    where μ is tiny, and after removing its mean the values where μ is large keep
    too few significant digits. Measured at 64²,
    :math:`V = A \sin 2\pi x_1 \sin 2\pi x_2`: A = 5 (contrast 2e4) 25–35
    iterations, A = 10 (5e8) 62–82, A ≥ 11 (3.6e9) no convergence even in 20000
    iterations; a sparse direct solve reaches 1e-14 with the constant fixed where μ
    is largest but only 1e-1 (A = 20) after the mean is removed. Raising the cap
    does not help, so the solver fails after ``maxiter`` iterations.
    """

    def __init__(self, mu, n, rtol=1e-13, maxiter=500):
        self.mu = np.ascontiguousarray(mu, dtype=float)
        self.n = int(n)
        self.dim = self.mu.ndim
        self.rtol = float(rtol)
        self.maxiter = int(maxiter)
        self._inv_mu = 1.0 / self.mu
        #: max mu / min mu
        self.contrast = float(self.mu.max() / self.mu.min())
        #: whether the 2D preconditioner's FFTs run in float32 (see MIXED_PRECISION_CONTRAST)
        self.mixed = self.dim == 2 and self.contrast <= MIXED_PRECISION_CONTRAST
        if self.dim == 2:
            self._inv_symbol = inverse_symbol(laplacian_symbol(self.n, self.dim))
            self._inv_symbol32 = self._inv_symbol.astype(np.float32)
            self._inv_sqrt_mu = np.sqrt(self._inv_mu)
        self.last_iterations = 0
        #: 1D: the largest relative residual of the solve on the probes (see
        #: :data:`ONE_D_MAX_RESIDUAL`); 2D: None (CG checks every solve)
        self.accuracy = self._probe() if self.dim == 1 else None

    def _probe(self):
        """The 1D solve's relative residual :math:`\\|L_\\mu x - (r - \\bar r)\\| /
        \\|r - \\bar r\\|` on two right-hand sides: uniform minus μ (a first gradient's),
        and the highest frequency (the largest)."""
        worst = 0.0
        for r in (1.0 / self.n - self.mu, np.where(np.arange(self.n) % 2 == 0, 1.0, -1.0)):
            r = r - r.mean()
            norm = np.sqrt(dot(r, r))
            if norm == 0.0:
                continue
            x = np.empty_like(r)
            K.weighted_laplacian_pinv_1d(r, self._inv_mu, self.n, x)
            res = weighted_laplacian(x, self.mu, self.n) - r
            rel = np.sqrt(dot(res, res)) / norm
            worst = max(worst, rel if np.isfinite(rel) else np.inf)
        return worst

    def solve(self, r, rtol=None):
        """Return :math:`L_\\mu^+ r` (the mean of ``r`` is removed first); ``rtol``
        overrides the CG tolerance for this call (2D).

        Raises
        ------
        LinearSolveError
            2D: CG did not reach ``rtol``; 1D: the solve loses every digit for this μ
            (:attr:`accuracy` above :data:`ONE_D_MAX_RESIDUAL`).
        """
        r = np.ascontiguousarray(r, dtype=float)
        if self.dim == 1:
            if self.accuracy > ONE_D_MAX_RESIDUAL:
                raise LinearSolveError(
                    f"the H^-1 term's linear solve (1D cumulative sums) loses every digit: "
                    f"relative residual {self.accuracy:.1e} > {ONE_D_MAX_RESIDUAL:g} (mu spans "
                    f"max/min = {self.contrast:.1e}, beyond about 1e13 in 1D this solve "
                    f"cannot be done in double precision)")
            out = np.empty_like(r)
            K.weighted_laplacian_pinv_1d(r, self._inv_mu, self.n, out)
            return out
        return self._solve_cg(r - r.mean(), self.rtol if rtol is None else rtol)

    def _solve_cg(self, r, rtol):
        # PCG with the vector work fused around the preconditioner's FFT pair
        # (densflow.kernels.cg); the FFT pair in float32 when self.mixed and the
        # tolerance is tight
        rnorm0 = np.sqrt(dot(r, r))
        x = np.zeros_like(r)
        self.last_iterations = 0
        if rnorm0 == 0.0:
            return x
        res = r.copy()
        d = np.empty_like(r)
        ld = np.empty_like(r)
        scale = self._inv_sqrt_mu
        mixed = self.mixed and rtol <= MIXED_PRECISION_MAX_RTOL
        inverse = self._inv_symbol32 if mixed else self._inv_symbol
        t = (scale * (res / rnorm0)).astype(inverse.dtype)
        rho = rnorm0
        axes = (0, 1)
        t = sfft.irfftn(sfft.rfftn(t, axes=axes) * inverse, s=r.shape, axes=axes)
        rz = CG.cg_direction(t, scale, res, d, 1.0, True, rho)
        it = 0
        rr = rnorm0 * rnorm0
        for it in range(1, self.maxiter + 1):
            rr, _ = CG.cg_update(x, res, d, ld, self.mu, self.n, rz, scale, t, 1.0 / rho)
            if np.sqrt(rr) <= rtol * rnorm0:
                self.last_iterations = it
                x -= x.mean()
                return x
            ghat = sfft.rfftn(t, axes=axes)
            ghat *= inverse
            t = sfft.irfftn(ghat, s=r.shape, axes=axes, overwrite_x=True)
            rz = CG.cg_direction(t, scale, res, d, rz, False, rho)
            if not np.isfinite(rz):
                break
            rho = np.sqrt(rr)
        raise LinearSolveError(
            f"the H^-1 term's linear solve (weighted Laplacian CG) did not reach "
            f"rtol={rtol:g} in {it} iterations (relative residual "
            f"{np.sqrt(rr) / rnorm0:.2e}; mu spans max/min = "
            f"{self.mu.max() / self.mu.min():.1e}, beyond about 1e9 in 2D this solve "
            f"cannot be done in double precision)"
        )
