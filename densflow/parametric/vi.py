r"""Gaussian variational inference and the Bures–Wasserstein gradient flow (issue 8).

For a target :math:`p \propto e^{-V}` known through :math:`\nabla\log p` (and
:math:`\nabla^2\log p` where available) and the variational family
:math:`q = N(\mu, SS^\top)`, :math:`x = \mu + Sz`, :math:`z\sim N(0, I)`:

* :func:`gaussian_vi`: Euclidean gradient descent on :math:`(\mu, S)` for
  :math:`\mathrm{KL}(q\,\|\,p) = \mathbb E_q V - \log|\det S| + \text{const}` with the
  reparametrisation or the sticking-the-landing (STL) gradient estimator
  (``seeds/yi2023-divergence-minimization-slides.txt``, "Continuous Time and Gaussian
  Family");
* :func:`bures_wasserstein_flow`: the Bures–Wasserstein gradient flow of the same KL
  (Lambert et al. 2022)

  .. math::

      \dot\mu = -\mathbb E_q[\nabla V], \qquad
      \dot\Sigma = 2I - \mathbb E_q[\nabla^2 V]\,\Sigma - \Sigma\,\mathbb E_q[\nabla^2 V],

  which the seed shows is the small-step limit of the Euclidean descent on
  :math:`(\mu, S)`, with :math:`\Sigma = SS^\top` and the same time scale;
* :class:`ReverseKL`: the same KL as a loss of a :class:`~densflow.parametric.Gaussian`
  model, so that ``densflow.solve`` runs natural-gradient VI with any parametric metric
  (``"exact_wasserstein"``: Bures–Wasserstein natural-gradient descent);
* :func:`w2_gaussian`: :math:`W_2` between Gaussians in closed form.

Targets are objects with ``grad_log_p(x)`` (``x`` of shape ``(B, d)`` → ``(B, d)``) and
optionally ``hess_log_p(x)`` (→ ``(B, d, d)``): :class:`GaussianTarget`,
:class:`LogisticRegressionPosterior`.
"""


import numbers

import numpy as np
import scipy.linalg

from .checks import check_int as _check_int
from .checks import check_mean as _check_mean
from .checks import check_positive as _check_positive
from .checks import check_spd as _check_spd
from .losses import Loss
from .models import Gaussian
from .quadrature import RULES, auto_rule, gaussian_expectation_nodes
from .targets import GaussianTarget, LogisticRegressionPosterior
from .targets import check_target as _check_target

__all__ = ["GaussianTarget", "LogisticRegressionPosterior", "gaussian_expectation_nodes", "auto_rule", "RULES",
           "vi_gradient", "vi_problem",
           "bures_wasserstein_flow", "gaussian_vi", "ReverseKL", "w2_gaussian", "kl_gaussian"]


def bures_wasserstein_flow(target, mu0, Sigma0, t_end, dt, expectations="cubature", order=5,
                           n_samples=1000, rng=None, use_hessian=None):
    r"""Integrate the Bures–Wasserstein gradient flow of :math:`\mathrm{KL}(q\,\|\,p)`.

    .. math::

        \dot\mu = \mathbb E_{N(\mu,\Sigma)}[\nabla\log p], \qquad
        \dot\Sigma = 2I + \mathbb E[\nabla^2\log p]\,\Sigma + \Sigma\,\mathbb E[\nabla^2\log p].

    Scheme: classical RK4 in :math:`(\mu, \Sigma)` with constant step ``dt`` (the last
    step shortened to land on ``t_end``), run by :func:`densflow.solve` on
    :class:`densflow.parametric.flows.BuresWassersteinFlow` (``solve`` that problem directly
    to record the run, stop on ``gtol`` or watch it with a callback). Expectations are sums over fixed nodes
    :math:`x_n = \mu + L z_n`, :math:`\Sigma = LL^\top` (Cholesky), from
    :func:`gaussian_expectation_nodes`: the Gauss–Hermite rule (``"cubature"``, exact
    for a Gaussian target, where the integrands are polynomials of degree ≤ 2), or
    ``n_samples`` Monte Carlo nodes drawn once (``"mc"``, common random numbers, so the
    ODE right-hand side is a smooth function and RK4 keeps its order). Without a
    Hessian, :math:`\mathbb E[\nabla^2 V]\Sigma` is replaced by Stein's identity
    :math:`\mathbb E[\nabla V\,(x-\mu)^\top]`.

    Parameters
    ----------
    target : object
        ``grad_log_p(x)``, optionally ``hess_log_p(x)``.
    mu0 : array_like, shape (d,)
    Sigma0 : array_like, shape (d, d)
        Symmetric positive definite.
    t_end, dt : float
        Final time (> 0) and step (> 0).
    expectations : {"cubature", "mc"}
    order, n_samples, rng
        See :func:`gaussian_expectation_nodes`.
    use_hessian : bool or None
        Default: whether ``target`` has ``hess_log_p``.

    Returns
    -------
    t : ndarray, shape (K+1,)
    mu : ndarray, shape (K+1, d)
    Sigma : ndarray, shape (K+1, d, d)
    """
    mu = _check_mean(mu0)
    d = mu.size
    Sigma = _check_spd(np.atleast_2d(Sigma0), d, "Sigma0")
    t_end = _check_positive(t_end, "t_end")
    dt = _check_positive(dt, "dt")
    _check_target(target, d)
    if use_hessian is None:
        use_hessian = callable(getattr(target, "hess_log_p", None))
    elif use_hessian and not callable(getattr(target, "hess_log_p", None)):
        raise ValueError("use_hessian=True needs a target with hess_log_p(x)")
    from ..solving import FixedStep, solve
    from .flows import BuresWassersteinFlow

    problem = BuresWassersteinFlow(target, d, expectations, order, n_samples, rng, use_hessian)
    n_steps = int(np.ceil(t_end / dt - 1e-12))
    states = [problem.pack(mu, Sigma)]
    ts = [0.0]
    keep = lambda k, p, *_: states.append(p.copy()) or False  # noqa: E731
    solve(problem, states[0], "euclidean", tol=None, max_iter=n_steps - 1,
          line_search=FixedStep(dt), callback=keep)
    ts += [(k + 1) * dt for k in range(n_steps - 1)]
    # the last step shortened to land on t_end
    solve(problem, states[-1], "euclidean", tol=None, max_iter=1,
          line_search=FixedStep(t_end - (n_steps - 1) * dt), callback=keep)
    ts.append(t_end)
    mus, Sigmas = zip(*(problem.unpack(p) for p in states))
    return np.array(ts), np.array(mus), np.array(Sigmas)


