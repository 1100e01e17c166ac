r"""Helpers of :class:`densflow.parametric.metrics.KWNG` (issue 7).

Gaussian-kernel derivatives for the Nyström features of Arbel et al. (2020)
(``seeds/arbel2020-kernelized-wasserstein-natural-gradient-slides.txt``), and the
variance-parametrised diagonal Gaussian :math:`x = m + \operatorname{diag}(\delta)^{1/2}z`
of the slides' consistency study with its exact Wasserstein natural gradient.
"""

import numpy as np

from .models import Model, _check_int

__all__ = ["feature_gradients", "feature_gram", "mean_square_bandwidth", "median_bandwidth",
           "whiten", "VarianceGaussian"]


def feature_gradients(Y, idx, X, sigma):
    r"""Gradients :math:`\nabla_x\varphi_m(x_n)` of the features
    :math:`\varphi_m(x) = \partial_{i_m} k(Y_m, x)` (derivative in the first argument),
    :math:`k(y, x) = \exp(-|x-y|^2/(2\sigma^2))`:

    .. math:: \partial_{x_b}\varphi_m(x) = \Bigl[\frac{\delta_{i_m b}}{\sigma^2}
              - \frac{r_{i_m} r_b}{\sigma^4}\Bigr] k(Y_m, x), \qquad r = x - Y_m .

    Returns an array of shape ``(M, N, d)``.
    """
    r = X[None, :, :] - Y[:, None, :]                       # (M, N, d)
    k = np.exp(-np.sum(r * r, axis=-1) / (2 * sigma ** 2))  # (M, N)
    ra = np.take_along_axis(r, idx[:, None, None], axis=2)  # (M, N, 1): r_{i_m}
    out = -ra * r / sigma ** 4
    out[np.arange(len(idx)), :, idx] += 1.0 / sigma ** 2
    return out * k[:, :, None]


def feature_gram(Y, idx, sigma):
    r"""RKHS Gram matrix of the features, :math:`K_{mm'} = \langle\varphi_m, \varphi_{m'}\rangle
    = \partial_{i_m}\partial_{i_{m'}+d} k(Y_m, Y_{m'})`, shape ``(M, M)``."""
    G = feature_gradients(Y, idx, Y, sigma)                 # (M, M, d): d/dx_b phi_m(Y_m')
    return np.take_along_axis(G, idx[None, :, None], axis=2)[:, :, 0]


def mean_square_bandwidth(Y, X):
    r"""The bandwidth rule of the authors' code: :math:`\sigma^2 = \frac{1}{MN}\sum_{m,n}
    |Y_m - X_n|^2`, the mean squared distance from the basis points to the batch (their
    ``log_bandwidth = 0``); :math:`\sigma = 1` if it vanishes."""
    d2 = np.mean(np.sum((Y[:, None, :] - X[None, :, :]) ** 2, axis=-1))
    return float(np.sqrt(d2)) if d2 > 0 else 1.0


def whiten(CCt, T, rcond):
    r""":math:`W = S^{-1/2}U^\top T` from :math:`CC^\top = USU^\top`, the eigenvalues at or
    below ``rcond`` times the largest dropped with their rows (the slides' "ridgeless
    version", :math:`P = S^\dagger S`). Returns ``W`` of shape ``(r, q)``, ``r`` the rank kept."""
    w, U = np.linalg.eigh(0.5 * (CCt + CCt.T))
    keep = w > rcond * max(w.max(), 0.0)
    return (U[:, keep].T @ T) / np.sqrt(w[keep])[:, None]


def median_bandwidth(X, rng, max_points=500):
    r"""Median heuristic: :math:`\sigma` = median of the pairwise distances of at most
    ``max_points`` of the samples (1 if they all coincide)."""
    X = X[rng.choice(X.shape[0], min(max_points, X.shape[0]), replace=False)]
    d2 = np.sum((X[:, None, :] - X[None, :, :]) ** 2, axis=-1)
    dist = np.sqrt(d2[np.triu_indices(X.shape[0], 1)])
    med = float(np.median(dist)) if dist.size else 0.0
    return med if med > 0 else 1.0


class VarianceGaussian(Model):
    r""":math:`x = m + \operatorname{diag}(\delta)^{1/2} z` with :math:`\theta = [m, \delta]`
    (:math:`\delta > 0` the variances), the model of the KWNG consistency study.

    Its Wasserstein information matrix is :math:`\operatorname{diag}(1, \dots, 1,
    1/(4\delta_1), \dots, 1/(4\delta_d))` (the ``"diag"`` :class:`Gaussian`'s identity
    pulled back through :math:`s = \delta^{1/2}`, :math:`ds = d\delta/(2s)`).
    """

    def __init__(self, dim):
        self.dim = self.latent_dim = self.out_dim = _check_int(dim, "dim")

    def __repr__(self):
        return f"VarianceGaussian(dim={self.dim})"

    @property
    def n_params(self):
        return 2 * self.dim

    def _split(self, theta):
        t = np.asarray(theta, dtype=float)
        if np.any(t[self.dim:] <= 0):
            raise ValueError("the variances theta[dim:] must be > 0")
        return t[:self.dim], t[self.dim:]

    def sample(self, theta, z):
        m, v = self._split(theta)
        return m + np.asarray(z, dtype=float) * np.sqrt(v)

    def jvp(self, theta, z, v):
        _, var = self._split(theta)
        v = np.asarray(v, dtype=float)
        return v[:self.dim] + np.asarray(z, dtype=float) * (v[self.dim:] / (2 * np.sqrt(var)))

    def vjp(self, theta, z, u):
        _, var = self._split(theta)
        u = np.asarray(u, dtype=float)
        return np.concatenate([u.sum(axis=0), np.sum(u * z, axis=0) / (2 * np.sqrt(var))])

    def wasserstein_information(self, theta):
        """The exact Wasserstein information matrix (diagonal), shape ``(2d, 2d)``."""
        _, var = self._split(theta)
        return np.diag(np.concatenate([np.ones(self.dim), 1.0 / (4 * var)]))

    def w2_value_and_grad(self, theta, target_mean, target_var):
        r""":math:`W_2^2` to :math:`N(\mu, \operatorname{diag}(t))`,
        :math:`|m-\mu|^2 + \sum_i(\delta_i^{1/2} - t_i^{1/2})^2`, and its exact gradient
        :math:`(2(m-\mu),\; 1 - (t/\delta)^{1/2})`."""
        m, var = self._split(theta)
        mu = np.asarray(target_mean, dtype=float)
        t = np.asarray(target_var, dtype=float)
        value = float(np.sum((m - mu) ** 2) + np.sum((np.sqrt(var) - np.sqrt(t)) ** 2))
        return value, np.concatenate([2 * (m - mu), 1.0 - np.sqrt(t / var)])
