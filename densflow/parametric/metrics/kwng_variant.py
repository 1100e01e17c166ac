r"""densflow's variant of the kernelized Wasserstein natural gradient: the ridge form of
the slides, the median bandwidth and a diagonal change of coordinates. Not the authors'
estimator (that is :class:`~densflow.parametric.metrics.KWNG`)."""

import numpy as np

from .base import _nonneg
from .kwng import KWNG

__all__ = ["KWNGVariant"]


class KWNGVariant(KWNG):
    r"""densflow's variant of KWNG (issue 7), **not the authors' estimator**: it differs
    from :class:`KWNG` (their public code) in the three places below, kept for the
    consistency study and the cases that were run with it (``docs/audit.rst``).

    With :math:`T`, :math:`CC^\top` and the features of :class:`KWNG` and the RKHS Gram
    matrix :math:`K_{mm'} = \partial_{i_m}\partial_{i_{m'}+d}k(Y_m, Y_{m'})`,
    ``direction`` returns the slides' estimator ("KWNG: Sample based version")

    .. math::

        \widehat{\nabla^W L} = \frac1\varepsilon\Bigl(I - T^\top\bigl(TT^\top
            + \lambda\varepsilon K + \varepsilon CC^\top\bigr)^{\dagger} T\Bigr)\nabla L ,

    and for ``ridge`` :math:`\lambda = 0` its ridgeless form
    :math:`(W^\top W + \varepsilon I)^{-1}\nabla L`, :math:`W = S^{-1/2}U^\top T`.

    Differences from the authors' estimator:

    * ``ridge`` :math:`\lambda > 0` (the slides' general form, which carries their
      consistency result); their code has :math:`\lambda = 0` only.
    * ``bandwidth="median"`` (default): :math:`\sigma` the median pairwise distance of at
      most 500 samples (drawn before the basis); theirs is ``"mean"``, also accepted here.
    * ``diagonal="rms"``: the estimator applied in the coordinates :math:`u = D\tilde u`,
      :math:`D_{jj} = (\frac1M\sum_m T_{mj}^2)^{-1/2}` from the *raw* :math:`T` (ones
      where a column vanishes): :math:`T\to TD`, :math:`\nabla L\to D\nabla L`, the result
      multiplied by :math:`D`. For :math:`\lambda = 0` this is
      :math:`(W^\top W + \varepsilon D^{-2})^{-1}\nabla L`: the diagonal enters twice and
      without a floor, so a parameter whose columns scale like :math:`s` gets a
      component growing like :math:`s^{-3}` (the authors': :math:`s^{-1}`). Default
      ``False`` (:math:`D = I`).

    Parameters
    ----------
    eps, n_basis, adaptive, window, factor, rcond, seed
        As for :class:`KWNG`.
    ridge : float
        :math:`\lambda \ge 0` (default ``0``).
    bandwidth : "median", "mean" or float
        Default ``"median"``.
    diagonal : False or "rms"
        Default ``False``.
    """

    name = "kwng_variant"
    _bandwidths = ("median", "mean")

    def __init__(self, eps=1e-5, ridge=0.0, n_basis=None, bandwidth="median", diagonal=False,
                 adaptive=False, window=5, factor=0.85, rcond=1e-12, seed=None):
        super().__init__(eps=eps, n_basis=n_basis, bandwidth=bandwidth, diagonal=diagonal,
                         adaptive=adaptive, window=window, factor=factor, rcond=rcond, seed=seed)
        self.ridge = _nonneg(ridge, "ridge")

    @staticmethod
    def _check_diagonal(diagonal):
        if diagonal is False or diagonal is None:
            return False
        if diagonal == "rms":
            return "rms"
        raise ValueError(f"diagonal must be False or 'rms', got {diagonal!r}")

    def __repr__(self):
        return (f"KWNGVariant(eps={self.eps:g}, ridge={self.ridge:g}, n_basis={self.n_basis}, "
                f"bandwidth={self.bandwidth!r}, diagonal={self.diagonal!r})")

    def _pinv_solve(self, A, b):
        w, V = np.linalg.eigh(0.5 * (A + A.T))
        keep = w > self.rcond * max(w.max(), 0.0)
        return V[:, keep] @ ((V[:, keep].T @ b) / w[keep])

    def _basis(self, X, M):
        if self.bandwidth != "median":
            return super()._basis(X, M)
        from .._kwng import median_bandwidth
        N, d = X.shape
        sigma = median_bandwidth(X, self.rng)
        return self.rng.choice(N, M, replace=False), self.rng.integers(0, d, M), sigma

    def _estimate(self, model, theta, grad, z):
        from .._kwng import feature_gram, whiten
        T, CCt, Y, idx, sigma = self._features(model, theta, z)
        g = grad
        D = None
        if self.diagonal == "rms":
            rms = np.sqrt(np.mean(T * T, axis=0))
            D = np.divide(1.0, rms, out=np.ones_like(rms), where=rms > 0)
            T = T * D
            g = g * D
        eps = self.eps
        if self.ridge > 0:
            A = T @ T.T + self.ridge * eps * feature_gram(Y, idx, sigma) + eps * CCt
            out = (g - T.T @ self._pinv_solve(A, T @ g)) / eps
        else:
            W = whiten(CCt, T, self.rcond)
            r = W.shape[0]
            out = (g - W.T @ np.linalg.solve(W @ W.T + eps * np.eye(r), W @ g)) / eps
        return out * D if D is not None else out