def vi_gradient(target, mu, S, z, w, estimator="reparam"):
    r"""Euclidean gradient of :math:`\mathrm{KL}(N(\mu, SS^\top)\,\|\,p)` in
    :math:`(\mu, S)`, estimated on nodes ``z`` with weights ``w``
    (:math:`x_n = \mu + S z_n`, :math:`g_n = \nabla\log p(x_n)`).

    ``"reparam"``: :math:`\nabla_\mu = -\sum w_n g_n`,
    :math:`\nabla_S = -\sum w_n g_n z_n^\top - S^{-\top}` (the entropy term exactly).

    ``"stl"`` (sticking the landing): the score of :math:`q` enters through the samples,
    :math:`\nabla_x\log q(x_n) = -S^{-\top} z_n`, so with
    :math:`u_n = g_n + S^{-\top}z_n = \nabla_x\log(p/q)(x_n)`:
    :math:`\nabla_\mu = -\sum w_n u_n`, :math:`\nabla_S = -\sum w_n u_n z_n^\top`. Both
    are unbiased; STL has zero variance when :math:`q = p`.
    """
    x = mu + z @ S.T
    g = target.grad_log_p(x)
    SinvT = np.linalg.inv(S).T
    if estimator == "reparam":
        return -(w @ g), -(g * w[:, None]).T @ z - SinvT
    if estimator == "stl":
        u = g + z @ SinvT.T
        return -(w @ u), -(u * w[:, None]).T @ z
    raise ValueError(f"estimator must be 'reparam' or 'stl', got {estimator!r}")


def gaussian_vi(target, mu0, S0, step, n_steps, estimator="stl", expectations="mc",
                n_samples=100, order=5, rng=None):
    r"""Gaussian VI by Euclidean gradient descent on :math:`(\mu, S)`.

    .. math::

        \mu_{k+1} = \mu_k - \eta\,\widehat{\nabla_\mu\mathrm{KL}}, \qquad
        S_{k+1} = S_k - \eta\,\widehat{\nabla_S\mathrm{KL}},

    with the estimators of :func:`vi_gradient` on fresh draws of ``n_samples`` latent
    points per step (``expectations="mc"``) or on the fixed Gauss–Hermite nodes
    (``"cubature"``, a deterministic descent). :math:`S` is a full square matrix (not
    constrained to be triangular). After :math:`k` steps the iterate is compared with
    the flow at time :math:`t = k\eta`. Run by :func:`densflow.solve` on
    :func:`vi_problem` (``metric="euclidean"``, ``FixedStep(step)``).

    Parameters
    ----------
    target : object with ``grad_log_p``
    mu0 : array_like, shape (d,)
    S0 : array_like, shape (d, d)
        Invertible.
    step : float
        :math:`\eta > 0`.
    n_steps : int
    estimator : {"reparam", "stl"}
    expectations : {"mc", "cubature"}
    n_samples, order, rng
        See :func:`gaussian_expectation_nodes`.

    Returns
    -------
    mu : ndarray, shape (n_steps+1, d)
    S : ndarray, shape (n_steps+1, d, d)
    """
    mu = _check_mean(mu0)
    d = mu.size
    S = np.atleast_2d(np.asarray(S0, dtype=float)).copy()
    if S.shape != (d, d) or not np.all(np.isfinite(S)) or abs(np.linalg.det(S)) < 1e-300:
        raise ValueError(f"S0 must be a finite invertible ({d}, {d}) matrix")
    step = _check_positive(step, "step")
    n_steps = _check_int(n_steps, "n_steps", 0)
    if estimator not in ("reparam", "stl"):
        raise ValueError(f"estimator must be 'reparam' or 'stl', got {estimator!r}")
    _check_target(target, d)
    if expectations not in ("mc", "cubature"):
        raise ValueError(f"expectations must be 'mc' or 'cubature', got {expectations!r}")
    problem = vi_problem(target, d, estimator, expectations, n_samples, order, rng)
    path = [np.concatenate([mu, S.ravel()])]
    from ..solving import FixedStep, solve

    solve(problem, path[0], "euclidean", tol=None, max_iter=n_steps, line_search=FixedStep(step),
          callback=lambda k, p, *_: path.append(p.copy()) and False)
    path = np.array(path)
    return path[:, :d], path[:, d:].reshape(-1, d, d)


