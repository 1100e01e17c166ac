r"""The sampling-based metrics of Lin et al. (2021)
(``seeds/lin2021-wasserstein-proximal-gans.txt`` §4): relaxed Wasserstein proximal
(:class:`RWP`) and the order-1 and order-2-diagonal semi-backward Euler estimators
(:class:`O1SBE`, :class:`O2DiagSBE`). Each needs ``jvp`` and ``vjp`` of the model
(O2Diag-SBE also its samples); one product costs one ``jvp`` and one ``vjp``."""

import numpy as np

from .base import ParametricMetric

__all__ = ["RWP", "O1SBE", "O2DiagSBE"]


class RWP(ParametricMetric):
    r"""Relaxed Wasserstein proximal metric (seed §4, Theorem 2):

    .. math:: G v = \frac1B\sum_b J_b^\top J_b v = \tfrac1B\,\mathrm{vjp}(\mathrm{jvp}(v)),

    the Hessian at :math:`v = 0` of :math:`\tfrac12\mathbb E_Z|g_{\theta+v}(Z) - g_\theta(Z)|^2`.
    It is an upper bound of the Wasserstein information matrix (the coupling through
    :math:`Z` is one coupling), and equal to it when :math:`v\mapsto J(z)v` is the
    gradient of a function of :math:`x` (location-scale models, seed Remark 1).
    """

    name = "rwp"

    def _apply(self, model, theta, z, v):
        return model.vjp(theta, z, model.jvp(theta, z, v)) / z.shape[0]


class O1SBE(ParametricMetric):
    r"""Order-1 sampling-based estimator (seed §4.3, affine potential :math:`\Phi`):

    .. math:: G v = \bar J^\top \bar J v + \lambda v, \qquad \bar J = \frac1B\sum_b J_b,

    the Hessian of :math:`\tfrac12|\mathbb E_Z[g_{\theta+v}(Z) - g_\theta(Z)]|^2`. Its rank is
    at most the sample dimension, so the default damping is :math:`10^{-3}`.
    """

    name = "o1sbe"

    def __init__(self, damping=1e-3, rtol=1e-10, max_iter=None):
        super().__init__(damping, rtol, max_iter)

    def _apply(self, model, theta, z, v):
        B = z.shape[0]
        wbar = model.jvp(theta, z, v).mean(axis=0)
        return model.vjp(theta, z, np.broadcast_to(wbar / B, (B, wbar.size)))


class O2DiagSBE(ParametricMetric):
    r"""Order-2 diagonal sampling-based estimator (seed §4.3, "SBE order 2").

    The seed's O2Diag-SBE penalty is the supremum over quadratic potentials
    :math:`\Phi(x) = \tfrac12 x^\top Q x + a^\top x + b`, :math:`Q` diagonal, of
    :math:`\mathbb E[\Phi(x) - \Phi(y)] - \tfrac12\mathbb E|\nabla\Phi(y)|^2` with
    :math:`x = g_\theta(Z)`, :math:`y = g_{\theta_k}(Z)` (the display after "Derivation of
    SBE order 2", maximised at :math:`(a^*, Q^*) = M^{-1}\ell`, eqs. (8)–(9)). With
    :math:`\delta = x - y = Jv + O(|v|^2)` the optimal :math:`q_i` of the seed is
    :math:`\operatorname{Cov}(\delta_i, y_i)/\operatorname{Var}(y_i) + O(|v|^2)`, and the
    supremum is, to second order, the least-squares fit of :math:`\delta_i` by
    :math:`a_i + q_i y_i`, coordinate by coordinate:

    .. math::

        \tfrac12 v^\top G v = \tfrac12\sum_i\Bigl[(\mathbb E\,\delta_i)^2
            + \frac{\operatorname{Cov}(\delta_i, y_i)^2}{\operatorname{Var}(y_i)}\Bigr],
        \qquad
        G v = \bar J^\top\bar J v + \sum_i c_i\,\frac{c_i\cdot v}{\operatorname{Var}(y_i)},
        \quad c_i = \frac1B\sum_b (y_{bi} - \bar y_i)\,J_{b,i}^\top ,

    with batch means and (biased, :math:`1/B`) batch variances — the empirical
    :math:`M` of eq. (9). Coordinates with zero sample variance contribute the
    mean term only. Default damping :math:`10^{-3}` (the rank is at most twice the
    sample dimension). For an affine model with diagonal scale it equals :class:`RWP`
    on the same batch whenever the batch's :math:`z` is centred with unit variance.
    """

    name = "o2diagsbe"

    def __init__(self, damping=1e-3, rtol=1e-10, max_iter=None):
        super().__init__(damping, rtol, max_iter)

    def _apply(self, model, theta, z, v):
        B = z.shape[0]
        y = model.sample(theta, z)
        yc = y - y.mean(axis=0)
        var = np.mean(yc * yc, axis=0)
        w = model.jvp(theta, z, v)
        wbar = w.mean(axis=0)
        cov = np.mean(yc * w, axis=0)
        slope = np.divide(cov, var, out=np.zeros_like(cov), where=var > 0)
        return model.vjp(theta, z, (wbar + yc * slope) / B)
