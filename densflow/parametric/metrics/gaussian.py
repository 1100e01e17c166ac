r"""Exact information matrices of :class:`~densflow.parametric.Gaussian` models
(Wasserstein, i.e. Bures–Wasserstein, and Fisher) and the closed forms of entropic OT
between 1D Gaussians used as the oracles of SiNG (DESIGN.md §4)."""

import numpy as np
from scipy.linalg import solve_continuous_lyapunov

from .base import ParametricMetric

__all__ = ["ExactWasserstein", "Fisher", "gaussian_sim_1d", "gaussian_sinkhorn_1d"]


def _check_regular(S, name):
    """Raise ``numpy.linalg.LinAlgError`` (a run reports it) unless :math:`\\Sigma` is
    finite and regular: the exact metrics are defined only there."""
    if not np.all(np.isfinite(S)):
        raise np.linalg.LinAlgError(f"{name}: the model's covariance holds NaN or inf "
                                    "(NaN parameters?)")
    low = float(np.linalg.eigvalsh(S).min())
    if not low > 1e-300:
        raise np.linalg.LinAlgError(f"{name}: the metric needs a regular covariance; at theta "
                                    f"it is singular (smallest eigenvalue {low:.3e}: a zero "
                                    "scale?)")


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
        _check_regular(S, self.name)
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
        _check_regular(S, self.name)
        dS = dA @ A.T + A @ dA.T
        P = np.linalg.solve(S, np.linalg.solve(S, dS).T)
        return model.cotangent(theta, np.linalg.solve(S, dm), P @ A)


def gaussian_sim_1d(variance, eps):
    r"""Sinkhorn information matrix of :math:`N(m, v)` in 1D in :math:`\theta = (m, v)`,
    from the closed form of entropic OT between Gaussians (Janati et al. 2020): with
    :math:`\varepsilon = 2s` and :math:`D(a, b) = \sqrt{4ab + s^2}`,
    :math:`\mathrm{OT}_\varepsilon = (m_a - m_b)^2 + a + b - D + s\log(D + s) + \text{const}`,
    so that, with :math:`E = \sqrt{4v^2 + s^2}`,

    .. math::

        \mathrm{SIM} = \operatorname{diag}\Bigl(2,\;
          \frac{4v^2}{E(E+s)^2} + \frac{8sv^2}{E^2(E+s)^2} + \frac{2s^2}{E^2(E+s)}\Bigr)

    (:math:`\partial_a^2` of :math:`-D(a,v) + s\log(D(a,v)+s)` plus
    :math:`-\tfrac12\partial_a^2` of the same at :math:`(a, a)`, at :math:`a = v`). As
    :math:`\varepsilon\to 0` it tends to :math:`\operatorname{diag}(2, 1/(2v))`, twice the
    Wasserstein information matrix.
    """
    v = float(variance)
    s = 0.5 * float(eps)
    E = np.sqrt(4 * v * v + s * s)
    return np.diag([2.0, 4 * v * v / (E * (E + s) ** 2) + 8 * s * v * v / (E ** 2 * (E + s) ** 2)
                    + 2 * s * s / (E ** 2 * (E + s))])


def gaussian_sinkhorn_1d(mean_a, var_a, mean_b, var_b, eps):
    r"""Debiased Sinkhorn divergence between :math:`N(m_a, a)` and :math:`N(m_b, b)` in 1D,
    closed form of Janati et al. (2020) (constants cancel in the debiasing):
    :math:`(m_a-m_b)^2 + \phi(D(a,b)) - \tfrac12\phi(D(a,a)) - \tfrac12\phi(D(b,b))`,
    :math:`\phi(D) = -D + s\log(D+s)`, :math:`s = \varepsilon/2`."""
    s = 0.5 * float(eps)

    def phi(a, b):
        D = np.sqrt(4 * a * b + s * s)
        return -D + s * np.log(D + s)

    return ((mean_a - mean_b) ** 2 + phi(var_a, var_b) - 0.5 * phi(var_a, var_a)
            - 0.5 * phi(var_b, var_b))