def vi_problem(target, dim, estimator="stl", expectations="mc", n_samples=100, order=5, rng=None):
    """The :class:`~densflow.parametric.Problem` of :func:`gaussian_vi`: a ``"full"``
    :class:`~densflow.parametric.Gaussian` (θ = [μ, vec S]) and :class:`ReverseKL` with
    ``estimator``, on fresh batches of ``n_samples`` (``"mc"``) or the Gauss–Hermite rule."""
    from .problem import Problem

    model = Gaussian(dim, "full")
    if expectations == "mc":
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        return Problem(model, ReverseKL(target, "batch", estimator=estimator),
                       batch_size=n_samples, rng=rng)
    return Problem(model, ReverseKL(target, "cubature", order=order, estimator=estimator),
                   z=np.zeros((1, dim)))


class ReverseKL(Loss):
    r""":math:`\mathrm{KL}(q_\theta\,\|\,p)` of a :class:`~densflow.parametric.Gaussian`
    model :math:`q_\theta = N(m, AA^\top)` as a loss of :class:`~densflow.parametric.Problem`,
    so that ``densflow.solve`` minimises it with any parametric metric and its line search:
    ``metric="exact_wasserstein"`` is Bures–Wasserstein natural-gradient descent (a
    time discretisation of :func:`bures_wasserstein_flow`), ``"euclidean"`` with
    ``FixedStep`` is plain descent on the parameters (with ``estimator="stl"``,
    ``expectations="batch"``, a ``"full"`` model and fresh batches: :func:`gaussian_vi`).

    .. math::

        F(\theta) = -\sum_n w_n\log p(m + Az_n) - \log|\det A| - \frac d2(1 + \log 2\pi),
        \qquad
        \nabla_\theta F = -\sum_n w_n J_n^\top\nabla\log p(x_n)
                          - \text{cotangent}(0, A^{-\top}),

    equal to :math:`\mathrm{KL}(q_\theta\|p) - \log Z` when ``log_p`` is normalised up to
    :math:`\log Z` (exactly the KL for :class:`GaussianTarget`), up to the error of the rule.
    The sticking-the-landing gradient (``estimator="stl"``) replaces the entropy's exact
    term by the path derivative of :math:`\log q_\theta` at the nodes,
    :math:`\nabla_\theta F = -\sum_n w_n J_n^\top(\nabla\log p(x_n) + A^{-\top}z_n)`
    (:math:`\nabla_x\log q(x_n) = -A^{-\top}z_n`), unbiased and zero at :math:`q = p`.

    Parameters
    ----------
    target : object
        ``log_p(x)`` and ``grad_log_p(x)`` (rows of ``x``).
    expectations : {"auto", "cubature", "degree5", "batch"}
        The rule of the expectation (the value and its gradient):

        ``"auto"`` (default)
            ``"cubature"`` while its ``order**d`` nodes are at most ``max_nodes`` (5000:
            ``d <= 5`` at ``order = 5``), else ``"degree5"`` while its :math:`2d^2+1` nodes
            are (``d <= 49``), else ``"batch"`` (:func:`auto_rule`): the number of nodes
            grows at most like :math:`d^2`.
        ``"cubature"``
            The tensor Gauss–Hermite rule of :func:`gaussian_expectation_nodes` with
            ``order`` points per dimension (exact for a Gaussian target from ``order = 2``).
        ``"degree5"``
            The fully symmetric rule exact for total degree 5 (exact for a Gaussian
            target), :math:`2d^2 + 1` nodes.
        ``"batch"``
            Monte Carlo: the problem's latent batch with equal weights.
    order : int
        Points per dimension of ``"cubature"`` (default 5).
    estimator : {"reparam", "stl"}
        The gradient (default ``"reparam"``: the entropy's gradient exactly).
    max_nodes : int
        The node budget of ``"auto"``.
    """

    name = "reverse_kl"

    def __init__(self, target, expectations="auto", order=5, estimator="reparam", max_nodes=5000):
        for method in ("log_p", "grad_log_p"):
            if not callable(getattr(target, method, None)):
                raise ValueError(f"target must have a {method}(x) method")
        if expectations not in ("auto", "cubature", "degree5", "batch"):
            raise ValueError(f"expectations must be 'auto', 'cubature', 'degree5' or 'batch', "
                             f"got {expectations!r}")
        if estimator not in ("reparam", "stl"):
            raise ValueError(f"estimator must be 'reparam' or 'stl', got {estimator!r}")
        self.target, self.expectations, self.estimator = target, expectations, estimator
        self.order = _check_int(order, "order")
        self.max_nodes = _check_int(max_nodes, "max_nodes")
        self._rules = {}

    def rule(self, dim):
        """The rule used in ``dim`` dimensions: ``"cubature"``, ``"degree5"`` or ``"batch"``."""
        if self.expectations == "auto":
            return auto_rule(dim, self.order, self.max_nodes)
        return self.expectations

    def _rule(self, dim, z):
        """Nodes and weights: a fixed rule (built once per dimension) or ``z``."""
        rule = self.rule(dim)
        if rule == "batch":
            z = np.atleast_2d(np.asarray(z, dtype=float))
            return z, np.full(z.shape[0], 1.0 / z.shape[0])
        if dim not in self._rules:
            self._rules[dim] = gaussian_expectation_nodes(dim, rule, self.order)
        return self._rules[dim]

    def value_and_grad(self, model, theta, z):
        if not isinstance(model, Gaussian):
            raise ValueError(f"ReverseKL needs a Gaussian model (its entropy in closed form), "
                             f"got {model!r}")
        z, w = self._rule(model.dim, z)
        theta = np.asarray(theta, dtype=float)
        A = model.factor(theta)
        sign, logdet = np.linalg.slogdet(A)
        if sign == 0 or not np.isfinite(logdet):
            return np.inf, np.full(theta.shape, np.nan)
        x = model.sample(theta, z)
        value = (-(w @ self.target.log_p(x)) - logdet
                 - 0.5 * model.dim * (1.0 + np.log(2 * np.pi)))
        g = self.target.grad_log_p(x)
        AinvT = np.linalg.inv(A).T
        if self.estimator == "stl":
            grad = model.vjp(theta, z, -w[:, None] * (g + z @ AinvT.T))
        else:
            grad = (model.vjp(theta, z, -w[:, None] * g)
                    - model.cotangent(theta, np.zeros(model.dim), AinvT))
        return float(value), grad


