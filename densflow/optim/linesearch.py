"""Line searches of :func:`densflow.solve`: Armijo backtracking and a fixed step."""

import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["Armijo", "FixedStep"]


@dataclass(frozen=True)
class Armijo:
    """Backtracking line search settings.

    Parameters
    ----------
    eta0 : float
        First trial step (the paper: 1).
    shrink : float
        Factor applied to a rejected step, in (0, 1) (the paper: 1/2).
    c1 : float
        Sufficient-decrease constant in (0, 1) (the paper: 1/2).
    min_step : float
        A step below this is a line-search failure: the solver stops with
        ``converged=False``.
    """

    eta0: float = 1.0
    shrink: float = 0.5
    c1: float = 0.5
    min_step: float = 1e-14

    #: Most trial steps one search may take from ``eta0`` down to ``min_step``.
    MAX_TRIALS = 10_000

    def __post_init__(self):
        for name in ("eta0", "min_step"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and np.isfinite(v) and v > 0):
                raise ValueError(f"line search {name} must be a finite number > 0, got {v!r}")
        for name in ("shrink", "c1"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 < v < 1):
                raise ValueError(f"line search {name} must lie strictly between 0 and 1, got {v!r}")
        if self.min_step > self.eta0:
            raise ValueError(f"line search min_step must be <= eta0, got min_step={self.min_step!r} "
                             f"> eta0={self.eta0!r}")
        trials = np.log(self.min_step / self.eta0) / np.log(self.shrink)
        if trials > self.MAX_TRIALS:
            raise ValueError(f"line search shrink={self.shrink!r} needs {trials:.3g} trials from "
                             f"eta0={self.eta0:g} to min_step={self.min_step:g}; at most "
                             f"{self.MAX_TRIALS} are allowed (use a smaller shrink or a larger min_step)")

    def search(self, line, slope, eta0=None):
        """Return ``(eta, delta, trials)``; ``eta`` is ``None`` when no step is accepted.
        ``eta0`` overrides the first trial step (Newton's fraction-to-the-boundary rule)."""
        eta = self.eta0 if eta0 is None else eta0
        backtrack = getattr(line, "backtrack", None)
        fused = backtrack(slope, eta, self.shrink, self.c1, self.min_step) if backtrack else None
        if fused is not None:  # the same loop, compiled (densflow.energies.lines)
            return fused
        trials = 0
        while eta >= self.min_step:
            trials += 1
            delta = line.delta(eta)
            if delta <= -self.c1 * eta * slope:
                return eta, delta, trials
            eta *= self.shrink
        return None, None, trials


@dataclass(frozen=True)
class FixedStep:
    """A constant step ``eta`` accepted without a decrease test (parametric problems only,
    e.g. small-step studies and stochastic batches).

    Parameters
    ----------
    eta : float
        The step size, > 0.
    """

    eta: float

    def __post_init__(self):
        if isinstance(self.eta, bool) or not (isinstance(self.eta, numbers.Real)
                                              and np.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"fixed step eta must be a finite number > 0, got {self.eta!r}")

    @property
    def min_step(self):
        return self.eta

    def search(self, line, slope, eta0=None):
        """Return ``(eta, None, 0)``: the step is taken as is."""
        return self.eta, None, 0
