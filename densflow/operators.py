r"""Difference operators on periodic grids and the linear solves built on them.

Conventions (DESIGN.md §1): :math:`(D_d p)_i = n\,(p_{i+e_d} - p_i)` (periodic forward
difference scaled by ``n``), :math:`A = -\Delta = \sum_d D_d^\top D_d` and the weighted
Laplacian :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`.
"""

import numpy as np

__all__ = [
    "forward_difference",
    "forward_difference_adjoint",
    "laplacian",
    "laplacian_symbol",
    "apply_laplacian_pinv",
    "weighted_laplacian",
    "WeightedLaplacianSolver",
]


def forward_difference(p, axis, n):
    r""":math:`(D p)_i = n (p_{i+1} - p_i)` along ``axis`` (periodic)."""
    return n * (np.roll(p, -1, axis=axis) - p)


def forward_difference_adjoint(q, axis, n):
    r""":math:`(D^\top q)_i = n (q_{i-1} - q_i)` along ``axis`` (periodic)."""
    return n * (np.roll(q, 1, axis=axis) - q)


def laplacian(p, n):
    r""":math:`A p = \sum_d D_d^\top D_d p` (the positive semidefinite :math:`-\Delta`)."""
    out = np.zeros_like(p, dtype=float)
    for axis in range(p.ndim):
        out += forward_difference_adjoint(forward_difference(p, axis, n), axis, n)
    return out


def weighted_laplacian(x, mu, n):
    r""":math:`L_\mu x = \sum_d D_d^\top (\mu \odot D_d x)`."""
    out = np.zeros_like(x, dtype=float)
    for axis in range(x.ndim):
        out += forward_difference_adjoint(mu * forward_difference(x, axis, n), axis, n)
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


def apply_laplacian_pinv(g, symbol):
    r"""Apply :math:`A^+` with FFTs: divide by the symbol, drop the constant mode.

    ``symbol`` is :func:`laplacian_symbol` for the grid of ``g``. The result has
    zero mean, and :math:`A^+ A x = x - \bar x`.
    """
    ghat = np.fft.rfftn(g)
    inv = np.zeros_like(symbol)
    np.divide(1.0, symbol, out=inv, where=symbol > 0)
    return np.fft.irfftn(ghat * inv, s=g.shape)


class WeightedLaplacianSolver:
    r"""Applies :math:`L_\mu^+` for a fixed positive weight :math:`\mu`.

    The result :math:`x = L_\mu^+ r` is the zero-mean solution of :math:`L_\mu x = r`
    for a zero-mean right-hand side (the null space of :math:`L_\mu` is the constants).

    * 1D: exact in :math:`O(N)` by two cumulative sums. With :math:`q = \mu\,Dx`,
      :math:`D^\top q = r` gives :math:`q_i = C - \tfrac1n\sum_{j\le i} r_j`; periodicity
      of :math:`x` fixes :math:`C` by :math:`\sum_i q_i/\mu_i = 0`, and
      :math:`x_{i+1} = x_i + q_i/(n\mu_i)`.
    * 2D: conjugate gradients on the zero-mean subspace, preconditioned by
      :math:`\bar\mu^{-1} A^+` (FFT), whose condition number is at most
      :math:`\max\mu/\min\mu`. Each iteration costs :math:`O(N\log N)`.

    Parameters
    ----------
    mu : ndarray
        Positive weight of the grid's shape.
    n : int
        Points per axis.
    rtol : float
        2D only: relative residual at which CG stops.
    maxiter : int
        2D only: iteration cap; reaching it raises ``RuntimeError``.
    """

    def __init__(self, mu, n, rtol=1e-13, maxiter=500):
        self.mu = np.asarray(mu, dtype=float)
        self.n = int(n)
        self.dim = self.mu.ndim
        self.rtol = float(rtol)
        self.maxiter = int(maxiter)
        if self.dim == 1:
            self._inv_mu = 1.0 / self.mu
            self._sum_inv_mu = self._inv_mu.sum()
        else:
            self._symbol = laplacian_symbol(self.n, self.dim)
            self._scale = float(np.exp(np.mean(np.log(self.mu))))
        self.last_iterations = 0

    def solve(self, r):
        """Return :math:`L_\\mu^+ r` for a right-hand side ``r`` (its mean is removed)."""
        r = r - r.mean()
        if self.dim == 1:
            return self._solve_1d(r)
        return self._solve_cg(r)

    def _solve_1d(self, r):
        n = self.n
        cum = np.cumsum(r) / n
        c = np.dot(cum, self._inv_mu) / self._sum_inv_mu
        v = (c - cum) * self._inv_mu
        x = np.empty_like(r)
        x[0] = 0.0
        np.cumsum(v[:-1] / n, out=x[1:])
        return x - x.mean()

    def _precondition(self, r):
        return apply_laplacian_pinv(r, self._symbol) / self._scale

    def _solve_cg(self, r):
        rnorm0 = np.linalg.norm(r)
        x = np.zeros_like(r)
        self.last_iterations = 0
        if rnorm0 == 0.0:
            return x
        res = r.copy()
        z = self._precondition(res)
        d = z.copy()
        rz = np.vdot(res, z)
        for it in range(1, self.maxiter + 1):
            ld = weighted_laplacian(d, self.mu, self.n)
            alpha = rz / np.vdot(d, ld)
            x += alpha * d
            res -= alpha * ld
            if np.linalg.norm(res) <= self.rtol * rnorm0:
                self.last_iterations = it
                return x - x.mean()
            z = self._precondition(res)
            rz_new = np.vdot(res, z)
            d = z + (rz_new / rz) * d
            rz = rz_new
        raise RuntimeError(
            f"weighted Laplacian CG did not reach rtol={self.rtol:g} in {self.maxiter} "
            f"iterations (residual {np.linalg.norm(res) / rnorm0:.2e})"
        )