def w2_gaussian(m1, C1, m2, C2):
    r""":math:`W_2(N(m_1, C_1), N(m_2, C_2))`:

    .. math::

        W_2^2 = |m_1 - m_2|^2 + \operatorname{tr}\bigl(C_1 + C_2
                - 2(C_2^{1/2} C_1 C_2^{1/2})^{1/2}\bigr).
    """
    m1, m2 = np.atleast_1d(m1).astype(float), np.atleast_1d(m2).astype(float)
    C1, C2 = np.atleast_2d(C1).astype(float), np.atleast_2d(C2).astype(float)
    r2 = np.real(scipy.linalg.sqrtm(C2))
    cross = np.real(scipy.linalg.sqrtm(r2 @ C1 @ r2))
    val = np.sum((m1 - m2) ** 2) + np.trace(C1 + C2 - 2 * cross)
    return float(np.sqrt(max(val, 0.0)))


def kl_gaussian(m1, C1, m2, C2):
    r""":math:`\mathrm{KL}(N(m_1, C_1)\,\|\,N(m_2, C_2)) = \frac12\bigl[\operatorname{tr}(C_2^{-1}C_1)
    + (m_2-m_1)^\top C_2^{-1}(m_2-m_1) - d + \log\det C_2 - \log\det C_1\bigr]`."""
    m1, m2 = np.atleast_1d(m1).astype(float), np.atleast_1d(m2).astype(float)
    C1, C2 = np.atleast_2d(C1).astype(float), np.atleast_2d(C2).astype(float)
    dm = m2 - m1
    P = np.linalg.inv(C2)
    return float(0.5 * (np.trace(P @ C1) + dm @ P @ dm - m1.size
                        + np.linalg.slogdet(C2)[1] - np.linalg.slogdet(C1)[1]))
