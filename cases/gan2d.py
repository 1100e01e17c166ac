"""A small numpy GAN on a ring of 8 Gaussians, with and without Wasserstein proximal
regularisation of the generator (Lin et al. 2021, Algorithm 1; the stability study of
their Fig. 3 at the ordinary and at a 20x larger learning rate).

Generator MLP 2 -> [64, 64] -> 2 and discriminator MLP 2 -> [64, 64] -> 1 (tanh),
non-saturating loss, Adam (betas 0.5, 0.999) for both with the same learning rate,
batches of 128. ``ProximalGAN`` problems of ``densflow.solve`` (``metric="euclidean"``,
``FixedStep(lr)``): one iteration is one outer iteration of Algorithm 1, one
discriminator step and the generator's update, either one Adam step on the generator
loss (Adam) or 5 Adam steps on the loss plus the RWP, O1-SBE or O2Diag-SBE proximal
penalty with h = 0.2 (the settings Lin et al. give for vanilla GANs). Budget: 2000
iterations per run, 5 seeds (initial weights and batches), at lr 1e-3 and 2e-2.

Recorded value: the generator loss of the current discriminator on a fixed batch of 128.
Monitor ``mmd2``, every 50 iterations: the unbiased MMD² (Gaussian kernel, bandwidth
0.5) between 500 generated points (a fixed latent batch) and 500 fixed data points, the
same for every run. The unbiased estimate can be negative: for two independent data
samples of 500 it spreads over about ±1e-3 (``noise``), the level at which a generator
is indistinguishable from the data by this measure. Wall time is recorded per
iteration, not used to stop. Snapshots hold the generator only: ``--resume`` of an
interrupted run restarts the discriminator and the optimisers (rerun it whole with
``--overwrite`` for the figure's numbers).

Run: ``densflow run cases/gan2d.py --figure gan2d.png`` (5-8 minutes).
"""

import os

# tiny matrix products: BLAS threads only spin against each other (measured 12-25x
# slower with two threads on the 2-core machine); set before numpy is imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.app.parametric_case import Experiment, ParametricCase  # noqa: E402
from densflow.parametric.flows import ProximalGAN  # noqa: E402
from densflow.parametric.gan import Critic, ProximalPenalty  # noqa: E402
from densflow.parametric.losses import MMD  # noqa: E402
from densflow.parametric.models import MLP  # noqa: E402
from densflow.solving import FixedStep  # noqa: E402

RADIUS, STD, MODES = 2.0, 0.05, 8
ITERATIONS, SEEDS, EVERY = 2000, 5, 50
METHODS = {"Adam": None, "Adam + RWP": ("rwp", 0.2, 5), "Adam + O1-SBE": ("o1sbe", 0.2, 5),
           "Adam + O2Diag-SBE": ("o2diagsbe", 0.2, 5)}
LEARNING_RATES = {"ordinary lr 1e-3": 1e-3, "20x lr 2e-2": 2e-2}
COLORS = dict(zip(METHODS, ["k", "tab:blue", "tab:orange", "tab:green"]))
LINTHRESH = 1e-3


def ring(rng, B):
    """B samples of the ring of MODES Gaussians of radius RADIUS and std STD."""
    angle = 2 * np.pi * rng.integers(MODES, size=B) / MODES
    return RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1) + STD * rng.standard_normal((B, 2))


GENERATOR = MLP(2, [64, 64], 2, "tanh")
EVAL_MMD = MMD(ring(np.random.default_rng(1000), 500), bandwidth=0.5)
Z_EVAL = np.random.default_rng(2000).standard_normal((500, 2))


def noise(n_pairs=40):
    """MMD² of ``n_pairs`` fresh data samples of 500 against the evaluation set."""
    rng = np.random.default_rng(3000)
    return np.array([EVAL_MMD.value_and_grad_samples(ring(rng, 500))[0] for _ in range(n_pairs)])


