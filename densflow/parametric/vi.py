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

from .losses import Loss
from .models import Gaussian

__all__ = ["GaussianTarget", "LogisticRegressionPosterior", "gaussian_expectation_nodes", "auto_rule", "RULES",
           "vi_gradient", "vi_problem",
           "bures_wasserstein_flow", "gaussian_vi", "ReverseKL", "w2_gaussian", "kl_gaussian"]


def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_spd(mat, dim, name):
    mat = np.asarray(mat, dtype=float)
    if mat.shape != (dim, dim) or not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} must be a finite ({dim}, {dim}) matrix, got shape {mat.shape}")
    if not np.allclose(mat, mat.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return 0.5 * (mat + mat.T)


# targets -------------------------------------------------------------------------------
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


# expectations under N(mu, S S^T) ----------------------------------------------------------
#: The rules of :func:`gaussian_expectation_nodes`.
RULES = ("cubature", "degree5", "mc")


def _degree5_rule(dim):
    r"""The fully symmetric degree-5 rule for :math:`N(0, I_d)` with :math:`2d^2 + 1`
    nodes (Stroud 1971, rule :math:`E_n^{r^2}` 5-2, rescaled to the standard normal):
    the origin with weight :math:`2/(d+2)`, :math:`\pm\sqrt{d+2}\,e_i` with weight
    :math:`(4-d)/(2(d+2)^2)` and :math:`\pm\sqrt{(d+2)/2}\,(e_i \pm e_j)`,
    :math:`i<j`, with weight :math:`1/(d+2)^2`. Exact for every polynomial of total
    degree :math:`\le 5` (weights negative for :math:`d > 4`)."""
    d = dim
    r, s = np.sqrt(d + 2.0), np.sqrt((d + 2.0) / 2.0)
    nodes, weights = [np.zeros((1, d))], [np.array([2.0 / (d + 2)])]
    eye = np.eye(d)
    nodes += [r * eye, -r * eye]
    weights += [np.full(2 * d, (4.0 - d) / (2.0 * (d + 2) ** 2))]
    i, j = np.triu_indices(d, 1)
    for si in (1.0, -1.0):
        for sj in (1.0, -1.0):
            nodes.append(s * (si * eye[i] + sj * eye[j]))
    weights.append(np.full(4 * i.size, 1.0 / (d + 2) ** 2))
    return np.concatenate(nodes), np.concatenate(weights)


def gaussian_expectation_nodes(dim, expectations="cubature", order=5, n_samples=1000, rng=None):
    r"""Nodes ``z`` (shape ``(N, dim)``) and weights ``w`` (summing to 1) with
    :math:`\mathbb E_{z\sim N(0,I)} f(z) \approx \sum_n w_n f(z_n)`.

    ``"cubature"``: the tensor Gauss–Hermite rule with ``order`` points per dimension,
    exact for polynomials of degree :math:`\le 2\,\text{order} - 1` in each variable
    (:math:`\text{order}^d` nodes: 9.8 M at ``order = 5``, ``d = 10``).
    ``"degree5"``: the fully symmetric rule exact for total degree :math:`\le 5` with
    :math:`2d^2 + 1` nodes (201 at ``d = 10``). ``"mc"``: ``n_samples`` draws from ``rng``
    with equal weights.
    """
    dim = _check_int(dim, "dim")
    if expectations == "cubature":
        order = _check_int(order, "order")
        t, w = np.polynomial.hermite_e.hermegauss(order)
        w = w / w.sum()
        grids = np.meshgrid(*([t] * dim), indexing="ij")
        weights = np.meshgrid(*([w] * dim), indexing="ij")
        z = np.stack([g.ravel() for g in grids], axis=1)
        return z, np.prod(np.stack([g.ravel() for g in weights], axis=1), axis=1)
    if expectations == "degree5":
        return _degree5_rule(dim)
    if expectations == "mc":
        n = _check_int(n_samples, "n_samples")
        return np.random.default_rng(rng).standard_normal((n, dim)), np.full(n, 1.0 / n)
    raise ValueError(f"expectations must be one of {RULES}, got {expectations!r}")


def auto_rule(dim, order=5, max_nodes=5000):
    """The rule of ``ReverseKL(expectations="auto")`` in ``dim`` dimensions: ``"cubature"``
    while ``order**dim <= max_nodes``, else ``"degree5"`` while ``2 dim**2 + 1 <=
    max_nodes``, else ``"batch"`` (Monte Carlo on the problem's batch)."""
    if order ** dim <= max_nodes:
        return "cubature"
    if 2 * dim * dim + 1 <= max_nodes:
        return "degree5"
    return "batch"


def _check_target(target, dim):
    if not callable(getattr(target, "grad_log_p", None)):
        raise ValueError("target must have a grad_log_p(x) method")
    g = np.asarray(target.grad_log_p(np.zeros((1, dim))))
    if g.shape != (1, dim):
        raise ValueError(f"target.grad_log_p must map (B, {dim}) to (B, {dim}), got {g.shape}")


def _check_mean(mu0, name="mu0"):
    mu = np.atleast_1d(np.asarray(mu0, dtype=float))
    if mu.ndim != 1 or not np.all(np.isfinite(mu)):
        raise ValueError(f"{name} must be a finite 1D array, got shape {mu.shape}")
    return mu


def _bw_field(target, mu, Sigma, z, w, use_hessian):
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
