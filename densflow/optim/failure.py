"""Numerical failures of :func:`densflow.solve`, reported as results instead of raised.

A failure inside the descent (an inner linear solve that cannot reach its tolerance)
ends the run with ``converged=False`` and a message, like the other stopping rules; a
recorded run is marked ``failed`` in its run file, with everything computed up to
then.
"""

import time

import numpy as np

from ..core.operators import LinearSolveError

__all__ = ["NUMERICAL_FAILURES", "Trace", "failure_fields"]

#: Exceptions that end a run with ``converged=False`` instead of propagating.
NUMERICAL_FAILURES = (LinearSolveError,)


class Trace:
    """A solver callback that remembers the accepted steps, then calls ``callback``.

    Parameters
    ----------
    callback : callable or None
        The user's callback, ``callback(k, p, value, step, decrement)``; its return
        value is passed on (a true value stops the run).
    """

    def __init__(self, callback):
        self.callback = callback
        self.k, self.p = 0, None
        self.values, self.steps, self.decrements, self.times = [], [], [], []
        self._last = time.perf_counter()

    def __call__(self, k, p, value, step, decrement):
        now = time.perf_counter()
        self.k, self.p = k, p
        self.values.append(value)
        self.steps.append(step)
        self.decrements.append(decrement)
        self.times.append(now - self._last)
        self._last = now
        return self.callback(k, p, value, step, decrement) if self.callback is not None else False


def _initial_value(energy, p0, failures=NUMERICAL_FAILURES):
    """``E(p0)``, or NaN when it cannot be computed either (one of ``failures``)."""
    try:
        return float(energy.evaluate(p0).value)
    except failures:
        return np.nan


def failure_fields(exc, trace, record, energy, p0, metric_name, wall_time,
                   failures=NUMERICAL_FAILURES):
    """The fields of the ``SolveResult`` of a run ended by the numerical failure ``exc``.

    With a ``record`` the histories come from the run file (they include what a
    resumed run inherited), which is then marked failed with the message; otherwise
    from ``trace`` and ``E(p0)`` (NaN if evaluating ``p0`` raises one of ``failures``,
    e.g. a parametric run whose Sinkhorn loss fails at ``theta0``).
    """
    histories = record.histories() if record is not None else None
    if histories is not None and histories["energies"].size:
        h = histories
        k = int(h["steps"].size)
    else:
        k = trace.k
        h = {"energies": np.array([_initial_value(energy, p0, failures)] + trace.values),
             "steps": np.array(trace.steps), "decrements": np.array(trace.decrements),
             "times": np.array(trace.times)}
    value = h["energies"][-1]
    message = f"numerical failure at iteration {k} (E = {value:.6e}): {exc}"
    p = trace.p if trace.p is not None else (record.last_snapshot() if record is not None else None)
    fields = dict(p=p0.copy() if p is None else p, energies=h["energies"], steps=h["steps"],
                  decrements=h["decrements"], times=h["times"], n_iter=k, converged=False,
                  message=message, metric=metric_name, wall_time=wall_time,
                  info={"resumed_from": -1, "error": f"{type(exc).__name__}: {exc}"})
    if record is not None:
        fields["info"]["resumed_from"] = record.resumed_from
        record.fail(exc, message=message, n_iter=k)
    return fields
