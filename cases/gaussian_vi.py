"""Gaussian VI by Euclidean gradient descent on (mu, S) against the Bures–Wasserstein
gradient flow and its natural gradient (Yi & Liu 2023), every method through
``densflow.solve``.

Groups (targets): a 2D Gaussian N(0, [[1, .8], [.8, .89]]), where the flow is the
closed-form Ornstein–Uhlenbeck path and the W2 distance to the target can go to zero;
and the posterior of Bayesian logistic regression (40 synthetic points, 2 weights,
prior N(0, I)), where the reference is the flow's fixed point (the best Gaussian,
``reference``). Start: mu = (3, -2), S = diag(2, 0.5).

* VI, ``reparam`` and ``stl`` estimators: ``vi_problem`` (a "full" Gaussian, ReverseKL on
  fresh batches of 10 samples), ``metric="euclidean"``, ``FixedStep(0.01)``, 2000 steps,
  5 seeds (the batches);
* the flow: ``BuresWassersteinFlow`` (RK4, Gauss–Hermite rule with 8 points per
  dimension), ``FixedStep(0.01)``, 2000 steps (deterministic: one seed);
* its natural gradient: ``Problem(Gaussian(2, "cholesky"), ReverseKL(target, order=8))``
  with ``metric="exact_wasserstein"`` and ``FixedStep(0.05)``, 400 steps (five times VI's
  step: a forward-Euler step of the flow; the covariance relaxes at twice the target's
  precision, up to 9.7 for the logistic posterior, so steps near 0.1 stop contracting).

Monitor ``w2``: the W2 distance to the reference every 10 steps (below about 1e-8 it is
the rounding of ``w2_gaussian``'s trace difference). The time of step k is k × step.

Run: ``densflow run cases/gaussian_vi.py --figure gaussian_vi.png`` (about a minute).
"""

import functools
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.parametric import Gaussian, Problem  # noqa: E402
from densflow.app.parametric_case import Experiment, ParametricCase  # noqa: E402
from densflow.parametric.flows import BuresWassersteinFlow  # noqa: E402
from densflow.parametric.vi import (GaussianTarget, LogisticRegressionPosterior,  # noqa: E402
                                    ReverseKL, bures_wasserstein_flow, vi_problem, w2_gaussian)
from densflow.solving import FixedStep  # noqa: E402

STEP, T_END, N_SAMPLES, SEEDS = 0.01, 20.0, 10, 5
NATURAL_STEP = 0.05
MU0, S0 = np.array([3.0, -2.0]), np.diag([2.0, 0.5])
W2_FLOOR = 1e-8
TARGETS = {"Gaussian target": lambda: GaussianTarget([0.0, 0.0], [[1.0, 0.8], [0.8, 0.89]]),
           "Bayesian logistic regression": lambda: LogisticRegressionPosterior.synthetic(40, 2, 1.0, rng=0)}
FLOW = "Bures-Wasserstein flow (RK4, step 0.01)"
NATURAL = f"BW natural gradient (exact_wasserstein, step {NATURAL_STEP:g})"
VI = {"reparam": "VI, reparametrisation estimator", "stl": "VI, STL estimator"}


@functools.lru_cache(maxsize=None)
def reference(group):
    """Mean and covariance the runs of ``group`` are measured against: the target's, or
    the flow's fixed point (RK4 to t = 20 from N(0, I), step 0.02)."""
    target = TARGETS[group]()
    if isinstance(target, GaussianTarget):
        return target.mean, target.cov
    _, mu, Sigma = bures_wasserstein_flow(target, [0.0, 0.0], np.eye(2), 20.0, 0.02, order=8)
    return mu[-1], Sigma[-1]


def moments(problem, p):
    if isinstance(problem, BuresWassersteinFlow):
        mu, Sigma = problem.unpack(p)
        return mu, 0.5 * (Sigma + Sigma.T)
    return problem.model.moments(p)


