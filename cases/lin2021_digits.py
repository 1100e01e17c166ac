"""Lin et al. (2021), Sec. 5, at digits scale: Wasserstein proximal regularisation of a GAN's
generator (Algorithm 1) on scikit-learn's 8 x 8 digits, scored by a "digits FID".

Claims tested (Lin et al. 2021, Sec. 5 and Fig. 3): the RWP, O1-SBE and O2Diag-SBE
proximal steps (1) decrease the FID faster per generator update and (2) keep training
stable at a 10x larger learning rate, where plain Adam destabilises.

Data: the 1797 digits, pixels rescaled to [-1, 1]. Networks (float32, PyTorch): generator
16 -> 128 -> 128 -> 64 (ReLU, tanh output), discriminator 64 -> 128 -> 128 -> 1 (LeakyReLU
0.2), initialised from the seed (the same start for every method of a seed). Batches of
64. Losses: non-saturating ("NS") and WGAN-GP (gradient penalty 10, 5 critic steps per
outer iteration). Optimiser Adam for both networks with the paper's betas, (0.5, 0.999)
for NS and (0.5, 0.9) for WGAN-GP, at the paper's usual learning rates (2e-4 NS, 1e-4
WGAN-GP) and at 10x them. Proximal settings (h, generator steps l per outer iteration):
the paper's appendix -- NS: RWP, O1-SBE and O2Diag-SBE (0.2, 5); WGAN-GP: RWP (0.1, 10),
O1-SBE (0.5, 5), O2Diag-SBE (0.2, 5), and at the high rate RWP (0.1, 5), O1-SBE (0.05, 5),
O2Diag-SBE (0.05, 3). Budgets: 250 outer iterations (NS) and 120 (WGAN-GP), 5 seeds.
These settings were fixed before any run of this case and are not tuned; a first run with
300 and 150 iterations and the FID of 512 samples took 12.9 minutes on the loaded machine,
so the budgets and the FID's sample were cut, nothing else (its verdicts were the same).

Recorded value (one per outer iteration = one discriminator update and l generator
updates): the digits FID of 256 generated images from a fixed latent batch -- the
Frechet distance between Gaussians fitted to the penultimate-layer features (64 ReLU
units) of an MLP classifier trained inside the case (64 -> 128 -> 64 -> 10, 600 Adam
steps on a 75 % split, about 97-98 % test accuracy) and to the features of the 1797
digits. Monitor ``mmd2`` (at iterations 0, 100, 200 and the last): the unbiased pixel
MMD^2 (Gaussian kernel, bandwidth 6.1, the median distance between two digits) between 1000
generated images and the 1797 digits.

Run: ``densflow run cases/lin2021_digits.py -o lin2021_digits.h5 --figure
plots/lin2021_digits.png``, then ``densflow inspect lin2021_digits.h5`` and
``python cases/lin2021_digits.py lin2021_digits.h5`` (the README's numbers).
"""

import functools
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
import torch  # noqa: E402

from densflow.app.parametric_case import Experiment, ParametricCase  # noqa: E402
from densflow.parametric.data import Monitored, load_digits_data, split  # noqa: E402
from densflow.parametric.losses import MMD  # noqa: E402
from densflow.parametric.torch import TorchModel  # noqa: E402
from densflow.parametric.torch.realdata import DigitsClassifier, TorchGAN, sequential  # noqa: E402
from densflow.solving import FixedStep  # noqa: E402

torch.set_num_threads(1)
# under densflow run numpy is imported before this file: limit its BLAS threads here too
# (threaded BLAS on the shared two-core machine made RWP's CG steps 12x slower)
threadpool_limits(1)

LATENT, BATCH, MONITOR, BANDWIDTH = 16, 64, 256, 6.1
#: loss -> (usual learning rate, Adam betas, critic steps, outer iterations)
LOSSES = {"NS": (2e-4, (0.5, 0.999), 1, 250), "WGAN-GP": (1e-4, (0.5, 0.9), 5, 120)}
#: (loss, high rate?) -> {method: (h, generator steps)} (Lin et al. 2021, appendix)
PROXIMAL = {
    ("NS", False): {"RWP": (0.2, 5), "O1-SBE": (0.2, 5), "O2Diag-SBE": (0.2, 5)},
    ("NS", True): {"RWP": (0.2, 5), "O1-SBE": (0.2, 5), "O2Diag-SBE": (0.2, 5)},
    ("WGAN-GP", False): {"RWP": (0.1, 10), "O1-SBE": (0.5, 5), "O2Diag-SBE": (0.2, 5)},
    ("WGAN-GP", True): {"RWP": (0.1, 5), "O1-SBE": (0.05, 5), "O2Diag-SBE": (0.05, 3)},
}
KIND = {"RWP": "rwp", "O1-SBE": "o1sbe", "O2Diag-SBE": "o2diagsbe"}


