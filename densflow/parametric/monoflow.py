r"""Probability-flow particles and MonoFlow (issue 8,
``seeds/yi2023-divergence-minimization-slides.txt``).

Particles :math:`x \sim q_t` move along

.. math:: \dot x = h'(\log r_t(x))\,\nabla_x\log r_t(x), \qquad r_t = p/q_t,

for an increasing :math:`h` (MonoFlow); the KL divergence :math:`\mathrm{KL}(q_t\|p)`
then decreases at the rate :math:`\int h'(\log r)\,|\nabla\log r|^2\,dq_t`. The log
ratio is learned from two sample sets by logistic regression ("logit trick"):
maximising :math:`\mathbb E_p\log\sigma(d) + \mathbb E_q\log(1-\sigma(d))` gives
:math:`d^* = \log(p/q)`.

* :class:`RatioEstimator`: :math:`d(x) = \beta^\top\phi(x) + c` with random Fourier
  features and a linear part, fitted by Newton's method; gives :math:`d` and :math:`\nabla_x d`.
* :data:`H_FUNCTIONS`: the seed's generator losses :math:`h` and the :math:`f`-divergence
  flows (:math:`h'(\log r) = r^2 f''(r)`).
* :class:`ProbabilityFlow`: forward Euler on particles, the ratio refitted every ``k``
  steps.
* :func:`distill`: a push-forward model trained with the generator loss
  :math:`-\mathbb E\,h(d(g_\theta(z)))` (the seed's "parametrised particles").
"""

import numbers

import numpy as np

from .checks import check_int as _check_int
from .checks import check_positive as _check_positive
from .checks import check_samples as _samples
from .optimizers import Adam

__all__ = ["RatioEstimator", "H_FUNCTIONS", "h_prime", "ProbabilityFlow", "distill"]


def _mm(a, b):
    """``a @ b`` without BLAS: the products here are small or thin, and threaded
    OpenBLAS makes them 10x slower on a busy two-core machine (spinning threads)."""
    return np.einsum("ij,jk->ik", a, b) if b.ndim == 2 else np.einsum("ij,j->i", a, b)


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class RatioEstimator:
    r"""Log density ratio :math:`d(x)\approx\log p(x)/q(x)` by logistic regression.

    .. math::

        d(x) = \beta^\top\phi(x) + \alpha^\top x + c, \qquad
        \phi_j(x) = \sqrt{2/M}\,\cos(\omega_j^\top x + b_j),\quad
        \omega_j\sim N(0, \ell^{-2}I),\ b_j\sim U[0, 2\pi),

    minimising the balanced logistic loss
    :math:`\frac1{n_p}\sum_p \log(1+e^{-d}) + \frac1{n_q}\sum_q\log(1+e^{d})
    + \frac\lambda2(|\beta|^2 + |\alpha|^2)` by Newton's method with backtracking
    (warm-started from the previous fit; stopped when the Newton decrement
    :math:`g^\top H^{-1}g/2` drops below ``tol``), whose
    population minimiser (:math:`\lambda\to0`, rich features) is :math:`\log p/q`.

    Parameters
    ----------
    n_features : int
        :math:`M`.
    bandwidth : float or "median"
        :math:`\ell`; ``"median"``: the median distance between pooled samples (the
        median heuristic), recomputed at each :meth:`fit`.
    reg : float
        :math:`\lambda \ge 0`.
    rng : seed or Generator
        For the frequencies (drawn anew at each fit).
    tol, max_newton : float, int
        Stopping rule of Newton's method.
    """

    def __init__(self, n_features=200, bandwidth="median", reg=1e-3, rng=None, tol=1e-10,
                 max_newton=30):
        self.n_features = _check_int(n_features, "n_features")
        if bandwidth != "median":
            bandwidth = _check_positive(bandwidth, "bandwidth")
        self.bandwidth = bandwidth
        if isinstance(reg, bool) or not isinstance(reg, numbers.Real) or not reg >= 0:
            raise ValueError(f"reg must be a number >= 0, got {reg!r}")
        self.reg = float(reg)
        self.rng = np.random.default_rng(rng)
        self.tol, self.max_newton = float(tol), _check_int(max_newton, "max_newton")
        self.params = None

    def _features(self, x):
        return np.sqrt(2.0 / self.n_features) * np.cos(_mm(x, self.omega.T) + self.phase)

    def fit(self, p_samples, q_samples):
        """Fit to samples of :math:`p` (label 1) and :math:`q` (label 0); returns ``self``."""
        xp = _samples(p_samples, "p_samples")
        xq = _samples(q_samples, "q_samples", xp.shape[1])
        d = xp.shape[1]
        if self.bandwidth == "median":
            pool = np.concatenate([xp, xq])
            sub = pool[self.rng.choice(len(pool), min(len(pool), 500), replace=False)]
            dist = np.sqrt(np.sum((sub[:, None] - sub[None]) ** 2, axis=-1))
            ell = float(np.median(dist[np.triu_indices(len(sub), 1)]))
        else:
            ell = self.bandwidth
        self.ell = ell
        self.omega = self.rng.standard_normal((self.n_features, d)) / ell
        self.phase = self.rng.uniform(0, 2 * np.pi, self.n_features)
        Fp = np.hstack([self._features(xp), xp, np.ones((len(xp), 1))])
        Fq = np.hstack([self._features(xq), xq, np.ones((len(xq), 1))])
        npf, nqf = len(xp), len(xq)
        FpT, FqT = np.ascontiguousarray(Fp.T), np.ascontiguousarray(Fq.T)
        mask = np.ones(Fp.shape[1])
        mask[-1] = 0.0                                  # the intercept is not penalised

        def loss(w):
            ap, aq = _mm(Fp, w), _mm(Fq, w)
            return np.mean(np.logaddexp(0, -ap)) + np.mean(np.logaddexp(0, aq)) \
                + 0.5 * self.reg * np.sum(mask * w * w), ap, aq

        w = np.zeros(Fp.shape[1]) if self.params is None or self.params.size != Fp.shape[1] \
            else self.params
        val, ap, aq = loss(w)
        for _ in range(self.max_newton):
            sp, sq = _sigmoid(-ap), _sigmoid(aq)
            grad = -_mm(FpT, sp) / npf + _mm(FqT, sq) / nqf + self.reg * mask * w
            hess = (FpT * (sp * (1 - sp) / npf)) @ Fp + (FqT * (sq * (1 - sq) / nqf)) @ Fq \
                + np.diag(self.reg * mask + 1e-12)
            step = np.linalg.solve(hess, grad)
            t = 1.0
            while True:                                 # backtracking (Armijo)
                new, ap_new, aq_new = loss(w - t * step)
                if new <= val - 1e-4 * t * (grad @ step) or t < 1e-8:
                    break
                t *= 0.5
            w, val, ap, aq = w - t * step, new, ap_new, aq_new
            if grad @ step < 2 * self.tol:              # Newton decrement
                break
        self.params = w
        return self

    def __call__(self, x):
        """:math:`d(x)`, shape ``(B,)``."""
        M, d = self.omega.shape
        w = self.params
        return _mm(self._features(x), w[:M]) + _mm(x, w[M:M + d]) + w[-1]

    def grad(self, x):
        r""":math:`\nabla_x d(x)`, shape ``(B, d)``."""
        M, d = self.omega.shape
        w = self.params
        s = -np.sqrt(2.0 / M) * np.sin(_mm(x, self.omega.T) + self.phase)
        return _mm(s * w[:M], self.omega) + w[M:M + d]