def monitor_for(group):
    def monitor(problem, p):
        return {"w2": w2_gaussian(*moments(problem, p), *reference(group))}
    return monitor


def experiments(group):
    make_target = TARGETS[group]

    def flow(seed):
        problem = BuresWassersteinFlow(make_target(), 2, order=8)
        return problem, problem.pack(MU0, S0 @ S0.T)

    def vi(estimator):
        def make(seed):
            return (vi_problem(make_target(), 2, estimator, "mc", n_samples=N_SAMPLES, rng=seed),
                    Gaussian(2, "full").pack(MU0, S0))
        return make

    def natural(seed):
        model = Gaussian(2, "cholesky")
        problem = Problem(model, ReverseKL(make_target(), order=8), z=model.latent(0, 2))
        return problem, model.pack(MU0, np.linalg.cholesky(S0 @ S0.T))

    n, monitor = int(round(T_END / STEP)), monitor_for(group)
    common = dict(group=group, monitor=monitor)
    return [Experiment(FLOW, flow, line_search=FixedStep(STEP), max_iter=n, seeds=[0], **common),
            *[Experiment(VI[e], vi(e), line_search=FixedStep(STEP), max_iter=n, **common)
              for e in VI],
            Experiment(NATURAL, natural, metric="exact_wasserstein",
                       line_search=FixedStep(NATURAL_STEP),
                       max_iter=int(round(T_END / NATURAL_STEP)), seeds=[0], **common)]


def figure(runfile_path, png):
    """W2 to the reference against the time k × step, one panel per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densflow.app.parametric_case import read_monitors
    from densflow.app.parametric_figures import runs_by_group, seed_band, seed_matrix
    from densflow.io.recorder import read_run_file

    groups, monitors = runs_by_group(read_run_file(runfile_path)), read_monitors(runfile_path)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6.0), sharey=True)
    styles = {FLOW: dict(color="0.6", lw=5, alpha=0.6),
              VI["reparam"]: dict(color="tab:orange", lw=1.2),
              VI["stl"]: dict(color="tab:blue", lw=1.2),
              NATURAL: dict(color="tab:green", lw=0, marker="o", ms=3.5, markevery=4)}
    for ax, group in zip(axes, TARGETS):
        for name, style in styles.items():
            rs = groups[group][name]
            eta = float(rs[0].attrs["line_search_eta"])
            x, V = seed_matrix([(eta * monitors[r.name][0], monitors[r.name][1]["w2"]) for r in rs])
            V = np.maximum(V, W2_FLOOR)
            last = np.median(V[:, -1])
            ranged = f" (seeds {V[:, -1].min():.1e} to {V[:, -1].max():.1e})" if len(rs) > 1 else ""
            seed_band(ax, x, V, label=f"{name}: {last:.1e}{ranged}", **style)
        ax.set_yscale("log")
        ax.set_ylim(W2_FLOOR / 2, 10)
        ax.set_title(group, fontsize=10)
        ax.set_xlabel("time t = step × iterations")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8,
                  title=f"W2 at t = {T_END:g} (median)", title_fontsize=8)
    axes[0].set_ylabel(f"W2 to the target (right: to the best Gaussian)\nvalues below "
                       f"{W2_FLOOR:g} (rounding) drawn at {W2_FLOOR:g}")
    fig.suptitle(f"Gaussian VI (step {STEP}, {N_SAMPLES} samples per step, {SEEDS} seeds: median, "
                 "band min to max), the Bures–Wasserstein flow (grey)\nand its natural gradient "
                 f"(dots, step {NATURAL_STEP:g}), from N((3, -2), diag(4, 0.25))", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


case = ParametricCase(
    name="gaussian_vi",
    title="Gaussian VI, the Bures-Wasserstein flow and its natural gradient",
    experiments=[e for group in TARGETS for e in experiments(group)],
    seeds=range(SEEDS),
    snapshot_every=10,
    figure=figure,
)
