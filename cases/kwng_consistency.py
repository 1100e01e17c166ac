"""Consistency of the kernelized Wasserstein natural gradient (Arbel et al. 2020, the
slides' synthetic study): relative error of KWNG against the exact natural gradient.

Model :math:`x = m + \\operatorname{diag}(\\delta)^{1/2} z`, :math:`\\theta = [m, \\delta]`,
loss :math:`W_2^2` to :math:`N(0, I)` with its exact gradient; the exact natural gradient
is :math:`\\operatorname{diag}(1, 4\\delta)\\nabla L` (Wasserstein information matrix
:math:`\\operatorname{diag}(1, 1/(4\\delta))`). Three estimators, eps = 1e-5 and
M = ceil(d sqrt(N)) basis points each: ``KWNG``, the authors' estimator (their bandwidth
rule and diagonal damping), and densflow's ``KWNGVariant`` (median bandwidth, no
diagonal) with ridge 1e-6 and ridgeless, for N = 10 ... 4000, d = 1 ... 4, 10
repetitions (new samples and basis each); one random
θ per d (m uniform in [-1, 1], δ uniform in [0.5, 2], seed 0). The rate is the slope of
log(median error) against log N fitted over N >= 100.

Run: ``python cases/kwng_consistency.py [-o plots/kwng_consistency.png] [--reps 10]``.
"""

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.parametric._kwng import VarianceGaussian  # noqa: E402
from densflow.parametric.metrics import KWNG, KWNGVariant  # noqa: E402

NS = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)
DIMS = (1, 2, 3, 4)
FORMS = {"KWNG (the authors' estimator)": lambda: KWNG(eps=1e-5, seed=1),
         "KWNGVariant, ridge 1e-6": lambda: KWNGVariant(eps=1e-5, ridge=1e-6, seed=1),
         "KWNGVariant, ridgeless": lambda: KWNGVariant(eps=1e-5, seed=1)}


def errors(d, form, reps):
    model = VarianceGaussian(d)
    rng = np.random.default_rng(0)
    theta = np.concatenate([rng.uniform(-1, 1, d), rng.uniform(0.5, 2, d)])
    _, g = model.w2_value_and_grad(theta, np.zeros(d), np.ones(d))
    exact = np.linalg.solve(model.wasserstein_information(theta), g)
    est = form()
    out = np.empty((len(NS), reps))
    for i, N in enumerate(NS):
        for r in range(reps):
            z = np.random.default_rng(1000 * r + N).standard_normal((N, d))
            out[i, r] = np.linalg.norm(est.direction(model, theta, g, z) - exact) / np.linalg.norm(exact)
    return out, est.n_fallback, est.n_calls


def rate(errs):
    Ns = np.array(NS, float)
    sel = Ns >= 100
    return np.polyfit(np.log(Ns[sel]), np.log(np.median(errs, axis=1)[sel]), 1)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="kwng_consistency.png")
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    fig, axes = plt.subplots(1, len(FORMS), figsize=(15, 4.2), sharey=True)
    for ax, (label, form) in zip(axes, FORMS.items()):
        for d in DIMS:
            e, nfb, ncalls = errors(d, form, args.reps)
            med = np.median(e, axis=1)
            s = rate(e)
            print(f"{label:30s} d={d}  median rel. error " + "  ".join(f"N={N}:{m:.3g}" for N, m in zip(NS, med))
                  + f"  | mean at N=4000 {e[-1].mean():.3g}  rate {s:.2f}  fallbacks {nfb}/{ncalls}")
            line, = ax.loglog(NS, med, "o-", label=f"d = {d} (rate {s:.2f})")
            ax.fill_between(NS, np.quantile(e, 0.25, axis=1), np.quantile(e, 0.75, axis=1),
                            color=line.get_color(), alpha=0.15)
        Ns = np.array(NS, float)
        ax.loglog(Ns, 0.5 * (Ns / 100) ** -0.25, "k:", lw=1, label=r"$N^{-1/4}$ (slides)")
        ax.set_title(label)
        ax.set_xlabel("N (samples)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("relative error to the exact natural gradient")
    fig.suptitle(f"KWNG consistency: median and quartiles of {args.reps} repetitions, "
                 r"$M = \lceil d\sqrt{N}\,\rceil$, $\varepsilon = 10^{-5}$", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
