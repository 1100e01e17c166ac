r"""Kernelized Wasserstein natural gradient (Arbel et al. 2020), the authors' estimator;
densflow's variants (ridge, median bandwidth, the earlier diagonal) are
:class:`~densflow.parametric.metrics.kwng_variant.KWNGVariant`. Helpers in
:mod:`densflow.parametric._kwng`."""

import numbers

import numpy as np

__all__ = ["KWNG"]


class KWNG:
    r"""Kernelized Wasserstein natural gradient (Arbel et al. 2020), the estimator of the
    authors' public code (``KWNG.compute_cond_matrix``, ``compute_natural_gradient`` and
    ``make_system`` in their ``kwng.py``), issues 7 and 27.

    From the samples :math:`X_n = g_\theta(Z_n)`, :math:`n = 1\dots N`, pick :math:`M` basis
    points :math:`Y_m` among them (without replacement) and coordinates
    :math:`i_m \in \{1\dots d\}` uniformly at random; the features are
    :math:`\varphi_m(x) = \partial_{i_m} k(Y_m, x)` for the Gaussian kernel
    :math:`k(y, x) = \exp(-|x-y|^2/(2\sigma^2))` with the authors' bandwidth
    :math:`\sigma^2 = \frac1{MN}\sum_{m,n}|Y_m - X_n|^2`. With

    .. math::

        T_{m,:} = \nabla_\theta\,\frac1N\sum_n\varphi_m(g_\theta(Z_n)), \qquad
        CC^\top_{mm'} = \frac1N\sum_n\nabla\varphi_m(X_n)\cdot\nabla\varphi_{m'}(X_n)
        = USU^\top,

    the whitened features :math:`W = S^{-1/2}U^\top T` (the slides' ridgeless version,
    :math:`\lambda = 0`) and the diagonal :math:`D_{jj} = 1/(\|W_{:,j}\| + 10^{-8})`
    computed from them, ``direction`` returns

    .. math::

        u = \frac1\varepsilon D\bigl(g - W^\top(WDW^\top + \varepsilon I)^{-1}WDg\bigr)
          = \bigl(W^\top W + \varepsilon D^{-1}\bigr)^{-1} g ,

    the damped inverse of the estimated Wasserstein information :math:`W^\top W` with the
    damping :math:`\varepsilon\operatorname{diag}(\|W_{:,j}\| + 10^{-8})`, computed in the
    first (Woodbury, :math:`M\times M`) form. :math:`D` enters once and is capped at
    :math:`10^8`: on an output row scaled by :math:`s` (its columns of :math:`W` and of
    the loss gradient :math:`\propto s`) the direction on that row stays :math:`O(1)` as
    :math:`s \to 0`, where the raw-:math:`T` diagonal of
    :class:`~densflow.parametric.metrics.KWNGVariant` grows like :math:`1/s` (tests).

    Parameters
    ----------
    eps : float
        Damping :math:`\varepsilon > 0` (default ``1e-5``, the authors').
    n_basis : int or None
        :math:`M`; default :math:`\lceil d\sqrt N\,\rceil` (capped at :math:`N`), the order
        of the slides' consistency result. The authors' classification code uses 5.
    bandwidth : "mean" or float
        ``"mean"`` (default): the authors' rule above (their ``log_bandwidth = 0``); a
        number fixes :math:`\sigma`.
    diagonal : bool
        The authors' ``with_diag_mat``: ``True`` (default) for :math:`D` above, ``False``
        for :math:`D = I`, i.e. :math:`u = (W^\top W + \varepsilon I)^{-1} g`.
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
        each accepted step (:meth:`update_damping`) with the decrease measured on the
        step's own batch (the authors compare the losses of two consecutive batches).
    rcond : float
        Eigenvalues of :math:`CC^\top` at or below ``rcond`` times the largest are dropped
        (default ``1e-12``; the authors' code drops only exact zeros, which in float64
        lets rounding noise into :math:`W`).
    seed : int, Generator or None
        Random source of the basis points and coordinates.

    Notes
    -----
    If the result has a non-positive inner product with ``grad`` (a known failure of KWNG
    reported by Shen et al. 2020; the authors' wrapper does the same), ``direction``
    returns ``grad`` instead and increments :attr:`n_fallback` (:attr:`n_calls` counts all
    calls). In exact arithmetic :math:`u` is ``grad`` times a symmetric positive definite
    matrix, so the fallback can only be triggered by rounding.

    Cost per call, for :math:`q` parameters and samples in :math:`\mathbb R^d`:
    :math:`O(MNd^2)` for the feature gradients, :math:`M` calls of ``model.vjp``
    (:math:`O(MNq)` for an MLP; :math:`T` is built row by row), :math:`O(M^2Nd)` for
    :math:`CC^\top`, :math:`O(M^3 + M^2q)` for the whitening and the :math:`M\times M`
    solve. Memory :math:`O(MNd + Mq)`.
    """

    name = "kwng"
    #: Bounds of ``eps`` under the adaptive rule (those of the authors' code).
    EPS_MIN, EPS_MAX = 1e-10, 1e5
    #: The floor added to the column norms of :math:`W` (the authors' ``1e-8``).
    FLOOR = 1e-8
    _bandwidths = ("mean",)

    def __init__(self, eps=1e-5, n_basis=None, bandwidth="mean", diagonal=True, adaptive=False,
                 window=5, factor=0.85, rcond=1e-12, seed=None):
        if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        self.eps = float(eps)
        if n_basis is not None and (isinstance(n_basis, bool) or not isinstance(n_basis, numbers.Integral)
                                    or n_basis < 1):
            raise ValueError(f"n_basis must be an integer >= 1 or None, got {n_basis!r}")
        self.n_basis = n_basis
        if not ((isinstance(bandwidth, str) and bandwidth in self._bandwidths)
                or (isinstance(bandwidth, numbers.Real) and np.isfinite(bandwidth) and bandwidth > 0)):
            raise ValueError(f"bandwidth must be one of {self._bandwidths} or a finite number > 0, "
                             f"got {bandwidth!r}")
        self.bandwidth = bandwidth
        self.diagonal = self._check_diagonal(diagonal)
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

    @staticmethod
    def _check_diagonal(diagonal):
        if not isinstance(diagonal, (bool, np.bool_)):
            raise ValueError(f"diagonal must be True or False, got {diagonal!r}")
        return bool(diagonal)

    def __repr__(self):
        return (f"KWNG(eps={self.eps:g}, n_basis={self.n_basis}, bandwidth={self.bandwidth!r}, "
                f"diagonal={self.diagonal})")

    def check_model(self, model):
        pass

    def direction(self, model, theta, grad, z=None):
        r"""The estimate of the damped natural gradient of ``grad`` (``z``: the batch), or
        ``grad`` itself if the estimate fails the descent test (see Notes)."""
        if z is None:
            raise ValueError("KWNG needs the batch z of latent points, got None")
        grad = np.asarray(grad, dtype=float)
        out = self._estimate(model, theta, grad, np.asarray(z, dtype=float))
        self.n_calls += 1
        if not float(out @ grad) > 0 and np.any(grad != 0):
            self.n_fallback += 1
            return grad.copy()
        return out

    def _basis(self, X, M):
        """Basis rows, coordinates and bandwidth, drawn in the authors' order."""
        from .._kwng import mean_square_bandwidth
        N, d = X.shape
        sel = self.rng.choice(N, M, replace=False)
        idx = self.rng.integers(0, d, M)
        sigma = (mean_square_bandwidth(X[sel], X) if self.bandwidth == "mean"
                 else float(self.bandwidth))
        return sel, idx, sigma

    def _features(self, model, theta, z):
        """``T`` (M, q), ``CC^T`` (M, M), the basis points, coordinates and bandwidth."""
        from .._kwng import feature_gradients
        X = model.sample(theta, z)
        N, d = X.shape
        M = min(N, self.n_basis if self.n_basis is not None else int(np.ceil(d * np.sqrt(N))))
        sel, idx, sigma = self._basis(X, M)
        Y = X[sel]
        F = feature_gradients(Y, idx, X, sigma)              # (M, N, d)
        T = np.stack([model.vjp(theta, z, F[m]) for m in range(M)]) / N   # (M, q)
        Ff = F.reshape(M, N * d)
        return T, Ff @ Ff.T / N, Y, idx, sigma

    def _estimate(self, model, theta, grad, z):
        from .._kwng import whiten
        T, CCt, _, _, _ = self._features(model, theta, z)
        W = whiten(CCt, T, self.rcond)
        D = 1.0 / (np.linalg.norm(W, axis=0) + self.FLOOR) if self.diagonal else np.ones(W.shape[1])
        eps = self.eps
        G = (W * D) @ W.T + eps * np.eye(W.shape[0])
        return D * (grad - W.T @ np.linalg.solve(G, W @ (D * grad))) / eps

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
