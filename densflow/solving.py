r"""Natural-gradient descent with the Armijo backtracking line search (:ref:`stepping`).

At :math:`p_k`: :math:`g = \nabla E(p_k)`, :math:`s = M(p_k)(g - c\mathbf 1)` from the
metric, then starting from :math:`\eta = \eta_0` halve :math:`\eta` until

.. math:: E(p_k - \eta s) - E(p_k) \le -c_1\,\eta\, s\cdot g ,

and set :math:`p_{k+1} = p_k - \eta s`. :math:`E = +\infty` outside the positive
orthant, so every accepted step keeps :math:`p > 0`. The decrement :math:`s\cdot g`
(the squared natural-gradient norm) is recorded at every iteration.
"""

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .metrics import natural as _metrics
from .optim.failure import NUMERICAL_FAILURES, Trace, failure_fields
from .core.validation import check_positive_int, check_real_or_none, check_safeguard
from .energies.terms import Energy, Term
from .optim.linesearch import Armijo, FixedStep
from .newton import INNER_COUNTS, Newton, NewtonStep
from .core.operators import dot

__all__ = ["solve", "SolveResult", "Armijo", "FixedStep"]

#: Methods of :func:`solve`: the metric's natural-gradient step, or Newton–Krylov
#: preconditioned by the metric (:mod:`densflow.newton`).
METHODS = ("gradient", "newton")
#: The method of :func:`solve` (and of case files) unless one is chosen.
DEFAULT_METHOD = "newton"

#: The line search of ``method="newton"`` unless one is given: the textbook sufficient
#: decrease constant (a full Newton step on a quadratic decreases E by exactly half
#: of ``s.g``, which the paper's ``c1 = 1/2`` would reject at rounding level).
NEWTON_LINE_SEARCH = Armijo(c1=1e-4)

#: Without a recorder, the state is re-evaluated from the density every this many
#: iterations (a recorder's ``snapshot_every`` takes its place).
REFRESH_EVERY = 10

#: Per-step counts of Newton's inner work (zeros for the gradient method).
INNER_HISTORIES = INNER_COUNTS


@dataclass
class SolveResult:
    """Outcome of :func:`solve`.

    Attributes
    ----------
    p : ndarray
        The last iterate.
    energies : ndarray
        ``energies[k] = E(p_k)`` for ``k = 0 … n_iter``.
    steps : ndarray
        ``steps[k]`` is the accepted step size of iteration ``k`` (``n_iter`` entries).
    decrements : ndarray
        ``decrements[k] = s_k · g_k`` at ``p_k`` (one per computed direction).
    times : ndarray
        Wall time in seconds of each iteration.
    n_iter : int
        Number of accepted steps.
    converged : bool
        Whether a stopping rule (not the iteration cap or a failure) ended the run.
    message : str
        Why the run ended.
    metric : str
        The metric's name.
    """

    p: np.ndarray
    energies: np.ndarray
    steps: np.ndarray
    decrements: np.ndarray
    times: np.ndarray
    n_iter: int
    converged: bool
    message: str
    metric: str
    wall_time: float = 0.0
    info: dict = field(default_factory=dict)
    cg_iterations: np.ndarray = None
    hessian_products: np.ndarray = None
    inner_iterations: np.ndarray = None