def maker(method, lr):
    def make(seed):
        rng = np.random.default_rng(seed)
        critic = Critic(2, [64, 64], "tanh")
        theta0, phi0 = GENERATOR.init(rng), critic.init(rng)
        spec = METHODS[method]
        problem = ProximalGAN(GENERATOR, critic, phi0, ring, rng, batch=128,
                              penalty=ProximalPenalty(*spec) if spec else None, d_lr=lr,
                              monitor_batch=128)
        return problem, theta0
    return make


def monitor(problem, theta):
    return {"mmd2": EVAL_MMD.value_and_grad_samples(GENERATOR.sample(theta, Z_EVAL))[0]}


def figure(runfile_path, png):
    """MMD² against the outer iteration (median and range over seeds) per learning rate;
    the generated points of seed 0 at the end of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densflow.app.parametric_case import read_monitors
    from densflow.app.parametric_figures import runs_by_group, seed_band, seed_matrix
    from densflow.io.recorder import read_run_file

    groups = runs_by_group(read_run_file(runfile_path, snapshots=True))
    monitors = read_monitors(runfile_path)
    lo, hi = np.quantile(noise(), [0.05, 0.95])
    data = ring(np.random.default_rng(0), 500)
    fig = plt.figure(figsize=(13, 10.4), constrained_layout=True)
    grid = fig.add_gridspec(3, 4, height_ratios=[1.9, 1, 1])
    for col, lr_name in enumerate(LEARNING_RATES):
        ax = fig.add_subplot(grid[0, 2 * col: 2 * col + 2])
        ax.axhspan(lo, hi, color="0.85", label="two data samples: 5-95 % of the estimate")
        for method in METHODS:
            rs = groups[lr_name][method]
            x, V = seed_matrix([(monitors[r.name][0], monitors[r.name][1]["mmd2"]) for r in rs])
            seed_band(ax, x, V, color=COLORS[method], lw=1.4,
                      label=f"{method}: {np.median(V[:, -1]):.1e} "
                            f"({V[:, -1].min():.1e} to {V[:, -1].max():.1e})")
        ax.set_yscale("symlog", linthresh=LINTHRESH, linscale=0.5)
        ax.axhline(0, color="0.4", lw=0.6)
        ax.set_xlabel("outer iteration of Algorithm 1 (one discriminator step, one "
                      "generator update)", fontsize=8.5)
        ax.set_ylabel(f"unbiased MMD² to data\n(symlog: linear within ±{LINTHRESH:g})")
        ax.set_title(f"{lr_name}: median over {len(rs)} seeds, band min to max", fontsize=10)
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                  title="MMD² at the last iteration: median (min to max)", title_fontsize=7.5)
        ax.grid(True, which="major", lw=0.3)
        for k, method in enumerate(METHODS):
            ax = fig.add_subplot(grid[1 + k // 2, 2 * col + k % 2])
            run = next(r for r in groups[lr_name][method] if int(r.attrs["seed"]) == 0)
            theta = run.p_final if run.p_final is not None else run.snapshots[-1]
            x = GENERATOR.sample(theta, Z_EVAL)
            ax.scatter(data[:, 0], data[:, 1], s=2, c="0.7")
            ax.scatter(x[:, 0], x[:, 1], s=2, c=COLORS[method])
            half = max(3.0, 1.05 * np.nanmax(np.abs(x)))
            ax.set_xlim(-half, half)
            ax.set_ylim(-half, half)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
            ax.set_title(f"{method}, {lr_name.split()[-1]}, seed 0 (data grey)", fontsize=8)
    n = max(r.n_iter for exps in groups.values() for rs in exps.values() for r in rs)
    fig.suptitle("A GAN on a ring of 8 Gaussians with and without Wasserstein proximal "
                 f"regularisation of the generator, {n} outer iterations", fontsize=10)
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return png


case = ParametricCase(
    name="gan2d",
    title="GAN on a ring of 8 Gaussians: Adam with and without proximal penalties",
    experiments=[Experiment(method, maker(method, lr), metric="euclidean", line_search=FixedStep(lr),
                            max_iter=ITERATIONS, group=lr_name, monitor=monitor)
                 for lr_name, lr in LEARNING_RATES.items() for method in METHODS],
    seeds=range(SEEDS),
    snapshot_every=EVERY,
    figure=figure,
)
