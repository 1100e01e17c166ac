r"""Sinkhorn natural gradient (Shen et al. 2020); the Hessian of the Sinkhorn divergence
is :class:`densflow.parametric._sing.SinkhornHessian`."""

import numbers

import numpy as np

from .base import ParametricMetric

__all__ = ["SiNG"]


class SiNG(ParametricMetric):
    r"""Sinkhorn natural gradient (Shen et al. 2020, ``seeds/shen2020-sinkhorn-natural-gradient.txt``),
    issue 7: the empirical Sinkhorn information matrix (eSIM)

    .. math::

        \mathrm{SIM}(\theta_k) = \nabla^2_\theta S_\varepsilon(\alpha_\theta, \alpha_{\theta_k})
            \big|_{\theta=\theta_k} = J^\top H J, \qquad
        \mathrm{SIM}\,v = \mathrm{vjp}(H\,\mathrm{jvp}(v)),

    where :math:`\alpha_\theta = \frac1N\sum_n\delta_{g_\theta(Z_n)}` on the batch, cost
    :math:`|x-y|^2`, and :math:`H` is the Hessian of the empirical debiased Sinkhorn
    divergence in the positions of the first point cloud at coincidence (the first-order
    term vanishes there since :math:`S_\varepsilon \ge 0` is minimal), applied matrix-free
    by implicit differentiation of the Sinkhorn fixed point
    (:class:`densflow.parametric._sing.SinkhornHessian`; it agrees with central
    differences of the envelope-theorem gradient of :class:`~densflow.parametric.losses.Sinkhorn`
    to the differences' own error, 1e-7). ``direction`` inverts
    :math:`\mathrm{SIM} + \lambda I` by conjugate gradients; :meth:`step` is the seed's
    eq. (11), the second-order minimiser of the loss's linearisation over the Sinkhorn
    ball :math:`S_\varepsilon(\alpha_{\theta_k+\Delta}, \alpha_{\theta_k}) \le r`:

    .. math:: \Delta = -\sqrt{\frac{2r}{\nabla L^\top\mathrm{SIM}^{-1}\nabla L}}\;
              \mathrm{SIM}^{-1}\nabla L .

    Parameters
    ----------
    eps : float
        Entropic regularisation :math:`\varepsilon > 0` (default 0.1).
    damping : float
        :math:`\lambda \ge 0` (default ``1e-6``: eSIM has rank at most :math:`Nd`).
    tol, n_iter : float, int
        Sinkhorn tolerance (marginal error of the plan, :mod:`densflow.parametric._sinkhorn`;
        default ``1e-10``) and iteration cap.
    rtol, max_iter
        As in :class:`ParametricMetric`.

    Notes
    -----
    Oracles (tests): for a location family :math:`x = \theta + z`, :math:`\mathrm{SIM} = 2I`
    for every :math:`\varepsilon`, also for the empirical measure (a translation only
    shifts the potentials); for :math:`N(m, v)` in 1D it tends to the Hessian of the
    closed form of Janati et al. (2020), :func:`gaussian_sim_1d`.

    Cost per direction: one symmetric Sinkhorn solve :math:`O(N^2 d)` per iteration, one
    Cholesky factorisation of the :math:`2N\times 2N` linearised system :math:`O(N^3)`,
    then per CG iteration one ``jvp``, one ``vjp`` (:math:`O(Nq)` for an MLP with
    :math:`q` parameters) and :math:`O(N^2 d)` for :math:`H v`.
    """

    name = "sing"

    def __init__(self, eps=0.1, damping=1e-6, tol=1e-10, n_iter=100000, rtol=1e-8, max_iter=None):
        super().__init__(damping, rtol, max_iter)
        if not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
        if not (isinstance(tol, numbers.Real) and tol > 0):
            raise ValueError(f"tol must be a number > 0, got {tol!r}")
        if isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral) or n_iter < 1:
            raise ValueError(f"n_iter must be an integer >= 1, got {n_iter!r}")
        self.eps, self.tol, self.n_iter = float(eps), float(tol), int(n_iter)
        self._key = self._hess = None

    def __repr__(self):
        return f"SiNG(eps={self.eps:g}, damping={self.damping:g})"

    def hessian(self, model, theta, z):
        """The :class:`~densflow.parametric._sing.SinkhornHessian` at ``g_theta(z)`` (cached)."""
        from .._sing import SinkhornHessian
        if z is None:
            raise ValueError("SiNG needs the batch z of latent points, got None")
        theta = np.asarray(theta, dtype=float)
        z = np.asarray(z, dtype=float)
        key = (theta.tobytes(), z.tobytes(), z.shape)
        if key != self._key:
            self._hess = SinkhornHessian(model.sample(theta, z), self.eps, self.tol, self.n_iter)
            self._key = key
        return self._hess

    def _apply(self, model, theta, z, v):
        H = self.hessian(model, theta, z)
        return model.vjp(theta, z, H.apply(model.jvp(theta, z, v)))

    def step(self, model, theta, grad, z, radius):
        r"""The update :math:`\Delta` of eq. (11) for the Sinkhorn ball of radius ``radius``."""
        if not (isinstance(radius, numbers.Real) and np.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
        d = self.direction(model, theta, grad, z)
        gd = float(np.asarray(grad, dtype=float) @ d)
        if not gd > 0:
            return np.zeros_like(d)
        return -np.sqrt(2 * radius / gd) * d
