r"""The methods that move particles, Gaussians or a GAN's generator, as problems of
:func:`densflow.solve` (issue 16): one loop, with its stopping rules, callback and HDF5
recording, for every method of :mod:`densflow.parametric`.

A problem here follows the protocol of :class:`densflow.parametric.Problem`:
``evaluate(p)`` gives the monitored value and a "gradient" :math:`g` whose negative is
the method's update direction; the run takes ``metric="euclidean"`` (the direction is
:math:`g`) and ``line_search=FixedStep(h)`` (the step size or time step :math:`h`), and
``line(state, s).state_at(h)`` is the method's update from the state:

=============================  ==========================================  ==================================
problem                        update from :math:`p_k`                     value recorded
=============================  ==========================================  ==================================
:class:`ParticleFlow`          :math:`x + h\,h'(d(x))\nabla d(x)` (Euler)  :math:`-\frac1N\sum d(x_n)`
:class:`BuresWassersteinFlow`  one RK4 (or Euler) step of size :math:`h`   :math:`\mathrm{KL}(q\|p) - \log Z`
:class:`ProximalGAN`           one outer iteration of Algorithm 1          generator loss
:class:`ProximalPoint`         :math:`p - h(p - \operatorname{prox}(p))`   :math:`F(p)`
=============================  ==========================================  ==================================

(Natural-gradient VI, STL VI and SiNG's trust-region step are
:class:`~densflow.parametric.Problem` runs: a :class:`~densflow.parametric.vi.ReverseKL`
loss, and ``line_search=TrustRegion(r)`` with ``metric=SiNG(...)``.) The decrement
:math:`s\cdot g = |g|^2` is recorded at every step (``gtol`` stops on it). Every problem
here refuses any step rule but :class:`~densflow.solving.FixedStep`.
"""

import zlib

import numpy as np

from ..core.state import State
from ..optim.linesearch import FixedStep
from . import metrics as _metrics
from .checks import check_int, check_samples, check_spd
from .optimizers import Adam
from .quadrature import gaussian_expectation_nodes
from .targets import bw_field, check_target

__all__ = ["ParticleFlow", "BuresWassersteinFlow", "ProximalGAN", "ProximalPoint"]


def _crc(a):
    return zlib.crc32(np.ascontiguousarray(a, dtype=float).tobytes())


class _FlowProblem:
    """Shared protocol of the problems of this module."""

    parametric = True
    mu = None
    min_value = None

    def check_line_search(self, line_search):
        if not isinstance(line_search, FixedStep):
            raise TypeError(f"{type(self).__name__} takes line_search=FixedStep(h) (h the step "
                            f"size), got {type(line_search).__name__}")

    def bind(self, metric):
        metric = _metrics.get(metric)
        if not isinstance(metric, _metrics.Euclidean):
            raise ValueError(f"{type(self).__name__} runs with metric='euclidean' (its update "
                             f"is the method's own), got {metric.name!r}")
        return _Identity(metric)

    def line(self, state, s, positive=False):
        return _Step(self, state)

    def advance(self, state, h):
        """The state after one update of size ``h`` from ``state``."""
        raise NotImplementedError


class _Identity:
    requires_positive = False

    def __init__(self, metric):
        self.metric = metric

    def direction(self, p, grad):
        return np.array(grad, dtype=float)


class _Step:
    __slots__ = ("problem", "state", "_cache")

    def __init__(self, problem, state):
        self.problem, self.state, self._cache = problem, state, None

    def state_at(self, eta):
        if self._cache is None or self._cache[0] != eta:
            self._cache = (eta, self.problem.advance(self.state, eta))
        return self._cache[1]

    def delta(self, eta):
        return self.state_at(eta).value - self.state.value


