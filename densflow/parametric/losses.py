r"""Losses of a push-forward model, with their gradient in :math:`\theta` (issue 6).

Every loss has ``value_and_grad(model, theta, z) -> (value, gradient)``. The batch of
latent points ``z`` is fixed by the caller, so a line search compares values at the same
``z``. The sample-based losses (:class:`MMD`, :class:`Sinkhorn`) compute the gradient
:math:`\nabla_x \mathcal L` with respect to the samples :math:`x_b = g_\theta(z_b)` and
pull it back with ``model.vjp``; :class:`W2Gaussian` is a closed form in the model's
moments.
"""

import numbers

import numpy as np
from scipy.spatial.distance import cdist

from ._sinkhorn import potentials, symmetric_potential
from ..core.validation import as_real_array
from .models import Gaussian

__all__ = ["Loss", "W2Gaussian", "MMD", "Sinkhorn", "SinkhornError", "sq_distances"]


def _positive(value, name):
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _samples(y, name):
    arr = as_real_array(y, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite array of shape (M, d) with M >= 2, "
                         f"got shape {np.shape(y)}")
    return arr


#: Up to this dimension :func:`sq_distances` uses ``scipy.spatial.distance.cdist`` (one
#: exact pass in C); above it the matrix-product expansion is faster (one BLAS call).
CDIST_MAX_DIM = 8


def sq_distances(a, b, shift=None):
    r"""Squared distances :math:`|a_i - b_j|^2`, shape ``(len(a), len(b))``, never an
    ``(n, m, d)`` array: ``cdist(a, b, "sqeuclidean")`` for :math:`d \le`
    :data:`CDIST_MAX_DIM`, else :math:`|a_i|^2 + |b_j|^2 - 2a_i\cdot b_j` (one matrix
    product) after subtracting ``shift`` from both (default the mean of ``b``: it bounds
    the cancellation error by :math:`\sim 10^{-16}\,\max|a_i - \bar b|^2`), clipped at 0."""
    if a.shape[1] <= CDIST_MAX_DIM:
        return cdist(a, b, "sqeuclidean")
    shift = b.mean(axis=0) if shift is None else shift
    a, b = a - shift, b - shift
    d2 = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :]
    d2 -= 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0, out=d2)


def _psd_sqrt(S, inverse=False):
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    w = np.clip(w, 0.0, None)
    r = np.sqrt(w)
    if inverse:
        r = 1.0 / r
    return (V * r) @ V.T


def _check_regular(Sigma, what):
    """Raise ``numpy.linalg.LinAlgError`` (a run reports it) unless the model's covariance
    is finite and regular."""
    if not np.all(np.isfinite(Sigma)):
        raise np.linalg.LinAlgError(f"{what} needs a finite covariance; the model's holds "
                                    "NaN or inf (NaN parameters?)")
    low = float(np.linalg.eigvalsh(0.5 * (Sigma + Sigma.T)).min())
    if not low > 1e-300:
        raise np.linalg.LinAlgError(f"{what} needs a regular covariance; the model's is "
                                    f"singular at theta (smallest eigenvalue {low:.3e}: a zero "
                                    "scale?)")


class Loss:
    """Base class of the sample-based losses."""

    name = None

    def value_and_grad(self, model, theta, z):
        """``(L, dL/dtheta)`` at the samples ``model.sample(theta, z)``."""
        x = model.sample(theta, z)
        value, gx = self.value_and_grad_samples(x)
        return value, model.vjp(theta, z, gx)

    def value(self, model, theta, z):
        return self.value_and_grad(model, theta, z)[0]

    def value_and_grad_samples(self, x):
        raise NotImplementedError


class W2Gaussian(Loss):
    r"""Squared 2-Wasserstein distance from a :class:`Gaussian` model to :math:`N(\mu, S)`.

    .. math::

        W_2^2 = |m-\mu|^2 + \operatorname{tr}\bigl(\Sigma + S
                - 2 (S^{1/2}\Sigma S^{1/2})^{1/2}\bigr),
        \qquad
        \frac{\partial W_2^2}{\partial\Sigma} = I - T,\quad
        T = S^{1/2}(S^{1/2}\Sigma S^{1/2})^{-1/2} S^{1/2},

    with :math:`(m, \Sigma)` the model's moments; :math:`T` is the optimal map's
    matrix. The gradient is exact (the population value, not a sample estimate),
    pulled back by :meth:`Gaussian.pullback_covariance`; ``z`` is ignored.
    It needs a regular :math:`\Sigma` for the gradient.
    """

    name = "w2_gaussian"

    def __init__(self, target_mean, target_cov):
        self.mean = np.atleast_1d(as_real_array(target_mean, "target_mean"))
        if self.mean.ndim != 1 or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"target_mean must be a finite 1D array, got {target_mean!r}")
        d = self.mean.size
        S = as_real_array(target_cov, "target_cov")
        S = S * np.eye(d) if S.ndim == 0 else S
        if not np.all(np.isfinite(S)):
            raise ValueError(f"target_cov must be finite, got {np.asarray(target_cov).tolist()!r}")
        if S.shape != (d, d) or not np.allclose(S, S.T) or np.linalg.eigvalsh(S).min() <= 0:
            raise ValueError(f"target_cov must be a symmetric positive definite ({d}, {d}) "
                             f"matrix (or a positive scalar), got {np.asarray(target_cov)!r}")
        self.cov = S
        self._sqrt = _psd_sqrt(S)

    def value_and_grad(self, model, theta, z=None):
        if not isinstance(model, Gaussian) or model.dim != self.mean.size:
            raise ValueError(f"W2Gaussian needs a Gaussian model of dimension {self.mean.size}, "
                             f"got {model!r}")
        m, Sigma = model.moments(theta)
        _check_regular(Sigma, "W2Gaussian: the gradient")
        R = self._sqrt
        M = R @ Sigma @ R
        Mh = _psd_sqrt(M)
        diff = m - self.mean
        value = float(diff @ diff + np.trace(Sigma) + np.trace(self.cov) - 2 * np.trace(Mh))
        T = R @ _psd_sqrt(M, inverse=True) @ R
        gS = np.eye(m.size) - T
        return max(value, 0.0), model.pullback_covariance(theta, 2 * diff, gS)


