"""A small numpy GAN on a ring of 8 Gaussians, with and without Wasserstein proximal
regularisation of the generator (Lin et al. 2021, Algorithm 1; the stability study of
their Fig. 3 at the ordinary and at a 20x larger learning rate).

Methods: Adam alone (one generator step per discriminator step), and Adam with the
RWP, O1-SBE and O2Diag-SBE penalties (h = 0.2, 5 generator steps per discriminator
step, the seed's settings for vanilla GANs). Five seeds each; the unbiased MMD (Gaussian
kernel, bandwidth 0.5) between 500 generated and 500 data samples is recorded against
training wall time (evaluation excluded).

Run: ``python cases/gan2d.py [-o plots/gan2d.png] [--iters N] [--seeds K]``.
"""

import argparse
import os
import time

# tiny matrix products: BLAS threads only spin against each other (measured 12-25x
# slower with two threads on the 2-core machine); set before numpy is imported
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.parametric.gan import Critic, ProximalPenalty, train_gan  # noqa: E402
from densflow.parametric.losses import MMD  # noqa: E402
from densflow.parametric.models import MLP  # noqa: E402

RADIUS, STD, MODES = 2.0, 0.05, 8
METHODS = {"Adam": None, "Adam + RWP": ("rwp", 0.2, 5), "Adam + O1-SBE": ("o1sbe", 0.2, 5),
           "Adam + O2Diag-SBE": ("o2diagsbe", 0.2, 5)}
LEARNING_RATES = {"ordinary lr 1e-3": 1e-3, "20x lr 2e-2": 2e-2}


def ring(rng, B):
    """B samples of the ring of MODES Gaussians of radius RADIUS and std STD."""
    angle = 2 * np.pi * rng.integers(MODES, size=B) / MODES
    return RADIUS * np.stack([np.cos(angle), np.sin(angle)], axis=1) + STD * rng.standard_normal((B, 2))


def run(method, lr, seed, iters):
    rng = np.random.default_rng(seed)
    gen, critic = MLP(2, [64, 64], 2, "tanh"), Critic(2, [64, 64], "tanh")
    mmd = MMD(ring(np.random.default_rng(1000 + seed), 500), bandwidth=0.5)
    z_eval = np.random.default_rng(2000 + seed).standard_normal((500, 2))
    spec = METHODS[method]
    penalty = ProximalPenalty(*spec) if spec else None
    theta, _, hist = train_gan(gen, gen.init(rng), critic, critic.init(rng), ring, rng, n_iter=iters,
                               batch=128, lr=lr, penalty=penalty, eval_every=max(iters // 40, 1),
                               evaluate=lambda th: mmd.value_and_grad_samples(gen.sample(th, z_eval))[0])
    return hist, gen.sample(theta, z_eval)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="gan2d.png")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = {}
    for lr_name, lr in LEARNING_RATES.items():
        for method in METHODS:
            runs = [run(method, lr, seed, args.iters) for seed in range(args.seeds)]
            results[(lr_name, method)] = runs
            final = [h["value"][-1] for h, _ in runs]
            print(f"{lr_name:18s} {method:18s} final MMD^2 median {np.median(final):.2e} "
                  f"[{min(final):.2e}, {max(final):.2e}], training {np.median([h['time'][-1] for h, _ in runs]):.1f} s",
                  flush=True)
    figure(results, args.output)
    print(f"wrote {args.output} in {time.perf_counter() - t0:.0f} s")


def figure(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, methods = list(LEARNING_RATES), list(METHODS)
    fig = plt.figure(figsize=(13, 7.5), constrained_layout=True)
    grid = fig.add_gridspec(3, 4)
    colors = dict(zip(methods, ["k", "tab:blue", "tab:orange", "tab:green"]))
    for col, lr_name in enumerate(lrs):
        ax = fig.add_subplot(grid[0, 2 * col: 2 * col + 2])
        for method in methods:
            runs = results[(lr_name, method)]
            t = np.median([h["time"] for h, _ in runs], axis=0)
            v = np.array([np.maximum(h["value"], 1e-6) for h, _ in runs])
            ax.plot(t, np.median(v, axis=0), color=colors[method], label=method)
            ax.fill_between(t, v.min(axis=0), v.max(axis=0), color=colors[method], alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("training wall time [s]")
        ax.set_ylabel("MMD² to data (median, min–max)")
        ax.set_title(lr_name)
        ax.legend(fontsize=8)
        ax.grid(True, which="both", lw=0.3)
        for k, method in enumerate(methods):
            ax = fig.add_subplot(grid[1 + k // 2, 2 * col + k % 2])
            data = ring(np.random.default_rng(0), 500)
            ax.scatter(data[:, 0], data[:, 1], s=2, c="0.75")
            x = results[(lr_name, method)][0][1]
            ax.scatter(x[:, 0], x[:, 1], s=2, c=colors[method])
            ax.set_xlim(-3, 3)
            ax.set_ylim(-3, 3)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{method}, {lr_name.split()[0]} lr, seed 0", fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