class ParticleFlow(_FlowProblem):
    r"""MonoFlow particles (:class:`densflow.parametric.monoflow.ProbabilityFlow`) as a
    problem: the state is the particle array ``(N, d)``, the update forward Euler
    :math:`x \leftarrow x + h\,h'(d(x))\nabla d(x)`, the log ratio :math:`d` refitted to
    (target samples, particles) at every ``refit_every``-th iterate; the value is
    :math:`-\frac1N\sum_n d(x_n)`, the ratio estimate of :math:`\mathrm{KL}(q\|p)`.

    Parameters
    ----------
    flow : densflow.parametric.monoflow.ProbabilityFlow
        Target samples, ``h``, ``refit_every``, ``shift``, ``clip`` and the estimator.
    """

    def __init__(self, flow):
        self.flow = flow
        self._k, self._last = 0, None

    def describe(self):
        f = self.flow
        return {"h": f.h, "refit_every": f.refit_every, "shift": f.shift, "clip": f.clip,
                "target_crc32": _crc(f.target), "estimator": repr(type(f.estimator).__name__)}

    def check_start(self, x0):

        self._k, self._last = 0, None
        return check_samples(x0, "particles", self.flow.target.shape[1]).copy()

    def evaluate(self, x):
        """The state at ``x``: the ratio is refitted at every ``refit_every``-th new iterate
        (evaluating the same particles again returns the same state)."""
        if self._last is not None and np.array_equal(self._last.p, x):
            return self._last
        f = self.flow
        if self._k % f.refit_every == 0:
            f.estimator.fit(f.target, x)
        self._k += 1
        d = f.estimator(x)
        self._last = State(x, float(-np.mean(d)), -f.velocity(x), parts=None)
        return self._last

    def advance(self, state, h):
        return self.evaluate(state.p - h * state.gradient)


class BuresWassersteinFlow(_FlowProblem):
    r"""The Bures–Wasserstein gradient flow of :math:`\mathrm{KL}(N(\mu,\Sigma)\,\|\,p)`
    (:func:`densflow.parametric.vi.bures_wasserstein_flow`) as a problem: the state is
    :math:`[\mu, \operatorname{vec}\Sigma]`, the gradient minus the flow's right-hand
    side, the update one classical RK4 step (``scheme="rk4"``) or forward Euler step
    (``"euler"``) of size :math:`h`, with expectations on the fixed nodes of the rule.
    The value is :math:`\mathrm{KL}(q\|p) - \log Z` on the same nodes (``target.log_p``
    needed; else :math:`\tfrac12|g|^2`).

    Parameters
    ----------
    target : object
        ``grad_log_p``, optionally ``hess_log_p`` and ``log_p``.
    dim : int
    expectations, order, n_samples, rng, use_hessian
        As in :func:`~densflow.parametric.vi.bures_wasserstein_flow`.
    scheme : {"rk4", "euler"}
    """

    def __init__(self, target, dim, expectations="cubature", order=5, n_samples=1000, rng=None,
                 use_hessian=None, scheme="rk4"):

        self.dim = check_int(dim, "dim")
        check_target(target, self.dim)
        if use_hessian is None:
            use_hessian = callable(getattr(target, "hess_log_p", None))
        elif use_hessian and not callable(getattr(target, "hess_log_p", None)):
            raise ValueError("use_hessian=True needs a target with hess_log_p(x)")
        if scheme not in ("rk4", "euler"):
            raise ValueError(f"scheme must be 'rk4' or 'euler', got {scheme!r}")
        self.target, self.use_hessian, self.scheme = target, bool(use_hessian), scheme
        self.expectations = expectations
        self.z, self.w = gaussian_expectation_nodes(self.dim, expectations, order, n_samples, rng)

    def describe(self):
        return {"target": type(self.target).__name__, "dim": self.dim, "scheme": self.scheme,
                "expectations": self.expectations, "nodes_crc32": _crc(self.z),
                "use_hessian": int(self.use_hessian)}

    def pack(self, mu, Sigma):
        """The state vector of ``(mu, Sigma)``."""
        return np.concatenate([np.ravel(mu), np.ravel(Sigma)])

    def unpack(self, p):
        """``(mu, Sigma)`` of a state vector."""
        d = self.dim
        return p[:d], p[d:].reshape(d, d)

    def check_start(self, p0):

        p0 = np.asarray(p0, dtype=float)
        d = self.dim
        if p0.shape != (d + d * d,):
            raise ValueError(f"p0 must be [mu, vec Sigma] of length {d + d * d}, got shape {p0.shape}")
        mu, Sigma = self.unpack(p0)
        return self.pack(mu, check_spd(Sigma, d, "Sigma0"))

    def _field(self, p):

        mu, Sigma = self.unpack(p)
        return bw_field(self.target, mu, 0.5 * (Sigma + Sigma.T), self.z, self.w, self.use_hessian)

    def evaluate(self, p):
        mu_dot, Sigma_dot = self._field(p)
        g = -self.pack(mu_dot, Sigma_dot)
        mu, Sigma = self.unpack(p)
        if callable(getattr(self.target, "log_p", None)):
            L = np.linalg.cholesky(0.5 * (Sigma + Sigma.T))
            x = mu + self.z @ L.T
            value = (-(self.w @ self.target.log_p(x)) - np.sum(np.log(np.diag(L)))
                     - 0.5 * self.dim * (1.0 + np.log(2 * np.pi)))
        else:
            value = 0.5 * float(g @ g)
        return State(p, float(value), g, parts=None)

    def advance(self, state, h):
        p = state.p
        if self.scheme == "euler":
            new = p - h * state.gradient
        else:
            k1 = -state.gradient
            k2 = self.pack(*self._field(p + 0.5 * h * k1))
            k3 = self.pack(*self._field(p + 0.5 * h * k2))
            k4 = self.pack(*self._field(p + h * k3))
            new = p + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        mu, Sigma = self.unpack(new)
        return self.evaluate(self.pack(mu, 0.5 * (Sigma + Sigma.T)))