@functools.lru_cache(maxsize=1)
def digits():
    """The digits, the classifier of the FID, the FID and the pixel MMD (computed once)."""
    X, y = load_digits_data(-1.0, 1.0)
    train, test = split(len(X), 0.25, seed=0)
    clf = DigitsClassifier(hidden=(128, 64), seed=0).fit(X[train], y[train], steps=600)
    return X, y, train, test, clf, clf.fid(X), MMD(X, bandwidth=BANDWIDTH)


def networks(seed):
    torch.manual_seed(seed)
    G = sequential([LATENT, 128, 128, 64], "relu", "tanh")
    D = sequential([64, 128, 128, 1], "leaky_relu")
    return G, D


GENERATOR = TorchModel(networks(0)[0], LATENT)          # the architecture, for sampling
Z_FID = np.random.default_rng(2024).standard_normal((MONITOR, LATENT))
Z_EVAL = np.random.default_rng(99).standard_normal((1000, LATENT))


def maker(loss, kind=None, h=0.2, steps=1):
    def make(seed):
        X, _, _, _, _, fid, _ = digits()
        _, betas, n_critic, _ = LOSSES[loss]
        G, D = networks(seed)
        gan = TorchGAN(G, D, X, LATENT, loss=loss.lower(), penalty=kind, h=h, steps=steps,
                       batch=BATCH, n_critic=n_critic, betas=betas, seed=1000 + seed)
        problem = Monitored(gan, lambda theta: fid(gan.model.sample(theta, Z_FID)),
                            f"digits FID, {MONITOR} samples")
        return problem, gan.model.theta()
    return make


def monitor(problem, theta):
    """Unbiased pixel MMD^2 of 1000 generated images against the 1797 digits."""
    return {"mmd2": digits()[6].value_and_grad_samples(GENERATOR.sample(theta, Z_EVAL))[0]}


def group_name(loss, high):
    lr = LOSSES[loss][0] * (10 if high else 1)
    return f"{loss}, lr {lr:g}" + (" (10x)" if high else "")


def label(method, h=None, steps=None):
    return method if h is None else f"{method} (h {h:g}, l {steps})"


def generator_steps(label):
    """Generator updates per outer iteration of the method ``label``."""
    return int(label.split(", l ")[1].rstrip(")")) if ", l " in label else 1


def build(seeds=range(5), iterations=None):
    """The case; ``iterations`` overrides both budgets (a short version)."""
    experiments = []
    for loss, (lr, _, _, budget) in LOSSES.items():
        for high in (False, True):
            group, rate = group_name(loss, high), lr * (10 if high else 1)
            n = budget if iterations is None else iterations
            experiments.append(Experiment("Adam", maker(loss), line_search=FixedStep(rate),
                                          max_iter=n, group=group, monitor=monitor))
            for method, (h, steps) in PROXIMAL[(loss, high)].items():
                experiments.append(Experiment(label(method, h, steps), maker(loss, KIND[method], h, steps),
                                              line_search=FixedStep(rate), max_iter=n, group=group,
                                              monitor=monitor))
    return ParametricCase(
        name="lin2021_digits",
        title="GAN on 8x8 digits, Adam with and without Wasserstein proximal steps (Algorithm 1): "
              f"digits FID of {MONITOR} samples per outer iteration, median and range over seeds",
        experiments=experiments, seeds=seeds, snapshot_every=100, figure=figure)


COLORS = {"Adam": "k", "RWP": "tab:red", "O1-SBE": "tab:orange", "O2Diag-SBE": "tab:green"}


def real_floor(n=MONITOR, draws=5):
    """The FID of ``n`` real digits (``draws`` random subsets): min and max."""
    X, _, _, _, _, fid, _ = digits()
    rng = np.random.default_rng(7)
    values = [fid(X[rng.choice(len(X), n, replace=False)]) for _ in range(draws)]
    return min(values), max(values)


