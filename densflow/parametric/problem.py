r"""A parametric problem :math:`\min_\theta F(\theta) = \mathcal L(g_\theta{}_\# N(0, I))` in
the protocol of the grid solver, so that :func:`densflow.solve` runs it with the same
Armijo line search (issue 6).

The solver needs ``evaluate(theta)`` returning a :class:`densflow.energies.State` and
``line(state, s, positive)`` returning an object with ``delta(eta)`` and
``state_at(eta)``; the direction comes from ``bind(metric).direction(theta, grad)``.
Every trial of a line search re-evaluates the loss at :math:`\theta - \eta s` with the
batch ``z`` of the state it started from, so the Armijo test compares like with like.

Recording (``solve(..., out=...)``): a parametric run is written like a grid run —
histories ``energies`` (the loss), ``steps``, ``decrements``, ``times`` and snapshots of
the parameters (or particles) every ``snapshot_every`` iterations — with the attributes of
:func:`setup_attributes` (``kind = "parametric"``, the problem's and the metric's
descriptions, the stopping rules and the step rule). A run with fresh batches records
its generator's state with every snapshot (``snapshot_states``), and resuming restores
it: a killed and resumed run continues bit for bit, as a fixed batch does. What is not
recorded is state kept elsewhere: a metric that learns along the run (``Adam``'s
moments, ``KWNG(adaptive=True)``'s damping) starts afresh at the resume point, and
such a run resumes statistically, not to the same numbers.
"""

import json
import numbers
import zlib
from dataclasses import dataclass

import numpy as np

from ..core.state import State
from ..optim.failure import NUMERICAL_FAILURES
from ..optim.kinds import Bound, register
from ..optim.linesearch import Armijo, FixedStep
from ..optim.loop import check_loop_settings
from . import metrics as _metrics
from .losses import SinkhornError
from .models import Model

__all__ = ["Problem", "fixed_step_path", "TrustRegion", "STEP_RULES", "PARAMETRIC_FAILURES",
           "setup_attributes", "prepare"]

#: Failures inside a parametric run that end it with a message (``converged=False``, the
#: run file marked failed) instead of raising.
PARAMETRIC_FAILURES = (_metrics.CGError, SinkhornError, np.linalg.LinAlgError, FloatingPointError)


@dataclass(frozen=True)
class TrustRegion:
    r"""The step onto the boundary of the metric's ball of radius ``radius``:
    :math:`\eta = \sqrt{2r / (\nabla F^\top G^{-1}\nabla F)}`, so that the update
    :math:`\Delta = -\eta\,G^{-1}\nabla F` has :math:`\tfrac12\Delta^\top G\Delta = r`
    (no decrease test). With ``metric=SiNG(...)`` this is the SiNG update, eq. (11) of
    Shen et al. (2020): the second-order minimiser of the linearised loss over the
    Sinkhorn ball :math:`S_\varepsilon(\alpha_{\theta+\Delta}, \alpha_\theta) \le r`.

    Parameters
    ----------
    radius : float
        :math:`r > 0`.
    """

    radius: float

    def __post_init__(self):
        if isinstance(self.radius, bool) or not (isinstance(self.radius, numbers.Real)
                                                 and np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"trust-region radius must be a finite number > 0, got {self.radius!r}")

    #: The smallest step reported in line-search messages (never used: no step is refused).
    min_step = 0.0

    def search(self, line, slope, eta0=None):
        r"""Return ``(eta, None, 0)`` with :math:`\eta = \sqrt{2r/s\cdot g}`."""
        return float(np.sqrt(2.0 * self.radius / slope)), None, 0


#: Step rules of parametric runs besides :class:`~densflow.solving.Armijo` and
#: :class:`~densflow.solving.FixedStep`.
STEP_RULES = (TrustRegion,)


def _step_rule_attributes(line_search):
    if isinstance(line_search, Armijo):
        return {"line_search": "armijo", "line_search_eta0": float(line_search.eta0),
                "line_search_shrink": float(line_search.shrink),
                "line_search_c1": float(line_search.c1),
                "line_search_min_step": float(line_search.min_step)}
    if isinstance(line_search, FixedStep):
        return {"line_search": "fixed", "line_search_eta": float(line_search.eta)}
    return {"line_search": "trust_region", "line_search_radius": float(line_search.radius)}


