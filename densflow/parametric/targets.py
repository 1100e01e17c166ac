r"""Targets of Gaussian variational inference: objects with ``grad_log_p(x)`` (``x`` of
shape ``(B, d)`` → ``(B, d)``) and optionally ``hess_log_p(x)`` (→ ``(B, d, d)``), and the
Bures–Wasserstein velocity field of a Gaussian against such a target."""

import numpy as np

from .checks import check_int as _check_int
from .checks import check_positive as _check_positive
from .checks import check_spd as _check_spd

__all__ = ["GaussianTarget", "LogisticRegressionPosterior", "check_target", "bw_field"]


class GaussianTarget:
    r"""Target :math:`p = N(m, C)`: :math:`\nabla\log p(x) = -C^{-1}(x - m)`,
    :math:`\nabla^2\log p = -C^{-1}`.

    Parameters
    ----------
    mean : array_like, shape (d,)
    cov : array_like, shape (d, d)
        Symmetric positive definite.
    """

    def __init__(self, mean, cov):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=float))
        if self.mean.ndim != 1 or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite 1D array, got shape {self.mean.shape}")
        self.dim = self.mean.size
        self.cov = _check_spd(np.atleast_2d(cov), self.dim, "cov")
        self.precision = np.linalg.inv(self.cov)

    def log_p(self, x):
        """The normalised log-density at the rows of ``x``."""
        r = np.atleast_2d(x) - self.mean
        logdet = np.linalg.slogdet(2 * np.pi * self.cov)[1]
        return -0.5 * (np.sum((r @ self.precision) * r, axis=1) + logdet)

    def grad_log_p(self, x):
        return -(np.atleast_2d(x) - self.mean) @ self.precision

    def hess_log_p(self, x):
        n = np.atleast_2d(x).shape[0]
        return np.broadcast_to(-self.precision, (n, self.dim, self.dim))


class LogisticRegressionPosterior:
    r"""Posterior of Bayesian logistic regression with a Gaussian prior.

    .. math::

        \log p(w) = \sum_i \bigl[y_i\log\sigma(a_i^\top w) + (1-y_i)\log(1-\sigma(a_i^\top w))\bigr]
                    - \frac{|w|^2}{2\tau^2} + \text{const},

    log-concave, with :math:`\nabla\log p(w) = A^\top(y - \sigma(Aw)) - w/\tau^2` and
    :math:`\nabla^2\log p(w) = -A^\top\operatorname{diag}(\sigma(1-\sigma))A - I/\tau^2`.

    Parameters
    ----------
    features : array_like, shape (n, d)
        The rows :math:`a_i`.
    labels : array_like, shape (n,)
        0 or 1.
    prior_std : float
        :math:`\tau > 0`.
    """

    def __init__(self, features, labels, prior_std=1.0):
        A = np.asarray(features, dtype=float)
        y = np.asarray(labels, dtype=float)
        if A.ndim != 2 or A.shape[0] < 1 or not np.all(np.isfinite(A)):
            raise ValueError(f"features must be a finite (n, d) array, got shape {A.shape}")
        if y.shape != (A.shape[0],) or not np.all((y == 0) | (y == 1)):
            raise ValueError(f"labels must be {A.shape[0]} values in {{0, 1}}")
        self.features, self.labels = A, y
        self.prior_std = _check_positive(prior_std, "prior_std")
        self.dim = A.shape[1]

    @classmethod
    def synthetic(cls, n=40, dim=2, prior_std=1.0, rng=0):
        """A small synthetic data set: ``a_i ~ N(0, I)``, labels drawn from the model
        with the weights ``w* = (1.5, -1, 0.5, ...)[:dim]``."""
        rng = np.random.default_rng(rng)
        A = rng.standard_normal((_check_int(n, "n"), _check_int(dim, "dim")))
        w = np.resize(np.array([1.5, -1.0, 0.5]), dim)
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-A @ w))).astype(float)
        return cls(A, y, prior_std)

    def _sigma(self, x):
        return 0.5 * (1.0 + np.tanh(0.5 * (np.atleast_2d(x) @ self.features.T)))

    def log_p(self, x):
        """The log-density up to its constant, :math:`\\sum_i[y_i s_i - \\log(1 + e^{s_i})]
        - |w|^2/(2\\tau^2)` with :math:`s_i = a_i^\\top w`, at the rows ``w`` of ``x``."""
        x = np.atleast_2d(x)
        a = x @ self.features.T
        return (a @ self.labels - np.logaddexp(0.0, a).sum(axis=1)
                - 0.5 * np.sum(x * x, axis=1) / self.prior_std**2)

    def grad_log_p(self, x):
        x = np.atleast_2d(x)
        return (self.labels - self._sigma(x)) @ self.features - x / self.prior_std**2

    def hess_log_p(self, x):
        s = self._sigma(x)
        A = self.features
        H = -np.einsum("bi,ij,ik->bjk", s * (1 - s), A, A)
        return H - np.eye(self.dim) / self.prior_std**2

    def map_estimate(self):
        """The mode of the posterior by Newton's method."""
        w = np.zeros(self.dim)
        for _ in range(50):
            step = np.linalg.solve(self.hess_log_p(w)[0], self.grad_log_p(w)[0])
            w = w - step
            if np.linalg.norm(step) < 1e-13:
                break
        return w


def check_target(target, dim):
    if not callable(getattr(target, "grad_log_p", None)):
        raise ValueError("target must have a grad_log_p(x) method")
    g = np.asarray(target.grad_log_p(np.zeros((1, dim))))
    if g.shape != (1, dim):
        raise ValueError(f"target.grad_log_p must map (B, {dim}) to (B, {dim}), got {g.shape}")


def bw_field(target, mu, Sigma, z, w, use_hessian):
    """Right-hand side of the Bures–Wasserstein ODE with the rule (z, w)."""
    d = mu.size
    L = np.linalg.cholesky(Sigma)
    x = mu + z @ L.T
    g = target.grad_log_p(x)                       # = -grad V
    mu_dot = w @ g
    if use_hessian:
        EH = -np.einsum("n,njk->jk", w, target.hess_log_p(x))   # E[hess V]
        M = EH @ Sigma
    else:
        # Stein: E[hess V] Sigma = E[grad V (x - mu)^T]
        M = -(g * w[:, None]).T @ (x - mu)
    Sigma_dot = 2.0 * np.eye(d) - M - M.T
    return mu_dot, 0.5 * (Sigma_dot + Sigma_dot.T)