class ProximalGAN(_FlowProblem):
    r"""Algorithm 1 of Lin et al. (2021) as a problem on the generator's parameters
    (:func:`densflow.parametric.gan.train_gan` runs it): one update is one outer
    iteration — one discriminator step, then :math:`\ell` generator steps of the
    optimiser on :math:`F_\omega(\theta) + \tilde D(\theta,\theta_k)^2/(2h)` with one latent
    batch (one step on :math:`F_\omega` without a penalty); the step size of
    ``FixedStep`` is the generator's learning rate. The value is the generator loss
    :math:`F_\omega(\theta)` of the current discriminator on a fixed monitoring batch
    (its own random stream, so that monitoring does not change the training).

    The state of a run is the generator's θ only: resuming a recorded run restarts from
    the θ of its last snapshot with the discriminator at ``phi0``, fresh Adam moments and
    ``rng`` as given, so the continuation is not the same training (nor a statistically
    equivalent one).

    Parameters
    ----------
    generator : Model
    critic : densflow.parametric.gan.Critic
    phi0 : ndarray
        Initial discriminator parameters.
    sample_data : callable
        ``sample_data(rng, B)``.
    rng : numpy Generator or seed
    batch : int
    penalty : ProximalPenalty or None
    d_lr : float
        The discriminator's learning rate.
    betas : (float, float)
        Adam's moment decays of both optimisers.
    """

    def __init__(self, generator, critic, phi0, sample_data, rng=None, batch=128, penalty=None,
                 d_lr=1e-3, betas=(0.5, 0.999), monitor_batch=256):

        self.generator, self.critic, self.sample_data = generator, critic, sample_data
        self.phi = np.array(phi0, dtype=float)
        self.rng = np.random.default_rng(rng)
        self.batch, self.penalty, self.betas = int(batch), penalty, tuple(betas)
        self.d_opt = Adam(d_lr, *betas)
        self.g_opt = None
        self.z_monitor = np.random.default_rng(2 ** 31 - 1).standard_normal(
            (monitor_batch, generator.latent_dim))

    def describe(self):
        pen = self.penalty
        return {"generator": repr(self.generator), "critic": repr(self.critic),
                "batch": self.batch, "d_lr": self.d_opt.lr, "betas": np.array(self.betas),
                "penalty": "none" if pen is None else f"{pen.kind}, h={pen.h:g}, steps={pen.steps}"}

    def check_start(self, theta0):
        return self.generator.check_theta(theta0, "theta0").copy()

    def _generator_loss(self, theta, z):
        """:math:`F_\\omega` and its gradient in the samples and in ``theta``."""
        x = self.generator.sample(theta, z)
        logits = self.critic.sample(self.phi, x)[:, 0]
        B = z.shape[0]
        value = float(np.mean(np.logaddexp(0.0, -logits)))
        gx = self.critic.input_vjp(self.phi, x, (1.0 / (1.0 + np.exp(-logits)) - 1.0) / B)
        return value, x, gx

    def evaluate(self, theta):
        value, _, gx = self._generator_loss(theta, self.z_monitor)
        return State(theta, value, self.generator.vjp(theta, self.z_monitor, gx), parts=None)

    def advance(self, state, lr):

        gen, critic, rng, B = self.generator, self.critic, self.rng, self.batch
        if self.g_opt is None or self.g_opt.lr != lr:
            self.g_opt = Adam(lr, *self.betas)
        theta, phi = state.p, self.phi
        # discriminator step; d/dlogit of -log σ(a) is σ(a) - 1, of -log(1 - σ(a)) is σ(a)
        real = self.sample_data(rng, B)
        fake = gen.sample(theta, rng.standard_normal((B, gen.latent_dim)))
        xr, xf = critic.sample(phi, real)[:, 0], critic.sample(phi, fake)[:, 0]
        gr = (1.0 / (1.0 + np.exp(-xr)) - 1.0) / B
        gf = (1.0 / (1.0 + np.exp(-xf))) / B
        self.phi = self.d_opt.step(phi, critic.vjp(phi, real, gr[:, None]) + critic.vjp(phi, fake, gf[:, None]))
        # generator steps on F + penalty with one latent batch
        z = rng.standard_normal((B, gen.latent_dim))
        y = gen.sample(theta, z) if self.penalty is not None else None
        for _ in range(self.penalty.steps if self.penalty is not None else 1):
            _, x, gx = self._generator_loss(theta, z)
            if self.penalty is not None:
                gx = gx + self.penalty.value_and_grad_samples(x, y)[1]
            theta = self.g_opt.step(theta, gen.vjp(theta, z, gx))
        return self.evaluate(theta)


