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

from ._sinkhorn import sinkhorn_log, sinkhorn_log_symmetric
from .models import Gaussian

__all__ = ["Loss", "W2Gaussian", "MMD", "Sinkhorn", "SinkhornError"]


def _positive(value, name):
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _samples(y, name):
    arr = np.asarray(y, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite array of shape (M, d) with M >= 2, "
                         f"got shape {np.shape(y)}")
    return arr


def _psd_sqrt(S, inverse=False):
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    w = np.clip(w, 0.0, None)
    r = np.sqrt(w)
    if inverse:
        r = 1.0 / r
    return (V * r) @ V.T


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
        self.mean = np.atleast_1d(np.asarray(target_mean, dtype=float))
        d = self.mean.size
        S = np.asarray(target_cov, dtype=float)
        S = S * np.eye(d) if S.ndim == 0 else S
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
          + \frac{1}{M(M-1)}\sum_{i\ne j} k(y_i, y_j).

    Parameters
    ----------
    target_samples : array (M, d)
    bandwidth : float
        :math:`\sigma > 0`.
    """

    name = "mmd"

    def __init__(self, target_samples, bandwidth=1.0):
        self.y = _samples(target_samples, "target_samples")
        self.bandwidth = _positive(bandwidth, "bandwidth")
        Kyy = self._kernel(self.y, self.y)
        M = self.y.shape[0]
        self._yy = (Kyy.sum() - np.trace(Kyy)) / (M * (M - 1))

    def _kernel(self, a, b):
        d2 = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
        return np.exp(-d2 / (2 * self.bandwidth ** 2))

    def value_and_grad_samples(self, x):
        x = _samples(x, "samples")
        if x.shape[1] != self.y.shape[1]:
            raise ValueError(f"samples have dimension {x.shape[1]}, the target {self.y.shape[1]}")
        B, M = x.shape[0], self.y.shape[0]
        Kxx = self._kernel(x, x)
        np.fill_diagonal(Kxx, 0.0)
        Kxy = self._kernel(x, self.y)
        value = Kxx.sum() / (B * (B - 1)) - 2 * Kxy.sum() / (B * M) + self._yy
        h2 = self.bandwidth ** 2
        # d k(x_i, w)/d x_i = -(x_i - w) k / sigma^2
        gxx = -(Kxx.sum(1)[:, None] * x - Kxx @ x) / h2
        gxy = -(Kxy.sum(1)[:, None] * x - Kxy @ self.y) / h2
        grad = 2 * gxx / (B * (B - 1)) - 2 * gxy / (B * M)
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
        Stop the iterations when the potentials change by at most ``tol`` (sup norm).
    n_iter : int
        Iteration cap; not reaching ``tol`` within it raises :class:`SinkhornError`.
    """

    name = "sinkhorn"

    def __init__(self, target_samples, eps=0.1, tol=1e-9, n_iter=10000):
        self.y = _samples(target_samples, "target_samples")
        self.eps = _positive(eps, "eps")
        self.tol = _positive(tol, "tol")
        if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
        self.n_iter = int(n_iter)
        self._yy = self._ot(self.y)[0]

    def _ot(self, x, y=None):
        """``(OT_eps, plan)``; ``y=None`` is the symmetric problem OT(x, x)."""
        sym = y is None
        y = x if sym else y
        C = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        n, m = C.shape
        loga, logb = np.full(n, -np.log(n)), np.full(m, -np.log(m))
        if sym:
            f, it, err = sinkhorn_log_symmetric(C, loga, self.eps, self.tol, self.n_iter)
            g = f
        else:
            f, g, it, err = sinkhorn_log(C, loga, logb, self.eps, self.tol, self.n_iter)
        if not err <= self.tol:
            raise SinkhornError(f"Sinkhorn did not converge: potentials still change by "
                                f"{err:.3e} > tol = {self.tol:g} after n_iter = {self.n_iter} "
                                f"iterations (eps = {self.eps:g}); raise n_iter or eps")
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