def figure(runfile_path, png):
    """Per group: the FID against the outer iteration (median, band min to max over seeds;
    grey: the FID of 256 real digits), and 8 samples of each method's final generator
    (seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densflow.app.parametric_figures import runs_by_group, seed_band, seed_matrix
    from densflow.io.recorder import read_run_file

    groups = runs_by_group(read_run_file(runfile_path))
    lo, hi = real_floor()
    fig = plt.figure(figsize=(16, 7.4), constrained_layout=True)
    grid = fig.add_gridspec(2, len(groups), height_ratios=[2.2, 1])
    for col, (g, exps) in enumerate(groups.items()):
        ax = fig.add_subplot(grid[0, col])
        ax.axhspan(lo, hi, color="0.8", label=f"{MONITOR} real digits: {lo:.1f} to {hi:.1f}")
        rows = []
        for e, runs in exps.items():
            x, V = seed_matrix([(np.arange(r.energies.size), r.energies) for r in runs])
            seed_band(ax, x, V, color=COLORS[e.split(" (")[0]], lw=1.3,
                      label=f"{e}: {np.median(V[:, -1]):.0f} ({V[:, -1].min():.0f} to {V[:, -1].max():.0f})")
            run = next(r for r in runs if int(r.attrs["seed"]) == 0)
            imgs = GENERATOR.sample(run.p_final, Z_EVAL[:8]).reshape(8, 8, 8)
            rows.append(np.hstack([np.pad(im, 1, constant_values=-1.0) for im in imgs]))
        ax.set_yscale("log")
        ax.set_xlabel("outer iteration", fontsize=9)
        ax.set_ylabel("digits FID (256 samples)")
        ax.set_title(g, fontsize=10)
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
                  title="FID at the last iteration: median (min to max)", title_fontsize=7)
        ax = fig.add_subplot(grid[1, col])
        ax.imshow(np.vstack(rows), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_yticks([10 * k + 5 for k in range(len(rows))], [e.split(" (")[0] for e in exps], fontsize=8)
        ax.set_xticks([])
        ax.set_title(f"final samples, seed 0 ({g})", fontsize=8.5)
    fig.suptitle("GAN on 8x8 digits, Adam with and without the Wasserstein proximal steps of "
                 "Algorithm 1 (Lin et al. 2021)\ndigits FID per outer iteration (one discriminator "
                 "update and l generator updates), median over the seeds, band min to max; grey: "
                 f"{MONITOR} real digits", fontsize=10)
    fig.savefig(png, dpi=72)
    plt.close(fig)
    return png


case = build()


# summary (python cases/lin2021_digits.py RUNFILE) -------------------------------------------
THRESHOLD = 50.0


def summarise(path):
    """Print, per group and method, the numbers the README quotes."""
    from densflow.app.parametric_case import read_monitors
    from densflow.parametric.data import seed_statistics
    from densflow.app.parametric_figures import runs_by_group
    from densflow.io.recorder import read_run_file

    X, y, train, test, clf, fid, _ = digits()
    lo, hi = real_floor()
    print(f"classifier test accuracy {clf.accuracy(X[test], y[test]):.4f}; FID of {MONITOR} real digits "
          f"(5 draws) {lo:.2f}-{hi:.2f}")
    monitors = read_monitors(path)
    fmt = lambda s: f"{s[0]:.3g} ({s[1]:.3g}-{s[2]:.3g})"  # noqa: E731
    for g, exps in runs_by_group(read_run_file(path)).items():
        print(f"\n{g}")
        E = {e: np.array([r.energies for r in runs]) for e, runs in exps.items()}
        n = E["Adam"].shape[1] - 1
        tail = {e: np.median(v[:, -max(1, n // 10):], axis=1) for e, v in E.items()}
        for e, runs in exps.items():
            v, ell = E[e], generator_steps(e)
            best = v.min(axis=1)
            hit = [int(np.argmax(row <= THRESHOLD)) if np.any(row <= THRESHOLD) else np.nan for row in v]
            same = n // ell                      # the iteration with Adam's number of generator steps
            mmd = [monitors[r.name][1]["mmd2"][-1] for r in runs]
            print(f"  {e:24s} final FID (median of the last 10 %) {fmt(seed_statistics(tail[e]))}; "
                  f"below Adam's in {int(np.sum(tail[e] < tail['Adam']))}/{len(runs)} seeds; "
                  f"best {fmt(seed_statistics(best))}; final/best {fmt(seed_statistics(tail[e] / best))}; "
                  f"FID at {same * ell} generator updates (iteration {same}) "
                  f"{fmt(seed_statistics(v[:, same]))}, "
                  f"below Adam's final in {int(np.sum(v[:, same] < v[:, n]))}/{len(runs)}; "
                  f"iterations to FID <= {THRESHOLD:g} {fmt(seed_statistics(hit))} "
                  f"({int(np.sum(np.isfinite(hit)))}/{len(runs)} reach it); "
                  f"final pixel MMD^2 {fmt(seed_statistics(mmd))}; "
                  f"wall time {fmt(seed_statistics([r.wall_time for r in runs]))} s")


if __name__ == "__main__":
    summarise(sys.argv[1] if len(sys.argv) > 1 else "lin2021_digits.h5")