def setup_attributes(problem, metric, tol, gtol, max_iter, line_search):
    """The attributes that identify a parametric run (a resumed run must match them; the
    loop adds ``snapshot_every``)."""
    attrs = {"kind": "parametric", "metric": metric.name, "metric_repr": repr(metric),
             "problem": type(problem).__name__,
             "tol": np.nan if tol is None else float(tol),
             "gtol": np.nan if gtol is None else float(gtol), "max_iter": int(max_iter),
             "method": "gradient", **_step_rule_attributes(line_search)}
    attrs.update({f"problem_{k}": v for k, v in problem.describe().items()})
    return attrs


def prepare(problem, theta0, metric=None, line_search=None, tol=None, gtol=None, max_iter=1000,
            safeguard=None, method=None, newton=None):
    """A parametric problem prepared for the descent loop (:mod:`densflow.optim.kinds`):
    the arguments are :func:`densflow.solve`'s; ``safeguard`` does not apply (ignored)."""
    if method not in (None, "gradient") or newton is not None:
        raise ValueError("method='newton' and newton= apply to grid energies; a parametric "
                         "problem takes its metric's steps (method='gradient' or None)")
    theta = problem.check_start(theta0)
    max_iter, line_search = check_loop_settings(max_iter, tol, gtol, line_search,
                                                (Armijo, FixedStep) + STEP_RULES)
    if callable(getattr(problem, "check_line_search", None)):
        problem.check_line_search(line_search)
    operator = problem.bind(metric)
    random = getattr(problem, "random_state", None)
    exact = callable(random) and random() is not None
    return Bound(problem=problem, x0=theta, metric=operator.metric.name, line_search=line_search,
                 setup=setup_attributes(problem, operator.metric, tol, gtol, max_iter, line_search),
                 reference=problem.mu, failures=NUMERICAL_FAILURES + PARAMETRIC_FAILURES,
                 direction=lambda theta, g, gap: operator.direction(theta, g),
                 positive=getattr(operator, "requires_positive", True),
                 after_step=getattr(operator, "after_step", None), max_iter=max_iter,
                 checkpoint=random if exact else None,
                 restore=problem.set_random_state if exact else None)


class Problem:
    r"""Loss of a push-forward model on a fixed batch or on fresh batches.

    Parameters
    ----------
    model : Model
        :class:`~densflow.parametric.Gaussian`, :class:`~densflow.parametric.MLP`, ...
    loss : Loss
        With ``value_and_grad(model, theta, z)``.
    z : array (B, latent_dim), optional
        A fixed batch used for every evaluation (deterministic problem).
    batch_size : int, optional
        Instead of ``z``: draw a fresh batch of this size from ``rng`` at every new
        iterate (:meth:`evaluate`); a batch then stays fixed through one line search.
    rng : numpy Generator or seed, optional
        Random source of the batches.
    min_value : float or None
        The minimum of the loss if known (the solver's ``tol`` then stops at
        :math:`F - F_{\min} \le` ``tol``).
    """

    #: Marks the object for :func:`densflow.solve`.
    parametric = True
    #: No reference measure (the run file's ``mu`` dataset is for grid runs).
    mu = None

    def __init__(self, model, loss, z=None, batch_size=None, rng=None, min_value=None):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a densflow.parametric model, got {type(model).__name__}")
        if not callable(getattr(loss, "value_and_grad", None)):
            raise TypeError(f"loss must have a value_and_grad(model, theta, z) method, "
                            f"got {type(loss).__name__}")
        if (z is None) == (batch_size is None):
            raise ValueError("give exactly one of z (a fixed batch) and batch_size (fresh batches)")
        self.model, self.loss = model, loss
        self.fixed = z is not None
        if self.fixed:
            self.z = model.check_z(z)
        else:
            if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                    or batch_size < 1:
                raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
            self.batch_size = int(batch_size)
            self.rng = np.random.default_rng(rng)
            self.z = None
        if min_value is not None and not (isinstance(min_value, numbers.Real) and np.isfinite(min_value)):
            raise ValueError(f"min_value must be a finite number or None, got {min_value!r}")
        self.min_value = None if min_value is None else float(min_value)

    def describe(self):
        """Text and numbers that identify the problem in a run file."""
        return {"model": repr(self.model), "loss": _loss_repr(self.loss),
                "batch": "fixed" if self.fixed else f"fresh, size {self.batch_size}",
                "batch_crc32": zlib.crc32(self.z.tobytes()) if self.fixed else -1,
                "target_crc32": (zlib.crc32(np.ascontiguousarray(self.loss.y).tobytes())
                                 if hasattr(self.loss, "y") else -1),
                "min_value": np.nan if self.min_value is None else self.min_value}

    def check_start(self, theta0):
        """``theta0`` as a fresh float array (checked)."""
        return self.model.check_theta(theta0, name="theta0").copy()

    def evaluate(self, theta, z=None):
        """:class:`State` at ``theta`` (``parts`` holds its batch); a fresh batch is drawn
        unless the problem has a fixed one or ``z`` is given."""
        if z is None:
            z = self.z if self.fixed else self.model.latent(self.rng, self.batch_size)
        theta = np.asarray(theta, dtype=float)
        value, grad = self.loss.value_and_grad(self.model, theta, z)
        if not self.fixed:
            self.z = z
        return State(theta, float(value), np.asarray(grad, dtype=float), parts=z)

    def random_state(self):
        """The batches' generator state as JSON text (``None`` for a fixed batch): a run
        file records it with every snapshot, so that a resumed run draws the batches
        the uninterrupted run would have drawn."""
        if self.fixed:
            return None
        return json.dumps(self.rng.bit_generator.state)

    def set_random_state(self, text):
        """Restore a state returned by :meth:`random_state`."""
        self.rng.bit_generator.state = json.loads(text)

    def line(self, state, s, positive=False):
        """The search line :math:`\\theta - \\eta s` from ``state`` (``positive`` is ignored:
        parameters are unconstrained)."""
        return _Line(self, state, np.asarray(s, dtype=float))

    def bind(self, metric):
        """An operator with ``direction(theta, grad)`` for the solver."""
        return _Operator(self, _metrics.get(metric))