def solve(energy, p0, metric="combined", tol=1e-12, gtol=None, max_iter=1000,
          line_search=None, callback=None, out=None, resume=False, safeguard=0.1,
          method=None, newton=None, overwrite=False):
    r"""Minimise ``energy`` over probability vectors by natural-gradient descent.

    Parameters
    ----------
    energy : Energy or Term
        The energy, e.g. ``1.0 * HMinus1(grid, mu) + 1e-3 * KL(grid, mu)``.
    p0 : ndarray
        Initial density: a positive probability vector of the grid's shape.
    metric : str or Metric
        ``"wasserstein"``, ``"fisher_rao"``, ``"mahalanobis"``, ``"combined"`` or a
        :class:`densflow.metrics.Metric` object such as ``Combined(wavelet="db6")``.
    tol : float or None
        Stop when :math:`E(p_k) - E_{\min} \le` ``tol`` when the energy knows its
        minimum value (all terms share μ, :math:`E_{\min} = 0`); otherwise (free
        energies, :ref:`free-energies`) when the energy change a full step predicts,
        relative to the energy, is small: :math:`s\cdot g / \max(1, |E_k|) \le` ``tol``
        (for a Newton step :math:`s\cdot g \approx 2 (E_k - E_{\min})`).
    gtol : float or None
        Stop when the natural-gradient decrement :math:`s\cdot g \le` ``gtol``.
    max_iter : int
        Cap on the number of steps; reaching it returns ``converged=False``.
    line_search : Armijo or None
        Line-search settings; the paper's (``eta0=1``, halving, ``c1=1/2``) by default.
    callback : callable or None
        Called after every accepted step as ``callback(k, p, value, step, decrement)``;
        a true return value stops the run (``converged=False``, message says so).
    out : str, os.PathLike, RunRecord or None
        Record the run in an HDF5 run file (:mod:`densflow.io.recorder`): a path writes
        the group ``run`` of a new file (an existing file is refused unless
        ``resume`` or ``overwrite``, as ``densflow run`` does), a
        :class:`densflow.io.recorder.RunRecord` from
        ``Recorder.run(name)`` writes that group. The state is re-evaluated
        from the density at every snapshot iteration (every 10 without a recorder),
        exactly as a resumed run does at its start, so recorded, unrecorded and resumed
        runs with the default ``snapshot_every = 10`` follow the same arithmetic.
    resume : bool
        With ``out``: continue the recorded run from its last snapshot (return the
        stored result if it is complete; start afresh if nothing is recorded). The
        recorded setup must match this call's, else
        :class:`densflow.io.recorder.ResumeError` (a ``ValueError``).
    overwrite : bool
        With a path as ``out``: replace an existing file (never one that another
        process has open). Without it, and without ``resume``, an existing file is
        refused with :class:`densflow.io.recorder.RunFileError`.
    safeguard : float or None
        ``τ`` in (0, 1]: wrap the metric in :class:`densflow.metrics.Safeguard` with
        floor :math:`\delta = τ/N` (default 0.1), which changes nothing while
        :math:`p \ge \delta` and makes rough and nearly vanishing densities converge;
        energies without a KL term are then evaluated outside the positive orthant too
        (they are quadratics). ``None``: the paper's plain method (metric at ``p``,
        :math:`E = +\infty` outside the positive orthant for every energy).
    method : {"newton", "gradient"} or None
        ``None``: ``"newton"`` for grid energies (:data:`DEFAULT_METHOD`), ``"gradient"``
        for parametric problems. ``"gradient"``: the paper's step
        :math:`s = \tilde M(p)(g - c\mathbf 1)`. ``"newton"``: Newton–Krylov steps, the
        Newton system solved by conjugate gradients preconditioned by the metric
        (:mod:`densflow.newton`); its line search defaults to ``Armijo(c1=1e-4)``.
    newton : densflow.newton.Newton or None
        Settings of ``method="newton"`` (forcing, caps, boundary rule, damping).

    Returns
    -------
    SolveResult
        With ``info["resumed_from"]``, the iteration a resumed run continued from
        (-1 otherwise), ``info["method"]``, ``info["kkt_residual"]`` (grid energies:
        :math:`\max_s |\nabla E - \overline{\nabla E}|` at the last iterate), and per step ``cg_iterations``,
        ``hessian_products`` and ``inner_iterations`` (the 2D :math:`L_\mu^+` CG
        iterations inside the Hessian products; all zero for the gradient method).

    Notes
    -----
    ``energy`` may also be a parametric problem (:class:`densflow.parametric.Problem`, or
    one of :mod:`densflow.parametric.flows`: MonoFlow particles, the Bures–Wasserstein
    flow, a GAN's Algorithm 1) and ``p0`` its initial parameters ``theta0``: ``metric`` is
    then a parametric metric (a name in :data:`densflow.parametric.metrics.NAMES` or an
    object), the line search re-evaluates the loss at :math:`\theta - \eta s` on the
    iterate's batch, ``line_search`` may also be a :class:`FixedStep` or a
    :class:`densflow.parametric.TrustRegion` (SiNG's eq. (11)), ``safeguard`` does not
    apply (it is ignored), ``out``/``resume`` record the run like a grid run (the
    snapshots hold ``theta``; see :mod:`densflow.parametric.problem`), and a failed inner
    solve (conjugate gradients, Sinkhorn) ends the run with a message instead of raising.
    """
    if getattr(energy, "parametric", False):
        if method not in (None, "gradient") or newton is not None:
            raise ValueError("method='newton' and newton= apply to grid energies; a parametric "
                             "problem takes its metric's steps (method='gradient' or None)")
        return _solve_parametric(energy, p0, metric, tol, gtol, max_iter, line_search, callback,
                                 out, resume, overwrite)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out= (the run file to continue)")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if overwrite and resume:
        raise ValueError("overwrite=True and resume=True exclude each other: resume continues "
                         "the file, overwrite replaces it")
    if isinstance(energy, Term):
        energy = 1.0 * energy
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be a densflow Energy or term, got {type(energy).__name__}")
    energy.check_weights()
    p = energy.grid.check_density(p0, name="p0").copy()
    metric = _metrics.get(metric)
    method = _check_method(DEFAULT_METHOD if method is None else method, newton)
    max_iter, line_search = _check_loop_settings(max_iter, tol, gtol, line_search, (Armijo,),
                                                 default=NEWTON_LINE_SEARCH if method == "newton" else None)
    safeguard = check_safeguard(safeguard)

    start = time.perf_counter()
    operator = metric.bind(energy)
    if safeguard is not None:
        operator = _metrics.Safeguard(operator, energy, floor=safeguard)
    if method == "newton":
        operator = NewtonStep(energy, operator, Newton() if newton is None else newton, tol)
    record, owned = _open_record(out, resume, overwrite)
    trace = Trace(callback)
    return _guarded(
        record, owned, NUMERICAL_FAILURES,
        lambda: _descend(energy, p, metric, operator, tol, gtol, max_iter, line_search, trace,
                         record, resume, start),
        lambda exc: failure_fields(exc, trace, record, energy, p, metric.name,
                                   time.perf_counter() - start))