def _h_table():
    sig = _sigmoid
    return {
        # name: (h(d), h'(d), note)
        "logit": (lambda d, C: d, lambda d, C: np.ones_like(d), "h = d: KL(q||p)"),
        "nonsaturated": (lambda d, C: -np.logaddexp(0, -d), lambda d, C: sig(-d),
                         "h = log sigma(d)"),
        "vanilla": (lambda d, C: np.logaddexp(0, d + C), lambda d, C: sig(d + C),
                    "h = -log(1 - sigma(d + C))"),
        "arcsinh": (lambda d, C: np.arcsinh(d), lambda d, C: 1 / np.sqrt(1 + d * d),
                    "h = arcsinh d"),
        "exp": (lambda d, C: np.exp(d), lambda d, C: np.exp(d), "h = e^d (MLE): KL(p||q)"),
        "js": (lambda d, C: np.logaddexp(0, d) / 2, lambda d, C: sig(d) / 2,
               "f-flow of Jensen-Shannon: h' = r / (2(1 + r))"),
        "hellinger": (lambda d, C: np.exp(d / 2), lambda d, C: np.exp(d / 2) / 2,
                      "f-flow of squared Hellinger: h' = sqrt(r) / 2"),
        "chi2": (lambda d, C: np.exp(2 * d), lambda d, C: 2 * np.exp(2 * d),
                 "f-flow of Pearson chi^2: h' = 2 r^2"),
    }


#: The MonoFlow family: ``name -> (h(d, C), h'(d, C), description)``. ``d = log r``;
#: ``C`` is the shift of the vanilla loss. The f-divergence flows use
#: :math:`h'(\log r) = r^2 f''(r)` (``logit`` is the one of KL(q||p), ``exp`` of KL(p||q)).
H_FUNCTIONS = _h_table()


def h_prime(name, d, shift=0.0):
    """:math:`h'(d)` of the MonoFlow member ``name``."""
    if name not in H_FUNCTIONS:
        raise ValueError(f"h must be one of {tuple(H_FUNCTIONS)}, got {name!r}")
    return H_FUNCTIONS[name][1](np.asarray(d, dtype=float), shift)