def _loss_repr(loss):
    keys = [k for k in ("eps", "tol", "bandwidth", "scaling", "expectations", "estimator", "order")
            if hasattr(loss, k)]
    return f"{type(loss).__name__}(" + ", ".join(f"{k}={getattr(loss, k)!r}" for k in keys) + ")"


class _Line:
    __slots__ = ("problem", "state", "s", "_cache")

    def __init__(self, problem, state, s):
        self.problem, self.state, self.s = problem, state, s
        self._cache = {}

    def _at(self, eta):
        if eta not in self._cache:
            self._cache = {eta: self.problem.evaluate(self.state.p - eta * self.s, z=self.state.parts)}
        return self._cache[eta]

    def delta(self, eta):
        """:math:`F(\\theta - \\eta s) - F(\\theta)` on the state's batch."""
        return self._at(eta).value - self.state.value

    def state_at(self, eta):
        """The state at :math:`\\theta - \\eta s`: the trial's on a fixed batch, else
        evaluated on a fresh batch."""
        if self.problem.fixed:
            return self._at(eta)
        return self.problem.evaluate(self.state.p - eta * self.s)


class _Operator:
    requires_positive = False

    def __init__(self, problem, metric):
        self.problem, self.metric = problem, metric
        metric.check_model(problem.model)

    def direction(self, theta, grad):
        return self.metric.direction(self.problem.model, theta, grad, self.problem.z)

    def after_step(self, line, eta, slope):
        """Report an accepted step to a metric with adaptive damping (``KWNG(adaptive=True)``):
        the actual decrease :math:`F(\\theta) - F(\\theta - \\eta s)` on the step's batch and
        the first-order prediction :math:`\\eta\\, s\\cdot\\nabla F`."""
        if getattr(self.metric, "adaptive", False):
            self.metric.update_damping(-line.delta(eta), eta * slope)


def fixed_step_path(problem, theta0, metric, eta, n_steps):
    r"""``n_steps`` constant steps :math:`\theta_{k+1} = \theta_k - \eta\, G^{-1}\nabla F`
    of :func:`densflow.solve`; returns ``(path, result)`` with the iterates ``path`` of
    shape ``(n_steps + 1, len(theta0))`` (fewer rows if the run stops early) and the
    :class:`~densflow.solving.SolveResult`."""
    from ..solving import solve

    path = [np.array(theta0, dtype=float)]
    result = solve(problem, theta0, metric=metric, tol=None, max_iter=n_steps,
                   line_search=FixedStep(eta), callback=lambda k, p, *a: path.append(p.copy()) and False)
    return np.array(path), result


register(lambda obj: getattr(obj, "parametric", False), prepare, "parametric problem")
