"""The result of :func:`densflow.flow` and the bounded store of its saved densities."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FlowResult", "Frames"]


@dataclass
class FlowResult:
    """Outcome of :func:`densflow.flow`.

    Attributes
    ----------
    p : ndarray
        The density at the last accepted time :attr:`t`.
    t : float
        The last accepted time (``t_end`` unless the run stopped early).
    times : ndarray
        Times of the saved densities.
    densities : ndarray
        Saved densities, first axis time (``densities[i]`` at ``times[i]``).
    step_times : ndarray
        Times of all accepted steps, ``t0`` first (``n_steps + 1`` entries).
    energies : ndarray
        :math:`F(p)` at :attr:`step_times`.
    steps : ndarray
        Accepted step sizes (``n_steps`` entries).
    newton_iterations, cg_iterations : ndarray
        Per accepted step: Newton iterations and PCG iterations (summed over its
        Newton iterations; rejected and failed attempts are not included, see
        :attr:`info`).
    errors : ndarray
        Per accepted step: the estimated local error in the weighted RMS norm
        (adaptive steps; 1 is the tolerance) or in continuum units (fixed steps).
    n_steps : int
        Accepted steps.
    converged : bool
        Whether the flow reached ``t_end`` (``False``: a failure, ``max_steps`` or the
        callback stopped it; :attr:`message` says which).
    failed : bool
        Whether a numerical failure ended the run (a step failed even after the
        step-size cuts).
    message : str
        Why the run ended.
    scheme, metric : str
        As requested.
    wall_time : float
        Seconds.
    info : dict
        ``rejected`` (error too large), ``failed_attempts`` (Newton failures retried
        shorter), ``newton_total``, ``cg_total`` (including rejected attempts),
        ``adaptive``, ``rtol``, ``atol``, ``dt``, ``frames_thinned``.
    """

    p: np.ndarray
    t: float
    times: np.ndarray
    densities: np.ndarray
    step_times: np.ndarray
    energies: np.ndarray
    steps: np.ndarray
    newton_iterations: np.ndarray
    cg_iterations: np.ndarray
    errors: np.ndarray
    n_steps: int
    converged: bool
    failed: bool
    message: str
    scheme: str
    metric: str
    wall_time: float = 0.0
    info: dict = field(default_factory=dict)


class Frames:
    """Saved densities: at requested times, or every ``every`` steps with at most
    ``capacity`` frames (past it every other frame is dropped and the stride doubles,
    so memory stays bounded and the frames stay evenly spaced in steps)."""

    def __init__(self, every, capacity):
        self.every = every
        self.capacity = capacity
        self.times, self.densities, self.steps = [], [], []
        self.thinned = 0

    def add(self, k, t, p):
        self.times.append(float(t))
        self.densities.append(np.array(p, copy=True))
        self.steps.append(k)
        if len(self.times) > self.capacity:
            keep = [i for i, s in enumerate(self.steps) if (s // self.every) % 2 == 0]
            self.times = [self.times[i] for i in keep]
            self.densities = [self.densities[i] for i in keep]
            self.steps = [self.steps[i] for i in keep]
            self.every *= 2
            self.thinned += 1

    def wants(self, k):
        return self.every is not None and k % self.every == 0

    def arrays(self, shape):
        dens = np.array(self.densities) if self.densities else np.zeros((0,) + tuple(shape))
        return np.array(self.times), dens