class ProbabilityFlow:
    r"""MonoFlow particles by forward Euler:
    :math:`x \leftarrow x + \varepsilon\,h'(d(x))\,\nabla_x d(x)`, with :math:`d` refitted
    to (``target_samples``, current particles) every ``refit_every`` steps.

    Parameters
    ----------
    target_samples : array_like, shape (n, d)
        Samples of :math:`p`.
    h : str
        A key of :data:`H_FUNCTIONS`.
    step : float
        :math:`\varepsilon > 0`.
    refit_every : int
        :math:`k \ge 1`.
    shift : float
        :math:`C` of the vanilla loss.
    clip : float
        :math:`d` is clipped to :math:`[-\text{clip}, \text{clip}]` inside :math:`h'` (the
        exponential members blow up on the estimator's tails otherwise).
    estimator : RatioEstimator, optional
        Default ``RatioEstimator(rng=rng)``.
    rng : seed or Generator
    """

    def __init__(self, target_samples, h="logit", step=0.05, refit_every=5, shift=0.0,
                 clip=5.0, estimator=None, rng=None):
        self.target = _samples(target_samples, "target_samples")
        if h not in H_FUNCTIONS:
            raise ValueError(f"h must be one of {tuple(H_FUNCTIONS)}, got {h!r}")
        self.h = h
        self.step = _check_positive(step, "step")
        self.refit_every = _check_int(refit_every, "refit_every")
        self.shift = float(shift)
        self.clip = _check_positive(clip, "clip")
        self.estimator = estimator if estimator is not None else RatioEstimator(rng=rng)

    def velocity(self, x):
        """:math:`h'(d(x))\\nabla_x d(x)` with the current estimator."""
        d = np.clip(self.estimator(x), -self.clip, self.clip)
        return h_prime(self.h, d, self.shift)[:, None] * self.estimator.grad(x)

    def run(self, particles, n_steps, snapshot_every=None):
        """Move ``particles`` for ``n_steps`` steps.

        Returns
        -------
        x : ndarray, shape (N, d)
            The final particles.
        snapshots : list of (int, ndarray)
            ``(step, particles)`` at step 0, every ``snapshot_every`` steps and at the end.
        """
        x = _samples(particles, "particles", self.target.shape[1]).copy()
        n_steps = _check_int(n_steps, "n_steps", 0)
        every = n_steps if snapshot_every is None else _check_int(snapshot_every, "snapshot_every")
        snaps = [(0, x.copy())]

        def keep(k, p, *_):
            if k % max(every, 1) == 0 or k == n_steps:
                snaps.append((k, p.copy()))
            return False

        result = self.solve(x, n_steps, callback=keep)
        return result.p, snaps

    def solve(self, particles, n_steps, **options):
        """``densflow.solve`` of :class:`densflow.parametric.flows.ParticleFlow` from
        ``particles`` for ``n_steps`` Euler steps (``options``: ``callback``, ``out``,
        ``gtol``, ...); returns the :class:`~densflow.solving.SolveResult` (``p``: the
        particles; ``energies``: the ratio estimate of KL(q‖p) at each step)."""
        from ..solving import FixedStep, solve
        from .flows import ParticleFlow

        return solve(ParticleFlow(self), particles, "euclidean", tol=None,
                     max_iter=_check_int(n_steps, "n_steps", 0),
                     line_search=FixedStep(self.step), **options)


def distill(model, theta0, target_samples, h="logit", n_iters=300, batch_size=500, lr=1e-2,
            refit_every=5, shift=0.0, clip=5.0, estimator=None, rng=None):
    r"""Train a push-forward model with the MonoFlow generator loss.

    Each iteration draws ``z``, refits :math:`d` to (``target_samples``,
    :math:`g_\theta(z)`) every ``refit_every`` iterations, and takes one :class:`Adam`
    step on :math:`-\frac1B\sum_b h(d(g_\theta(z_b)))`, whose gradient is
    :math:`-\frac1B\sum_b J_b^\top h'(d)\nabla_x d` (``model.vjp``): the particle
    velocity pulled back to :math:`\theta`.

    Returns
    -------
    theta : ndarray
    """
    target = _samples(target_samples, "target_samples", model.out_dim)
    theta = model.check_theta(theta0, "theta0")
    if h not in H_FUNCTIONS:
        raise ValueError(f"h must be one of {tuple(H_FUNCTIONS)}, got {h!r}")
    n_iters = _check_int(n_iters, "n_iters", 0)
    refit_every = _check_int(refit_every, "refit_every")
    rng = np.random.default_rng(rng)
    est = estimator if estimator is not None else RatioEstimator(rng=rng)
    opt = Adam(lr)
    for k in range(n_iters):
        z = model.latent(rng, batch_size)
        x = model.sample(theta, z)
        if k % refit_every == 0:
            est.fit(target, x)
        d = np.clip(est(x), -clip, clip)
        u = h_prime(h, d, shift)[:, None] * est.grad(x)
        theta = opt.step(theta, -model.vjp(theta, z, u) / batch_size)
    return theta
