r"""Parametric metrics: natural-gradient directions :math:`G(\theta)^{-1}\nabla F` (issue 6).

Every metric has ``direction(model, theta, grad, z)`` and solves
:math:`G(\theta)\, s = \nabla F` by conjugate gradients on the product
:math:`v \mapsto G v` (``apply``), built from the model's ``jvp``/``vjp`` only (a dense
Jacobian is never formed), plus ``damping`` :math:`\lambda\ge 0` times the identity
where :math:`G` can be singular. With :math:`J_b = \partial g_\theta(z_b)/\partial\theta`
over the batch :math:`z_1 \dots z_B`:

=====================  ================================================================
:class:`Euclidean`     :math:`G = I`
:class:`RWP`           :math:`G = \frac1B\sum_b J_b^\top J_b` (relaxed Wasserstein proximal)
:class:`O1SBE`         :math:`G = \bar J^\top \bar J`, :math:`\bar J = \frac1B\sum_b J_b`
:class:`O2DiagSBE`     :math:`G = \bar J^\top\bar J + \sum_i c_i c_i^\top/\operatorname{Var}(x_{\cdot i})`
:class:`ExactWasserstein`  Wasserstein information matrix of a :class:`Gaussian` model
:class:`Fisher`        Fisher information matrix of a :class:`Gaussian` model
=====================  ================================================================

:math:`\tfrac12 v^\top G v` is the second-order term of the proximal penalty
:math:`\tilde D(\theta, \theta + v)^2/2` of ``seeds/lin2021-wasserstein-proximal-gans.txt``
(§4), so that a proximal step with step size :math:`h` is, to first order, the
natural-gradient step :math:`-h G^{-1}\nabla F`.
"""

import numbers

import numpy as np
from scipy.linalg import solve_continuous_lyapunov

from .models import Gaussian

__all__ = ["ParametricMetric", "Euclidean", "RWP", "O1SBE", "O2DiagSBE", "ExactWasserstein",
           "Fisher", "CGError", "conjugate_gradient", "get", "NAMES"]


class CGError(RuntimeError):
    """Conjugate gradients could not solve :math:`G s = g`."""


def conjugate_gradient(apply, b, rtol=1e-10, max_iter=None, name="metric"):
    r"""Solve :math:`G x = b` for a symmetric positive (semi)definite :math:`G` given as
    ``apply(v) = G v``, from :math:`x_0 = 0`, until :math:`\|b - Gx\| \le`
    ``rtol`` :math:`\|b\|`.

    Raises
    ------
    CGError
        When :math:`p^\top G p \le 0` along a search direction (singular or indefinite
        :math:`G`), or when ``max_iter`` (default ``10 n + 50``) iterations do not
        reach the tolerance. The message names ``name`` and suggests ``damping``.
    """
    b = np.asarray(b, dtype=float)
    bnorm = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if bnorm == 0.0:
        return x
    max_iter = 10 * b.size + 50 if max_iter is None else int(max_iter)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    for _ in range(max_iter):
        Gp = apply(p)
        pGp = float(p @ Gp)
        if not pGp > 0:
            raise CGError(f"{name}: G is singular or indefinite along a CG direction "
                          f"(p.Gp = {pGp:.3e}); use damping > 0")
        alpha = rr / pGp
        x += alpha * p
        r -= alpha * Gp
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= rtol * bnorm:
            return x
        p = r + (rr_new / rr) * p
        rr = rr_new
    raise CGError(f"{name}: conjugate gradients did not reach rtol = {rtol:g} in "
                  f"max_iter = {max_iter} iterations (relative residual "
                  f"{np.sqrt(rr) / bnorm:.3e}); G may be singular or ill-conditioned: "
                  f"use damping > 0 or raise max_iter")


def _nonneg(value, name):
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class ParametricMetric:
    r"""Base class: :math:`G(\theta) + \lambda I` applied by ``apply`` and inverted by CG.

    Parameters
    ----------
    damping : float
        :math:`\lambda \ge 0` added to :math:`G`.
    rtol : float
        Relative residual of the CG solve.
    max_iter : int or None
        CG iteration cap (default ``10 n + 50`` for ``n`` parameters).
    """

    name = None
    #: Whether the metric is defined only for :class:`Gaussian` models.
    gaussian_only = False

    def __init__(self, damping=0.0, rtol=1e-10, max_iter=None):
        self.damping = _nonneg(damping, "damping")
        if not (isinstance(rtol, numbers.Real) and 0 < rtol < 1):
            raise ValueError(f"rtol must lie strictly between 0 and 1, got {rtol!r}")
        self.rtol = float(rtol)
        if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral)
                                     or max_iter < 1):
            raise ValueError(f"max_iter must be an integer >= 1 or None, got {max_iter!r}")
        self.max_iter = max_iter

    def __repr__(self):
        return f"{type(self).__name__}(damping={self.damping:g})"

    def check_model(self, model):
        if self.gaussian_only and not isinstance(model, Gaussian):
            raise ValueError(f"the {self.name} metric is defined for Gaussian models only, "
                             f"got {model!r}")

    def _apply(self, model, theta, z, v):
        raise NotImplementedError

    def apply(self, model, theta, z, v):
        """:math:`(G(\\theta) + \\lambda I) v`."""
        out = self._apply(model, theta, z, np.asarray(v, dtype=float))
        return out + self.damping * v if self.damping else out

    def matrix(self, model, theta, z=None):
        """Dense :math:`G + \\lambda I` by applying it to the unit vectors (tests, small models)."""
        self.check_model(model)
        n = model.n_params
        return np.column_stack([self.apply(model, theta, z, e) for e in np.eye(n)])

    def direction(self, model, theta, grad, z=None):
        """:math:`(G(\\theta) + \\lambda I)^{-1}` ``grad`` by conjugate gradients."""
        self.check_model(model)
        return conjugate_gradient(lambda v: self.apply(model, theta, z, v), grad,
                                  rtol=self.rtol, max_iter=self.max_iter, name=self.name)