def _guarded(record, owned, failures, descend, failed):
    """Run ``descend()``; a numerical failure (one of ``failures``) becomes a result built
    from ``failed(exc)`` (reported, not raised: README *Reliability*); any other exception
    marks the record failed and propagates; the recorder opened for ``out`` is closed."""
    try:
        try:
            return descend()
        except failures as exc:
            return SolveResult(**failed(exc))
    except BaseException as exc:
        if record is not None:
            record.fail(exc)
        raise
    finally:
        if owned is not None:
            owned.close()


def _check_method(method, newton):
    """Return the method name after checking it and its settings."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if newton is not None:
        if not isinstance(newton, Newton):
            raise TypeError(f"newton must be a densflow.newton.Newton instance or None, "
                            f"got {type(newton).__name__}")
        if method != "newton":
            raise ValueError("newton= settings need method='newton'")
    return method


def _check_loop_settings(max_iter, tol, gtol, line_search, kinds, default=None):
    """Check the stopping rules and line search; return ``(max_iter, line_search)``."""
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    for name, v in (("tol", tol), ("gtol", gtol)):
        check_real_or_none(v, name)
    if line_search is None:
        line_search = Armijo() if default is None else default
    if not isinstance(line_search, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"line_search must be a densflow.solving.{names} instance or None")
    return max_iter, line_search


def _solve_parametric(problem, theta0, metric, tol, gtol, max_iter, line_search, callback,
                      out, resume, overwrite=False):
    """:func:`solve` for a parametric problem (:mod:`densflow.parametric.problem`): the same
    descent loop, recording and reporting of numerical failures."""
    from .parametric.problem import PARAMETRIC_FAILURES, STEP_RULES

    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if not isinstance(resume, bool) or not isinstance(overwrite, bool):
        raise TypeError("resume and overwrite must be True or False")
    if resume and out is None:
        raise ValueError("resume=True needs out= (the run file to continue)")
    theta = problem.check_start(theta0)
    max_iter, line_search = _check_loop_settings(max_iter, tol, gtol, line_search,
                                                 (Armijo, FixedStep) + STEP_RULES)
    if callable(getattr(problem, "check_line_search", None)):
        problem.check_line_search(line_search)
    start = time.perf_counter()
    operator = problem.bind(metric)
    record, owned = _open_record(out, resume, overwrite)
    trace = Trace(callback)
    failures = NUMERICAL_FAILURES + PARAMETRIC_FAILURES
    return _guarded(
        record, owned, failures,
        lambda: _descend(problem, theta, operator.metric, operator, tol, gtol, max_iter,
                         line_search, trace, record, resume, start),
        lambda exc: failure_fields(exc, trace, record, problem, theta, operator.metric.name,
                                   time.perf_counter() - start, failures))


def _open_record(out, resume, overwrite=False):
    """Return ``(record, recorder_to_close)`` for the ``out`` argument of :func:`solve`."""
    if out is None:
        return None, None
    from .io.recorder import Recorder, RunRecord

    if isinstance(out, RunRecord):
        return out, None
    if isinstance(out, (str, os.PathLike)):
        if not resume and not overwrite and os.path.exists(out):
            from .io.recorder import RunFileError

            raise RunFileError(f"out={os.fspath(out)!r} exists; pass resume=True to continue it "
                               "or overwrite=True to replace it")
        recorder = Recorder(out, mode="a" if resume else ("w" if overwrite else "x"))
        return recorder.run("run"), recorder
    raise TypeError(f"out must be a path, a densflow.io.recorder.RunRecord or None, "
                    f"got {type(out).__name__}")


def _descend(energy, p, metric, operator, tol, gtol, max_iter, line_search, callback,
             record, resume, start):
    e_min = energy.min_value
    # [i24] an energy without a known minimum: tol bounds the relative energy change
    change_tol = tol if e_min is None and getattr(energy, "stops_on_change", False) else None
    k, energies, steps, decrements, times, before = 0, [], [], [], [], 0.0
    snapshot_every, resumed_from = REFRESH_EVERY, -1
    positive = getattr(operator, "requires_positive", True)
    after_step = getattr(operator, "after_step", None)
    newton = isinstance(operator, NewtonStep)
    first_step = ((lambda p, s, search: operator.first_step(p, s, search.eta0)) if newton
                  else (lambda p, s, search: None))
    inner = {key: [] for key in INNER_HISTORIES}
    if record is not None:
        from .io.recorder import setup_attributes

        snapshot_every = record.snapshot_every
        setup = setup_attributes(energy, metric, operator, tol, gtol, max_iter, line_search,
                                 snapshot_every)
        resumed = record.begin(setup, energy.mu, p, resume)
        if resumed is not None and resumed.result is not None:
            return resumed.result
        if resumed is not None:
            k, p = resumed.k, resumed.p
            energies, steps, decrements, times = (resumed.energies, resumed.steps,
                                                  resumed.decrements, resumed.times)
            before, resumed_from = float(np.sum(times)), k
            inner = {key: list(resumed.inner.get(key, [0] * k)) for key in INNER_HISTORIES}
    state = energy.evaluate(p)
    if not energies:
        energies.append(state.value)
        if record is not None:
            record.start(state.value, p)
    converged, message = False, None
    while True:
        gap = state.value - e_min if e_min is not None else None
        if not math.isfinite(state.value):
            message = f"energy became non-finite ({state.value}) at iteration {k}"
            break
        if tol is not None and gap is not None and gap <= tol:
            converged, message = True, f"E - E_min = {gap:.3e} <= tol = {tol:g} after {k} iterations"
            break
        if k >= max_iter:
            message = f"reached max_iter = {max_iter} with E = {state.value:.6e}"
            break
        t0 = time.perf_counter()
        if newton:
            s = operator.direction(state.p, state.gradient, gap)
        else:
            s = operator.direction(state.p, state.gradient)
        slope = float(dot(s, state.gradient))
        if newton and not slope > 0 and math.isfinite(slope):
            s = operator.fallback(state.p, state.gradient)
            slope = float(dot(s, state.gradient))
        decrements.append(slope)
        if not math.isfinite(slope):
            message = f"direction became non-finite at iteration {k} (E = {state.value:.6e})"
            break
        if gtol is not None and slope <= gtol:
            converged, message = True, f"decrement s.g = {slope:.3e} <= gtol = {gtol:g} after {k} iterations"
            break
        if change_tol is not None and slope <= change_tol * max(1.0, abs(state.value)):  # [i24]
            converged, message = True, (f"relative energy change s.g / max(1, |E|) = "
                                        f"{slope / max(1.0, abs(state.value)):.3e} <= tol = "
                                        f"{change_tol:g} after {k} iterations (E_min unknown)")
            break
        if slope <= 0 and not (slope < 0 and isinstance(line_search, FixedStep)):
            # (a fixed step needs no descent direction: Adam's momentum, a particle flow)
            converged = slope == 0
            message = (f"natural gradient vanished (s.g = {slope:.3e}) at iteration {k}, "
                       f"E = {state.value:.6e}")
            break
        line = energy.line(state, s, positive=positive)
        eta, _, _ = line_search.search(line, slope, first_step(state.p, s, line_search))
        if eta is None and newton and operator.stats["cg_iterations"]:
            # Newton found no acceptable step: take the metric's first-order step instead
            s = operator.fallback(state.p, state.gradient)
            slope = decrements[-1] = float(dot(s, state.gradient))
            line = energy.line(state, s, positive=positive)
            eta = line_search.search(line, slope)[0] if slope > 0 else None
        if eta is None:
            message = (f"line search failed at iteration {k}: no step >= {line_search.min_step:g} "
                       f"satisfies the Armijo condition (E = {state.value:.6e}, s.g = {slope:.3e})")
            break
        if after_step is not None:
            after_step(line, eta, slope)
        state = line.state_at(eta)
        k += 1
        snapshot = k % snapshot_every == 0
        if snapshot:
            # re-evaluate from the density: bounds the drift of the quadratic terms'
            # gradient updates, and is exactly where a resumed run restarts
            state = energy.evaluate(state.p)
        energies.append(state.value)
        steps.append(eta)
        times.append(time.perf_counter() - t0)
        for key in INNER_HISTORIES:
            inner[key].append(operator.stats[key] if newton else 0)
        if record is not None:
            record.append(k, state.value, eta, slope, times[-1], state.p if snapshot else None,
                          {key: v[-1] for key, v in inner.items()} if newton else None)
        if callback is not None and callback(k, state.p, state.value, eta, slope):
            message = f"stopped by callback after {k} iterations (E = {state.value:.6e})"
            break
    result = SolveResult(
        p=state.p,
        energies=np.asarray(energies),
        steps=np.asarray(steps),
        decrements=np.asarray(decrements),
        times=np.asarray(times),
        n_iter=k,
        converged=converged,
        message=message,
        metric=metric.name,
        wall_time=time.perf_counter() - start + before,
        info={"resumed_from": resumed_from, "method": "newton" if newton else "gradient"},
        **{key: np.asarray(v, dtype=np.int64) for key, v in inner.items()},
    )
    if hasattr(energy, "kkt_residual"):  # [i24]
        result.info["kkt_residual"] = energy.kkt_residual(state)
    if record is not None:
        record.finish(result)
    return result
