"""MonoFlow particles (Yi, Zhu & Liu 2023): one Euler flow per generator loss h.

1000 particles from q = N((1, 1), I) move towards 1000 fixed samples of the target
p = N(0, [[1, .8], [.8, .89]]) by forward Euler, x <- x + eps h'(d(x)) grad d(x), with
the log ratio d = log p/q refitted every 5 steps by logistic regression on 200 random
Fourier features and a linear part (median bandwidth): ``ParticleFlow`` problems of
``densflow.solve`` (``metric="euclidean"``, ``FixedStep(0.05)``). Budget: 300 steps per
run, 3 seeds (seed s: the particles' start and the random features). The members of h:
the generator losses logit, non-saturated, vanilla with shift C = 0 and 3, arcsinh,
MLE/exp, and the f-divergence flow of Jensen-Shannon. The exponential member runs with d
clipped to [-2, 2] inside h' (with the default 5 it diverges at this step).

Recorded value: the ratio estimate -mean d(x) of KL(q || p). Monitor ``kl_fit``: the KL
divergence between the Gaussian fitted to the particles and the target, every 10 steps.
It does not go to zero: the particles move towards the 1000 target samples, whose own
Gaussian fit is at ``FLOOR`` (1.7e-3) from p.

Run: ``densflow run cases/monoflow.py --figure monoflow.png`` (about 2 minutes).
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.app.parametric_case import Experiment, ParametricCase  # noqa: E402
from densflow.parametric.flows import ParticleFlow  # noqa: E402
from densflow.parametric.monoflow import ProbabilityFlow  # noqa: E402
from densflow.parametric.vi import kl_gaussian  # noqa: E402
from densflow.solving import FixedStep  # noqa: E402

C_TARGET = np.array([[1.0, 0.8], [0.8, 0.89]])
STEP, N_STEPS, EVERY, N = 0.05, 300, 10, 1000
TARGET = np.random.default_rng(0).multivariate_normal([0.0, 0.0], C_TARGET, N)
RUNS = {"logit": dict(h="logit"), "non-saturated": dict(h="nonsaturated"),
        "vanilla, C = 0": dict(h="vanilla", shift=0.0), "vanilla, C = 3": dict(h="vanilla", shift=3.0),
        "arcsinh": dict(h="arcsinh"), "MLE (exp), clip 2": dict(h="exp", clip=2.0),
        "Jensen-Shannon flow": dict(h="js")}


def kl_fit(x):
    """KL(N(mean x, cov x) || p)."""
    return kl_gaussian(x.mean(0), np.cov(x.T), [0.0, 0.0], C_TARGET)


FLOOR = kl_fit(TARGET)


def maker(options):
    def make(seed):
        flow = ProbabilityFlow(TARGET, step=STEP, refit_every=5, rng=seed, **options)
        return ParticleFlow(flow), np.random.default_rng(1000 + seed).standard_normal((N, 2)) + 1.0
    return make


def monitor(problem, x):
    return {"kl_fit": kl_fit(x)}


def figure(runfile_path, png):
    """Particles of the logit flow (seed 0) at four steps; the monitor against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densflow.app.parametric_case import read_monitors
    from densflow.app.parametric_figures import runs_by_group, seed_band, seed_matrix
    from densflow.io.recorder import read_run_file

    runfile = read_run_file(runfile_path, snapshots=True)
    runs, monitors = runs_by_group(runfile)["MonoFlow"], read_monitors(runfile_path)
    logit = next(r for r in runs["logit"] if int(r.attrs["seed"]) == 0)
    snaps = dict(zip(logit.snapshot_iterations.astype(int), logit.snapshots))
    snaps[logit.n_iter] = logit.p_final
    fig = plt.figure(figsize=(13, 8.6))
    grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.25])
    shown = [k for k in (0, 10, 40) if k < logit.n_iter] + [logit.n_iter]
    for i, k in enumerate(shown):
        ax = fig.add_subplot(grid[0, i])
        ax.scatter(*TARGET.T, s=2, c="0.7", label="target samples")
        ax.scatter(*snaps[k].T, s=2, c="tab:blue", alpha=0.5, label="particles")
        ax.set_xlim(-4, 5)
        ax.set_ylim(-4, 5)
        ax.set_aspect("equal")
        ax.set_title(f"logit flow, seed 0, step {k}", fontsize=9)
        if i == 0:
            ax.legend(loc="upper left", fontsize=7, markerscale=4)
    ax = fig.add_subplot(grid[1, :])
    markers = "o^sv<>D"
    for i, name in enumerate(RUNS):
        if name not in runs:
            continue
        rs = runs[name]
        x, V = seed_matrix([(monitors[r.name][0], monitors[r.name][1]["kl_fit"]) for r in rs])
        line = seed_band(ax, x, V, color=f"C{i}", lw=1.3, alpha=0.08,
                         label=f"{name}: {np.median(V[:, -1]):.1e} ({V[:, -1].min():.1e} to "
                               f"{V[:, -1].max():.1e})")
        # logit, arcsinh and vanilla C = 3 have h'(d) close to 1 near d = 0 and nearly
        # coincide: markers at staggered steps keep each visible
        line.set(marker=markers[i], ms=4, markevery=(i, len(RUNS)))
    ax.axhline(FLOOR, color="k", lw=0.8, ls=":",
               label=f"Gaussian fit of the {N} target samples: {FLOOR:.1e}")
    ax.set_yscale("log")
    ax.set_xlabel(f"Euler step (step size {STEP})")
    ax.set_ylabel("KL(Gaussian fit of particles || p)")
    ax.set_title(f"{len(rs)} seeds: median (markers tell the curves apart), band min to max; "
                 "logit, arcsinh and vanilla C = 3 nearly coincide", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=3, title=f"KL at step {N_STEPS}: median (min to max)",
              title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle("MonoFlow particles: q = N((1, 1), I) to p = N(0, [[1, .8], [.8, .89]]), "
                 "ratio by logistic regression refitted every 5 steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


case = ParametricCase(
    name="monoflow",
    title="MonoFlow particles to a correlated Gaussian, one Euler flow per h",
    experiments=[Experiment(name, maker(options), metric="euclidean", line_search=FixedStep(STEP),
                            max_iter=N_STEPS, group="MonoFlow", monitor=monitor)
                 for name, options in RUNS.items()],
    seeds=range(3),
    snapshot_every=EVERY,
    figure=figure,
)