class Euclidean(ParametricMetric):
    """:math:`G = I`: plain gradient descent (``direction`` returns ``grad``)."""

    name = "euclidean"

    def __init__(self):
        super().__init__()

    def _apply(self, model, theta, z, v):
        return v.copy()

    def direction(self, model, theta, grad, z=None):
        return np.array(grad, dtype=float)


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


class ExactWasserstein(ParametricMetric):
    r"""Wasserstein information matrix of a :class:`Gaussian` model (needs a regular
    :math:`\Sigma`).

    For :math:`N(m, \Sigma)`, :math:`\Sigma = AA^\top`, a tangent :math:`(dm, d\Sigma)` has
    squared Wasserstein (Bures–Wasserstein) length

    .. math::

        |dm|^2 + \operatorname{tr}(U\Sigma U), \qquad U\Sigma + \Sigma U = d\Sigma ,

    (Lyapunov equation; :math:`x \mapsto U(x-m)` is the velocity field). Pulled back to
    :math:`\theta` through :math:`d\Sigma = dA\,A^\top + A\,dA^\top`:
    :math:`G v = (dm,\; U A)` mapped by :meth:`Gaussian.cotangent`. For ``"mean"``,
    ``"diag"`` and ``"logdiag"`` this is diagonal: :math:`I`, :math:`I` and
    :math:`\operatorname{diag}(1, e^{2\ell})`; for ``"cholesky"`` it is the exact
    Wasserstein information matrix in the coordinates :math:`\operatorname{vech} L`
    (:math:`L\mapsto LL^\top` is a local diffeomorphism onto the covariances). ``z`` is
    not used.
    """

    name = "exact_wasserstein"
    gaussian_only = True

    def _apply(self, model, theta, z, v):
        dm, dA = model.tangent(theta, v)
        A = model.factor(theta)
        S = A @ A.T
        U = solve_continuous_lyapunov(S, dA @ A.T + A @ dA.T)
        return model.cotangent(theta, dm, U @ A)


class Fisher(ParametricMetric):
    r"""Fisher information matrix of a :class:`Gaussian` model (needs a regular :math:`\Sigma`):

    .. math::

        v^\top G v = dm^\top\Sigma^{-1}dm + \tfrac12\operatorname{tr}
            (\Sigma^{-1}d\Sigma\,\Sigma^{-1}d\Sigma),
        \qquad G v = (\Sigma^{-1}dm,\; \Sigma^{-1}d\Sigma\,\Sigma^{-1}A)

    mapped by :meth:`Gaussian.cotangent` (:math:`d\Sigma = dA\,A^\top + A\,dA^\top`). For
    ``"diag"``: :math:`\operatorname{diag}(1/s^2, 2/s^2)`; ``"logdiag"``:
    :math:`\operatorname{diag}(e^{-2\ell}, 2)`. ``z`` is not used.
    """

    name = "fisher"
    gaussian_only = True

    def _apply(self, model, theta, z, v):
        dm, dA = model.tangent(theta, v)
        A = model.factor(theta)
        S = A @ A.T
        dS = dA @ A.T + A @ dA.T
        P = np.linalg.solve(S, np.linalg.solve(S, dS).T)
        return model.cotangent(theta, np.linalg.solve(S, dm), P @ A)


_CLASSES = {cls.name: cls for cls in (Euclidean, RWP, O1SBE, O2DiagSBE, ExactWasserstein, Fisher)}
NAMES = tuple(_CLASSES)


def get(metric):
    """A metric object from a name in :data:`NAMES` or a :class:`ParametricMetric`."""
    if isinstance(metric, ParametricMetric):
        return metric
    if isinstance(metric, str) and metric in _CLASSES:
        return _CLASSES[metric]()
    raise ValueError(f"parametric metric must be one of {NAMES} or a ParametricMetric, "
                     f"got {metric!r}")
