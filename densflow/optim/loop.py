r"""The descent loop of :func:`densflow.solve`, over the protocol of :mod:`densflow.optim.kinds`.

At :math:`x_k`: :math:`g = \nabla E(x_k)`, a direction :math:`s` from the problem's
kind, then a step size :math:`\eta` from the step rule (Armijo backtracking by default)
and :math:`x_{k+1} = x_k - \eta s`. The decrement :math:`s\cdot g` is recorded at
every iteration. The loop imports no problem kind: it stops on ``tol``
(:math:`E - E_{\min}`), ``gtol`` (the decrement), ``max_iter``, a non-finite value, a
vanishing decrement, a failed line search or the callback; it records through the
``record`` it is given and reports the failures the kind names.
"""

import math
import time

import numpy as np

from ..core.operators import dot
from ..core.validation import check_positive_int, check_real_or_none
from .linesearch import Armijo, FixedStep
from .result import INNER_HISTORIES, SolveResult

__all__ = ["descend", "guarded", "check_loop_settings", "REFRESH_EVERY"]

#: Without a recorder, the state is re-evaluated from the iterate every this many
#: iterations (a recorder's ``snapshot_every`` takes its place).
REFRESH_EVERY = 10


def check_loop_settings(max_iter, tol, gtol, line_search, kinds, default=None):
    """Check the stopping rules and step rule; return ``(max_iter, line_search)``."""
    max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
    for name, v in (("tol", tol), ("gtol", gtol)):
        check_real_or_none(v, name)
    if line_search is None:
        line_search = Armijo() if default is None else default
    if not isinstance(line_search, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"line_search must be a densflow.solving.{names} instance or None")
    return max_iter, line_search