class ProximalPoint(_FlowProblem):
    r"""The proximal point method as a problem: from :math:`\theta_k` the update is

    .. math::

        \theta_{k+1} = \theta_k - h\,(\theta_k - \operatorname{prox}(\theta_k)), \qquad
        \operatorname{prox}(\theta_k) = \operatorname*{arg\,min}_\theta\;
        F(\theta) + \frac{D(\theta, \theta_k)^2}{2\tau},

    with ``prox`` given (any distance :math:`D` and step :math:`\tau`, e.g. the Wasserstein
    and the Euclidean proximal steps of Lin et al. 2021): :math:`h = 1` (``FixedStep(1)``)
    is the proximal point iteration, other :math:`h` its relaxed form. The value is
    :math:`F(\theta)`, the "gradient" :math:`\theta - \operatorname{prox}(\theta)` (the
    decrement is the squared length of the proximal step; ``gtol`` stops on it).

    Parameters
    ----------
    value : callable
        :math:`F`: ``value(theta)`` returns a number.
    prox : callable
        ``prox(theta)`` returns the proximal point (an array of the shape of ``theta``).
    min_value : float or None
        :math:`\min F` if known (``tol`` of :func:`densflow.solve` stops on
        :math:`F - \min F`).
    description : dict or None
        Numbers and strings that identify the problem in a run file (``describe``).
    """

    def __init__(self, value, prox, min_value=None, description=None):
        if not callable(value) or not callable(prox):
            raise TypeError("ProximalPoint needs callables value(theta) and prox(theta)")
        if min_value is not None and not np.isfinite(min_value):
            raise ValueError(f"min_value must be a finite number or None, got {min_value!r}")
        self.value, self.prox = value, prox
        self.min_value = None if min_value is None else float(min_value)
        self.description = dict(description or {})

    def describe(self):
        return {"value": getattr(self.value, "__name__", type(self.value).__name__),
                "prox": getattr(self.prox, "__name__", type(self.prox).__name__),
                **self.description}

    def check_start(self, theta0):
        theta0 = np.array(theta0, dtype=float)
        if theta0.ndim != 1 or not theta0.size or not np.all(np.isfinite(theta0)):
            raise ValueError(f"theta0 must be a finite non-empty vector, got shape {theta0.shape}")
        return theta0

    def evaluate(self, theta):
        theta = np.asarray(theta, dtype=float)
        step = theta - np.asarray(self.prox(theta), dtype=float).reshape(theta.shape)
        return State(theta, float(self.value(theta)), step, parts=None)

    def advance(self, state, h):
        return self.evaluate(state.p - h * state.gradient)