class MMD(Loss):
    r"""Unbiased squared maximum mean discrepancy with a Gaussian kernel
    :math:`k(x, y) = \exp(-|x-y|^2 / (2\sigma^2))`:

    .. math::

        \mathrm{MMD}_u^2 = \frac{1}{B(B-1)}\sum_{i\ne j} k(x_i, x_j)
          - \frac{2}{BM}\sum_{i, j} k(x_i, y_j)
          + \frac{1}{M(M-1)}\sum_{i\ne j} k(y_i, y_j),

    and its gradient in the samples, :math:`\nabla_{x_i} k(x_i, w) = -(x_i - w)\,k/\sigma^2`.

    Parameters
    ----------
    target_samples : array (M, d)
    bandwidth : float
        :math:`\sigma > 0`.

    Notes
    -----
    Vectorised: the kernel matrices come from :func:`sq_distances` (``cdist`` or one
    matrix product each, never an ``(B, M, d)`` array) and the gradient from two matrix products,
    :math:`O((B^2 + BM)d)` flops and :math:`O(B^2 + BM)` memory
    (``benchmarks/parametric_losses.py`` times it against the direct ``cdist`` computation).
    """

    name = "mmd"

    def __init__(self, target_samples, bandwidth=1.0):
        self.y = _samples(target_samples, "target_samples")
        self.bandwidth = _positive(bandwidth, "bandwidth")
        self._shift = self.y.mean(axis=0)
        M = self.y.shape[0]
        Kyy = self._kernel(self.y, self.y)
        self._yy = (Kyy.sum() - np.trace(Kyy)) / (M * (M - 1))

    def _kernel(self, a, b):
        K = sq_distances(a, b, self._shift)
        K *= -0.5 / self.bandwidth ** 2
        return np.exp(K, out=K)

    def value_and_grad_samples(self, x):
        x = np.asarray(x, dtype=float)
        if x.size and not np.all(np.isfinite(x)):  # diverged parameters or a NaN batch
            raise FloatingPointError(f"MMD: the model's samples hold "
                                     f"{np.count_nonzero(~np.isfinite(x))} NaN or inf entries "
                                     "(NaN parameters or a NaN latent batch?)")
        x = _samples(x, "samples")
        if x.shape[1] != self.y.shape[1]:
            raise ValueError(f"samples have dimension {x.shape[1]}, the target {self.y.shape[1]}")
        B, M = x.shape[0], self.y.shape[0]
        Kxx = self._kernel(x, x)
        np.fill_diagonal(Kxx, 0.0)
        Kxy = self._kernel(x, self.y)
        sxx, sxy = Kxx.sum(1), Kxy.sum(1)      # row sums serve the value and the gradient
        value = sxx.sum() / (B * (B - 1)) - 2 * sxy.sum() / (B * M) + self._yy
        cx, cy = 2.0 / (B * (B - 1)), 2.0 / (B * M)
        rows = cx * sxx - cy * sxy
        grad = -(rows[:, None] * x - cx * (Kxx @ x) + cy * (Kxy @ self.y)) / self.bandwidth ** 2
        return float(value), grad


class SinkhornError(RuntimeError):
    """Sinkhorn iterations did not reach the requested tolerance."""