def guarded(record, owned, failures, descend, failed):
    """Run ``descend()``; a numerical failure (one of ``failures``) becomes a result built
    from ``failed(exc)`` (reported, not raised: docs *Reliability*); any other exception
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


def descend(bound, tol, gtol, max_iter, callback, record, resume, start):
    """Run the loop on a :class:`densflow.optim.kinds.Bound`; return a :class:`SolveResult`."""
    problem, line_search = bound.problem, bound.line_search
    e_min = problem.min_value
    p = bound.x0
    k, energies, steps, decrements, times, before = 0, [], [], [], [], 0.0
    snapshot_every, resumed_from = REFRESH_EVERY, -1
    positive = bound.positive
    inner_counts = bound.inner_counts
    # a problem without a known minimum may ask to stop on the predicted relative change
    change_tol = tol if e_min is None and getattr(problem, "stops_on_change", False) else None
    inner = {key: [] for key in INNER_HISTORIES}
    checkpoint = bound.checkpoint if record is not None else None
    saved = None
    if record is not None:
        snapshot_every = record.snapshot_every
        setup = {**bound.setup, "snapshot_every": int(snapshot_every)}
        resumed = record.begin(setup, bound.reference, p, resume, states=checkpoint is not None)
        if resumed is not None and resumed.result is not None:
            return resumed.result
        if resumed is not None:
            k, p = resumed.k, resumed.p
            energies, steps, decrements, times = (resumed.energies, resumed.steps,
                                                  resumed.decrements, resumed.times)
            before, resumed_from = float(np.sum(times)), k
            inner = {key: list(resumed.inner.get(key, [0] * k)) for key in INNER_HISTORIES}
            if resumed.state is not None and bound.restore is not None:
                bound.restore(resumed.state)  # e.g. the batches' generator: resumes exactly
    if checkpoint is not None:
        saved = checkpoint()
    state = bound.start(p) if k == 0 and bound.start is not None else problem.evaluate(p)
    admissible = bound.admissible
    last_ok = (k, state.p) if admissible is not None and admissible(state.p) is None else None
    if not energies:
        energies.append(state.value)
        if record is not None:
            record.start(state.value, p, state=saved)
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
        fused = bound.fused_step(state, gap) if bound.fused_step is not None else None
        if fused is not None:  # direction, decrement, line search and new state in one call
            s, slope, eta, stepped = fused
        else:
            s = bound.direction(state.p, state.gradient, gap)
            slope = float(dot(s, state.gradient))
            if bound.fallback is not None and not slope > 0 and math.isfinite(slope):
                s = bound.fallback(state.p, state.gradient)
                slope = float(dot(s, state.gradient))
        decrements.append(slope)
        if not math.isfinite(slope):
            message = f"direction became non-finite at iteration {k} (E = {state.value:.6e})"
            break
        if gtol is not None and slope <= gtol:
            converged, message = True, f"decrement s.g = {slope:.3e} <= gtol = {gtol:g} after {k} iterations"
            break
        if change_tol is not None and slope <= change_tol * max(1.0, abs(state.value)):
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
        line = None
        if fused is None:
            line = problem.line(state, s, positive=positive)
            eta, _, _ = line_search.search(line, slope, bound.first_step(state.p, s, line_search))
        if eta is None and bound.fallback is not None and bound.fallback_ready():
            # no acceptable step along the direction: take the first-order step instead
            s = bound.fallback(state.p, state.gradient)
            slope = decrements[-1] = float(dot(s, state.gradient))
            line = problem.line(state, s, positive=positive)
            eta = line_search.search(line, slope)[0] if slope > 0 else None
        if eta is None:
            message = (f"line search failed at iteration {k}: no step >= {line_search.min_step:g} "
                       f"satisfies the Armijo condition (E = {state.value:.6e}, s.g = {slope:.3e})")
            break
        if line is None:
            state = stepped
        else:
            if bound.after_step is not None:
                bound.after_step(line, eta, slope)
            state = line.state_at(eta)
        k += 1
        snapshot = k % snapshot_every == 0
        if snapshot:
            # re-evaluate from the iterate: bounds the drift of the quadratic terms'
            # gradient updates, and is exactly where a resumed run restarts
            if checkpoint is not None:
                saved = checkpoint()
            state = problem.evaluate(state.p)
        if admissible is not None and admissible(state.p) is None:
            last_ok = (k, state.p)
        energies.append(state.value)
        steps.append(eta)
        times.append(time.perf_counter() - t0)
        counts = inner_counts() if inner_counts is not None else None
        for key in INNER_HISTORIES:
            inner[key].append(counts[key] if counts is not None else 0)
        if record is not None:
            record.append(k, state.value, eta, slope, times[-1], state.p if snapshot else None,
                          {key: v[-1] for key, v in inner.items()} if counts is not None else None,
                          state=saved if snapshot else None)
        if callback is not None and callback(k, state.p, state.value, eta, slope):
            message = f"stopped by callback after {k} iterations (E = {state.value:.6e})"
            break
    p, returned = state.p, k
    why = admissible(state.p) if admissible is not None else None
    if why is not None:  # never an inadmissible answer, never "converged" with one
        converged = False
        message = f"{message}; but {why} at iteration {k}"
        if last_ok is not None:
            returned, p = last_ok
            message += f": p is iterate {returned}, the last admissible one"
    result = SolveResult(
        p=p,
        energies=np.asarray(energies),
        steps=np.asarray(steps),
        decrements=np.asarray(decrements),
        times=np.asarray(times),
        n_iter=k,
        converged=converged,
        message=message,
        metric=bound.metric,
        wall_time=time.perf_counter() - start + before,
        info={"resumed_from": resumed_from, "method": bound.method,
              **({"returned_iteration": returned} if returned != k else {})},
        **{key: np.asarray(v, dtype=np.int64) for key, v in inner.items()},
    )
    if callable(getattr(problem, "kkt_residual", None)):
        result.info["kkt_residual"] = problem.kkt_residual(state)
    if record is not None:
        record.finish(result)
    return result
