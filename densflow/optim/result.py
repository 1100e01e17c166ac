"""The outcome of a run of the descent loop (:func:`densflow.solve`)."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SolveResult", "INNER_HISTORIES"]

#: Per-step counts of a method's inner work (Newton's conjugate-gradient iterations,
#: Hessian products and inner :math:`L_\mu^+` iterations; zeros for first-order steps).
INNER_HISTORIES = ("cg_iterations", "hessian_products", "inner_iterations")


@dataclass
class SolveResult:
    """Outcome of :func:`densflow.solve`.

    Attributes
    ----------
    p : ndarray
        The last iterate; or, when the last is not admissible (a grid density with
        entries ``<= 0``, see :class:`densflow.optim.kinds.Bound`), the last admissible
        one, ``info["returned_iteration"]`` (then ``converged=False``).
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
