"""The parametric case of benchmarks/attacks.py: Gaussian VI on fresh batches (the
issue-29 case that resumed statistically), three seeds of 50000 steps (a few seconds each)."""

import numpy as np

from densflow.app.parametric_case import Experiment, ParametricCase
from densflow.parametric.targets import GaussianTarget
from densflow.parametric.vi import vi_problem
from densflow.solving import FixedStep

MU0, S0 = np.array([3.0, -2.0]), np.diag([2.0, 0.5])


def make(seed):
    target = GaussianTarget([0.0, 0.0], [[1.0, 0.8], [0.8, 0.89]])
    return (vi_problem(target, 2, estimator="stl", n_samples=10, rng=seed),
            np.concatenate([MU0, S0.ravel()]))


case = ParametricCase(
    title="attack case: Gaussian VI, fresh batches",
    experiments=[Experiment("VI, STL", make, metric="euclidean", line_search=FixedStep(0.01),
                            max_iter=50000)],
    seeds=range(3),
)