class Sinkhorn(Loss):
    r"""Debiased Sinkhorn divergence between the model's samples and target samples.

    With uniform weights, cost :math:`C(x, y) = |x-y|^2` and
    :math:`\mathrm{OT}_\varepsilon(\alpha,\beta) = \min_\pi \langle\pi, C\rangle
    + \varepsilon\,\mathrm{KL}(\pi\,|\,\alpha\otimes\beta) = \langle\alpha, f\rangle
    + \langle\beta, g\rangle` (at the fixed point of the log-domain iterations
    :math:`f_i = -\varepsilon\log\sum_j b_j e^{(g_j - C_{ij})/\varepsilon}` and its
    transpose),

    .. math::

        S_\varepsilon(\alpha, \beta) = \mathrm{OT}_\varepsilon(\alpha, \beta)
          - \tfrac12\mathrm{OT}_\varepsilon(\alpha, \alpha)
          - \tfrac12\mathrm{OT}_\varepsilon(\beta, \beta).

    By the envelope theorem the gradient with respect to a sample is that of the
    transport term with the plan :math:`\pi_{ij} = a_i b_j
    e^{(f_i + g_j - C_{ij})/\varepsilon}` held fixed:
    :math:`\nabla_{x_i}\mathrm{OT}_\varepsilon(\alpha,\beta) = \sum_j \pi_{ij}\,2(x_i - y_j)`,
    and :math:`\nabla_{x_i}\mathrm{OT}_\varepsilon(\alpha,\alpha) = \sum_j (\pi_{ij}+\pi_{ji})\,2(x_i - x_j)`.

    Parameters
    ----------
    target_samples : array (M, d)
    eps : float
        :math:`\varepsilon > 0` (in units of the squared distance).
    tol : float
        Stopping rule: the plan's **marginal error**
        :math:`\|\pi\mathbf 1 - a\|_1 + \|\pi^\top\mathbf 1 - b\|_1 \le` ``tol``
        (default ``1e-9``); :attr:`criterion` says so in words.
    n_iter : int
        Cap on the iterations of one transport problem (all ε stages together); not
        reaching ``tol`` within it raises :class:`SinkhornError`.
    scaling : float in (0, 1) or None
        ε-scaling: solve first at :math:`\varepsilon_k = \max(\varepsilon, D^2 q^k)`,
        :math:`q` = ``scaling`` (default 0.5), :math:`D^2` the largest cost, each stage
        warm-started from the last (:mod:`densflow.parametric._sinkhorn`); ``None``: plain
        iterations at ``eps`` from zero potentials.
    newton : bool
        Finish with Newton steps on the dual when 200 iterations at ``eps`` have not
        reached ``tol`` (default ``True``; :mod:`densflow.parametric._sinkhorn`).

    Notes
    -----
    With the defaults the loss converges at :math:`\varepsilon = 0.1` for 200 points
    (it did not in 10⁴ plain iterations; ``benchmarks/parametric_losses.py``); ``last_iterations`` holds the iteration count of
    the last transport problem solved.
    """

    name = "sinkhorn"
    criterion = ("marginal error ||pi 1 - a||_1 + ||pi^T 1 - b||_1 <= tol, after an "
                 "eps-scaling schedule (Newton steps on the dual if 200 iterations do not reach it)")

    def __init__(self, target_samples, eps=0.1, tol=1e-9, n_iter=10000, scaling=0.5, newton=True):
        self.y = _samples(target_samples, "target_samples")
        self.eps = _positive(eps, "eps")
        self.tol = _positive(tol, "tol")
        if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
        self.n_iter = int(n_iter)
        if scaling is not None and not (isinstance(scaling, numbers.Real) and 0 < scaling < 1):
            raise ValueError(f"scaling must lie strictly between 0 and 1, or be None, got {scaling!r}")
        self.scaling = None if scaling is None else float(scaling)
        self.newton = bool(newton)
        self._yy = self._ot(self.y)[0]

    def _ot(self, x, y=None):
        """``(OT_eps, plan)``; ``y=None`` is the symmetric problem OT(x, x)."""
        sym = y is None
        y = x if sym else y
        C = sq_distances(x, y)
        n, m = C.shape
        loga, logb = np.full(n, -np.log(n)), np.full(m, -np.log(m))
        if sym:
            f, it, err = symmetric_potential(C, loga, self.eps, self.tol, self.n_iter, self.scaling)
            g = f
        else:
            f, g, it, err = potentials(C, loga, logb, self.eps, self.tol, self.n_iter, self.scaling,
                                       newton_after=200 if self.newton else None)
        if not err <= self.tol:
            raise SinkhornError(f"Sinkhorn did not converge: marginal error {err:.3e} > tol = "
                                f"{self.tol:g} after n_iter = {self.n_iter} iterations "
                                f"(eps = {self.eps:g}); raise n_iter or eps")
        self.last_iterations = it
        value = float(np.mean(f) + np.mean(g))
        plan = np.exp((f[:, None] + g[None, :] - C) / self.eps + loga[:, None] + logb[None, :])
        return value, plan

    def value_and_grad_samples(self, x):
        x = _samples(x, "samples")
        if x.shape[1] != self.y.shape[1]:
            raise ValueError(f"samples have dimension {x.shape[1]}, the target {self.y.shape[1]}")
        oxy, pxy = self._ot(x, self.y)
        oxx, pxx = self._ot(x)
        gxy = 2 * (pxy.sum(1)[:, None] * x - pxy @ self.y)
        sym = pxx + pxx.T
        gxx = 2 * (sym.sum(1)[:, None] * x - sym @ x)
        return oxy - 0.5 * oxx - 0.5 * self._yy, gxy - 0.5 * gxx
