"""MonoFlow particles (Yi, Zhu & Liu 2023; ``seeds/yi2023-divergence-minimization-slides.txt``).

1000 particles from q = N((1, 1), I) move towards 1000 samples of the target
p = N(0, [[1, .8], [.8, .89]]) by forward Euler, x <- x + eps h'(d(x)) grad d(x), with
the log ratio d = log p/q refitted every 5 steps by logistic regression on 200 random
Fourier features and a linear part (median bandwidth). Step 0.05, 300 steps, one run per
h: the seed's generator losses (logit, non-saturated, vanilla with shift C = 0 and 3,
arcsinh, MLE/exp) and the f-divergence flow of Jensen-Shannon. The exponential member
is run with d clipped to [-2, 2] inside h' (with the default 5 it diverges at this step).

The figure: particle snapshots of the logit flow, and the KL divergence between the
Gaussian fitted to the particles and the target, against the step, for each h.

Run: ``python cases/monoflow.py [-o plots/monoflow.png]``.
"""

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.parametric.monoflow import ProbabilityFlow  # noqa: E402
from densflow.parametric.vi import kl_gaussian  # noqa: E402

C_TARGET = np.array([[1.0, 0.8], [0.8, 0.89]])
STEP, N_STEPS, EVERY = 0.05, 300, 10
RUNS = {"logit": dict(h="logit"), "non-saturated": dict(h="nonsaturated"),
        "vanilla, C = 0": dict(h="vanilla", shift=0.0), "vanilla, C = 3": dict(h="vanilla", shift=3.0),
        "arcsinh": dict(h="arcsinh"), "MLE / exp (clip 2)": dict(h="exp", clip=2.0),
        "Jensen-Shannon flow": dict(h="js")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="monoflow.png")
    args = ap.parse_args()
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    target = rng.multivariate_normal([0.0, 0.0], C_TARGET, 1000)
    q0 = rng.standard_normal((1000, 2)) + 1.0
    results = {}
    for name, kw in RUNS.items():
        flow = ProbabilityFlow(target, step=STEP, refit_every=5, rng=1, **kw)
        x, snaps = flow.run(q0, N_STEPS, snapshot_every=EVERY)
        kl = [kl_gaussian(s.mean(0), np.cov(s.T), [0, 0], C_TARGET) for _, s in snaps]
        results[name] = (snaps, np.array(kl))
        print(f"{name:22s} KL {kl[0]:.3f} -> {kl[-1]:.2e}; |mean| err "
              f"{np.abs(x.mean(0)).max():.3f}, cov err {np.abs(np.cov(x.T) - C_TARGET).max():.3f}")
    print(f"time {time.perf_counter() - start:.1f} s")
    plot(results, target, args.output)


def plot(results, target, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(13, 6.5))
    snaps = dict(results["logit"][0])
    shown = [0, 10, 40, 300]
    for i, k in enumerate(shown):
        ax = fig.add_subplot(2, 4, i + 1)
        ax.scatter(*target.T, s=2, c="0.7", label="target samples")
        ax.scatter(*snaps[k].T, s=2, c="tab:blue", label="particles")
        ax.set_xlim(-4, 5)
        ax.set_ylim(-4, 5)
        ax.set_aspect("equal")
        ax.set_title(f"logit flow, step {k}", fontsize=9)
        if i == 0:
            ax.legend(loc="upper left", fontsize=7, markerscale=4)
    ax = fig.add_subplot(2, 1, 2)
    for name, (sn, kl) in results.items():
        ax.semilogy([k for k, _ in sn], np.maximum(kl, 1e-4), label=name)
    ax.set_xlabel("Euler step (step size 0.05)")
    ax.set_ylabel("KL(Gaussian fit of particles || target)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.suptitle("MonoFlow particles: q = N((1, 1), I) to p = N(0, [[1, .8], [.8, .89]]), "
                 "ratio by logistic regression refitted every 5 steps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
