r"""Kernelized Wasserstein natural gradient (Arbel et al. 2020); helpers in
:mod:`densflow.parametric._kwng`."""

import numbers

import numpy as np

from .base import _nonneg

__all__ = ["KWNG"]


class KWNG:
    r"""Kernelized Wasserstein natural gradient (Arbel et al. 2020,
    ``seeds/arbel2020-kernelized-wasserstein-natural-gradient-slides.txt``), issue 7.

    From the samples :math:`X_n = g_\theta(Z_n)`, :math:`n = 1\dots N`, pick :math:`M` basis
    points :math:`Y_m` among them (without replacement) and coordinates
    :math:`i_m \in \{1\dots d\}` uniformly at random; the features are
    :math:`\varphi_m(x) = \partial_{i_m} k(Y_m, x)` for the Gaussian kernel
    :math:`k(y, x) = \exp(-|x-y|^2/(2\sigma^2))`. With the matrices of the slides
    ("KWNG: Sample based version"),

    .. math::

        T_{m,:} = \nabla_\theta\,\frac1N\sum_n\varphi_m(g_\theta(Z_n))
                = \frac1N\sum_n J_n^\top\nabla\varphi_m(X_n), \quad
        K_{mm'} = \partial_{i_m}\partial_{i_{m'}+d}k(Y_m, Y_{m'}), \quad
        C_{m,(n,i)} = \tfrac{1}{\sqrt N}\,\partial_{x_i}\varphi_m(X_n),

    ``direction`` returns the slides' estimator of :math:`(G_W + \varepsilon I)^{-1}\nabla L`,

    .. math::

        \widehat{\nabla^W L} = \frac1\varepsilon\Bigl(I - T^\top\bigl(TT^\top
            + \lambda\varepsilon K + \varepsilon CC^\top\bigr)^{\dagger} T\Bigr)\nabla L ,

    (the maximiser :math:`\alpha` of the dual over :math:`f = \sum_m\alpha_m\varphi_m` of
    :math:`\nabla L^\top u + \nabla_\theta\mathbb E f(X)^\top u - \tfrac12\mathbb E|\nabla f|^2
    - \tfrac\lambda2\|f\|^2_{\mathcal H} + \tfrac\varepsilon2|u|^2`). For
    ``ridge`` :math:`\lambda = 0` the ridgeless form of the slides is used: with
    :math:`CC^\top = USU^\top` (eigenvalues below ``rcond`` times the largest dropped) and
    :math:`W = S^{-1/2}U^\top T`, since :math:`T = CB/\sqrt N` (chain rule, :math:`B` the
    stacked Jacobians),

    .. math:: \widehat{\nabla^W L} = \frac1\varepsilon\bigl(I - W^\top(WW^\top
              + \varepsilon I)^{-1}W\bigr)\nabla L = (W^\top W + \varepsilon I)^{-1}\nabla L .

    Parameters
    ----------
    eps : float
        Damping :math:`\varepsilon > 0` (default ``1e-5``).
    ridge : float
        :math:`\lambda \ge 0` (default ``0``: the ridgeless estimator).
    n_basis : int or None
        :math:`M`; default :math:`\lceil d\sqrt N\,\rceil` (capped at :math:`N`).
    bandwidth : float or "median"
        :math:`\sigma`; ``"median"`` (default) is the median pairwise distance of (at most
        500 of) the samples.
    diagonal : bool
        Diagonal pre-conditioning (default ``False``): the estimator is applied in the
        coordinates :math:`u = D\tilde u`, :math:`D_{jj} = (\frac1M\sum_m T_{mj}^2)^{-1/2}`
        (ones where that column of :math:`T` vanishes), i.e. :math:`T\to TD`,
        :math:`\nabla L\to D\nabla L` and the result multiplied by :math:`D`; it changes
        only the damping term :math:`\varepsilon|D^{-1}u|^2`. (The slides do not fix
        :math:`D`; this is our choice in the spirit of the authors' code.)
    adaptive : bool
        Adapt :math:`\varepsilon` with :meth:`update_damping` (default ``False``).
    window, factor : int, float
        Window (default 5 steps) and factor :math:`\omega \in (0, 1)` (default ``0.85``) of
        the adaptive rule of the authors' code (``KWNGWrapper.dumping``, with their
        defaults): each recorded step :math:`\theta \to \theta - \eta u` gives the
        reduction ratio :math:`r = 2\,(L(\theta) - L(\theta - \eta u))/(\eta\,\nabla L\cdot u)`
        (1 for an exact natural-gradient step :math:`\eta = 1` on a quadratic whose
        Hessian is the metric); after each ``window`` steps, with :math:`\rho` the largest
        :math:`r` of the window (or 0), :math:`\rho < 1/4 \Rightarrow \varepsilon
        \leftarrow \varepsilon/\omega` and :math:`\rho > 3/4 \Rightarrow \varepsilon
        \leftarrow \omega\varepsilon` (Levenberg–Marquardt), keeping
        :math:`10^{-10} \le \varepsilon \le 10^5` as they do. ``densflow.solve`` reports
        each accepted step (:meth:`update_damping`).
    rcond : float
        Relative cut-off of the pseudo-inverses (default ``1e-12``).
    seed : int, Generator or None
        Random source of the basis points, coordinates and bandwidth subsample.

    Notes
    -----
    If the result has a non-positive inner product with ``grad`` (a known failure of KWNG
    reported by Shen et al. 2020), ``direction`` returns ``grad`` instead and increments
    :attr:`n_fallback` (:attr:`n_calls` counts all calls). In exact arithmetic both forms
    are :math:`\nabla L` times a symmetric positive definite matrix
    (:math:`T^\top(TT^\top + R)^\dagger T \preceq I` for :math:`R \succeq 0`), so the
    fallback can only be triggered by rounding (float32 in the SiNG paper's setting);
    in float64 we have not seen it happen (0 of the calls in the tests and cases).

    Cost per call, for :math:`q` parameters and samples in :math:`\mathbb R^d`:
    :math:`O(MNd^2)` for the feature gradients, :math:`M` calls of ``model.vjp``
    (:math:`O(MNq)` for an MLP; :math:`T` is built row by row), :math:`O(M^2Nd)` for
    :math:`CC^\top`, :math:`O(M^3 + M^2q)` for the :math:`M\times M` solve. Memory
    :math:`O(MNd + Mq)`.
    """

    name = "kwng"
    #: Bounds of ``eps`` under the adaptive rule (those of the authors' code).
    EPS_MIN, EPS_MAX = 1e-10, 1e5

    def __init__(self, eps=1e-5, ridge=0.0, n_basis=None, bandwidth="median", diagonal=False,
                 adaptive=False, window=5, factor=0.85, rcond=1e-12, seed=None):
        if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.eps = float(eps)
        self.ridge = _nonneg(ridge, "ridge")
        if n_basis is not None and (isinstance(n_basis, bool) or not isinstance(n_basis, numbers.Integral)
                                    or n_basis < 1):
            raise ValueError(f"n_basis must be an integer >= 1 or None, got {n_basis!r}")
        self.n_basis = n_basis
        if not (bandwidth == "median" or (isinstance(bandwidth, numbers.Real)
                                          and np.isfinite(bandwidth) and bandwidth > 0)):
            raise ValueError(f"bandwidth must be 'median' or a finite number > 0, got {bandwidth!r}")
        self.bandwidth = bandwidth
        self.diagonal = bool(diagonal)
        self.adaptive = bool(adaptive)
        if isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.window = int(window)
        if not (isinstance(factor, numbers.Real) and 0 < factor < 1):
            raise ValueError(f"factor must lie strictly between 0 and 1, got {factor!r}")
        self.factor = float(factor)
        if not (isinstance(rcond, numbers.Real) and 0 < rcond < 1):
            raise ValueError(f"rcond must lie strictly between 0 and 1, got {rcond!r}")
        self.rcond = float(rcond)
        self.rng = np.random.default_rng(seed)
        self.n_calls = 0
        self.n_fallback = 0
        self._ratios = []

    def __repr__(self):
        return f"KWNG(eps={self.eps:g}, ridge={self.ridge:g}, n_basis={self.n_basis})"

    def check_model(self, model):
        pass

    def _pinv_solve(self, A, b):
        w, V = np.linalg.eigh(0.5 * (A + A.T))
        keep = w > self.rcond * max(w.max(), 0.0)
        return V[:, keep] @ ((V[:, keep].T @ b) / w[keep])

    def direction(self, model, theta, grad, z=None):
        r"""The estimate of :math:`(G_W + \varepsilon I)^{-1}` ``grad`` (``z``: the batch),
        or ``grad`` itself if the estimate fails the descent test (see Notes)."""
        if z is None:
            raise ValueError("KWNG needs the batch z of latent points, got None")
        grad = np.asarray(grad, dtype=float)
        out = self._estimate(model, theta, grad, np.asarray(z, dtype=float))
        self.n_calls += 1
        if not float(out @ grad) > 0 and np.any(grad != 0):
            self.n_fallback += 1
            return grad.copy()
        return out

    def _estimate(self, model, theta, grad, z):
        from .._kwng import feature_gradients, feature_gram, median_bandwidth
        g = grad
        X = model.sample(theta, z)
        N, d = X.shape
        M = min(N, self.n_basis if self.n_basis is not None else int(np.ceil(d * np.sqrt(N))))
        sigma = (median_bandwidth(X, self.rng) if self.bandwidth == "median"
                 else float(self.bandwidth))
        sel = self.rng.choice(N, M, replace=False)
        idx = self.rng.integers(0, d, M)
        Y = X[sel]
        F = feature_gradients(Y, idx, X, sigma)              # (M, N, d)
        T = np.stack([model.vjp(theta, z, F[m]) for m in range(M)]) / N   # (M, q)
        Ff = F.reshape(M, N * d)
        CCt = Ff @ Ff.T / N
        D = None
        if self.diagonal:
            rms = np.sqrt(np.mean(T * T, axis=0))
            D = np.divide(1.0, rms, out=np.ones_like(rms), where=rms > 0)
            T = T * D
            g = g * D
        eps = self.eps
        if self.ridge > 0:
            A = T @ T.T + self.ridge * eps * feature_gram(Y, idx, sigma) + eps * CCt
            out = (g - T.T @ self._pinv_solve(A, T @ g)) / eps
        else:
            w, U = np.linalg.eigh(0.5 * (CCt + CCt.T))
            keep = w > self.rcond * max(w.max(), 0.0)
            W = (U[:, keep].T @ T) / np.sqrt(w[keep])[:, None]
            r = W.shape[0]
            out = (g - W.T @ np.linalg.solve(W @ W.T + eps * np.eye(r), W @ g)) / eps
        return out * D if D is not None else out

    def update_damping(self, actual, predicted):
        r"""Record one step's actual decrease :math:`L(\theta_k) - L(\theta_{k+1})` and its
        first-order prediction :math:`\eta\,\nabla L\cdot u` for the step :math:`-\eta u`;
        when ``adaptive``, apply the rule of the class docstring after every ``window``
        steps. Returns ``eps``."""
        if not self.adaptive:
            return self.eps
        self._ratios.append(2.0 * actual / predicted if predicted > 0 else 0.0)
        if len(self._ratios) >= self.window:
            rho = max(0.0, max(self._ratios))
            if rho < 0.25 and self.eps < self.EPS_MAX:
                self.eps = min(self.eps / self.factor, self.EPS_MAX)
            elif rho > 0.75 and self.eps > self.EPS_MIN:
                self.eps = max(self.eps * self.factor, self.EPS_MIN)
            self._ratios = []
        return self.eps
