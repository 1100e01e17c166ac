"""Distribution matching of a 2D target by an MLP generator with the Sinkhorn loss:
SiNG (Shen et al. 2020) against Adam, RWP and KWNG natural-gradient steps, loss
against wall time.

Target: 512 fixed samples of the "banana" :math:`(u_1, u_2/2 + u_1^2/2 - 1)`,
:math:`u \\sim N(0, I)`. Generator: MLP 2 -> [16, 16] -> 2, tanh, from the same random
initialisation for every method of a seed. Loss: debiased Sinkhorn divergence,
eps = 0.5 (Sinkhorn tolerance 1e-6), between a fresh latent batch of N = 128 generated points and the target.
Methods (one step per iteration):

* Adam, lr 1e-2;
* RWP: :math:`\\theta \\leftarrow \\theta - \\eta\\,(E[J^\\top J] + 10^{-3}I)^{-1}\\nabla L`, eta = 0.5;
* KWNG (ridgeless, eps 0.1 -- with 1e-3 the components of the gradient outside the
  span of the M features are amplified 1000x and the generator diverges --, M = ceil(2 sqrt(N))): :math:`\\theta \\leftarrow \\theta - \\eta\\,\\widehat{\\nabla^W L}`, eta = 0.5;
* SiNG: the step of eq. (11) on the Sinkhorn ball of radius r = 2e-3 (eSIM at the
  batch, implicit differentiation, CG with damping 1e-3).

A run whose training Sinkhorn loss (cap 3000 iterations) or CG fails is stopped there (a
diverged generator). Each run trains for a fixed budget of wall time (default 3 s); every 0.2 s of training
the loss is measured on a fixed evaluation batch of 256 latent points (not timed; cap
3000 Sinkhorn iterations, a failed evaluation is a gap in the curve).
Five seeds; median and range over seeds.

Run: ``python cases/sing_matching.py [-o plots/sing_matching.png] [--seconds 3] [--seeds 5]``.
"""

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from densflow.parametric.gan import Adam  # noqa: E402
from densflow.parametric.losses import Sinkhorn  # noqa: E402
from densflow.parametric.metrics import KWNG, RWP, SiNG  # noqa: E402
from densflow.parametric.models import MLP  # noqa: E402

EPS, BATCH = 0.5, 128


def banana(rng, n):
    u = rng.standard_normal((n, 2))
    return np.stack([u[:, 0], 0.5 * u[:, 1] + 0.5 * u[:, 0] ** 2 - 1], axis=1)


def make_method(name, seed):
    if name == "Adam":
        adam = Adam(1e-2, beta1=0.9)
        return lambda model, theta, g, z: adam.step(theta, g)
    if name == "RWP":
        rwp = RWP(damping=1e-3, rtol=1e-6)
        return lambda model, theta, g, z: theta - 0.5 * rwp.direction(model, theta, g, z)
    if name == "KWNG":
        kw = KWNG(eps=0.1, seed=seed)
        make_method.kwng = kw
        return lambda model, theta, g, z: theta - 0.5 * kw.direction(model, theta, g, z)
    sing = SiNG(eps=EPS, damping=1e-3, rtol=1e-4, tol=1e-8)
    return lambda model, theta, g, z: theta + sing.step(model, theta, g, z, radius=2e-3)


METHODS = ("Adam", "RWP", "KWNG", "SiNG")


def run(name, seed, seconds):
    rng = np.random.default_rng(seed)
    target = banana(np.random.default_rng(12345), 512)
    loss = Sinkhorn(target, eps=EPS, tol=1e-6, n_iter=3000)
    eval_loss = Sinkhorn(target, eps=EPS, tol=1e-6, n_iter=3000)
    model = MLP(2, [16, 16], 2)
    theta = model.init(np.random.default_rng(1000 + seed))
    z_eval = np.random.default_rng(999).standard_normal((256, 2))
    method = make_method(name, seed)
    times, values = [0.0], [eval_loss.value(model, theta, z_eval)]
    t_train, it = 0.0, 0
    next_eval = 0.2
    while t_train < seconds:
        t0 = time.perf_counter()
        z = rng.standard_normal((BATCH, 2))
        try:
            _, g = loss.value_and_grad(model, theta, z)
            theta = method(model, theta, g, z)
        except Exception as exc:   # a diverged generator: Sinkhorn or CG fails
            print(f"  {name} seed {seed} stopped at iteration {it}: {type(exc).__name__}")
            break
        t_train += time.perf_counter() - t0
        it += 1
        if t_train >= next_eval or t_train >= seconds:
            times.append(t_train)
            try:
                values.append(eval_loss.value(model, theta, z_eval))
            except Exception:   # evaluation only: record a gap, keep training
                values.append(np.nan)
            next_eval += 0.2
    return np.array(times), np.array(values), it, theta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="sing_matching.png")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    grid = np.linspace(0, args.seconds, 61)
    last = {}
    for name in METHODS:
        curves, finals, iters = [], [], []
        for seed in range(args.seeds):
            t, v, it, theta = run(name, seed, args.seconds)
            curves.append(np.interp(grid, t, v))
            t, v = t[np.isfinite(v)], v[np.isfinite(v)]
            finals.append(v[-1])
            curves[-1] = np.where(grid <= t[-1], np.interp(grid, t, v), np.nan)
            iters.append(it)
            extra = ""
            if name == "KWNG":
                kw = make_method.kwng
                extra = f"  fallbacks {kw.n_fallback}/{kw.n_calls}"
            print(f"{name:5s} seed {seed}: {it:5d} iterations ({1e3 * args.seconds / it:.2f} ms/it), "
                  f"final loss {v[-1]:.4g}{extra}", flush=True)
            if seed == 0:
                last[name] = theta
        c = np.array(curves)
        line, = ax.semilogy(grid, np.nanmedian(c, 0), label=f"{name} (median final {np.median(finals):.2e})")
        ax.fill_between(grid, np.nanmin(c, 0), np.nanmax(c, 0), color=line.get_color(), alpha=0.15)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"Sinkhorn divergence (eps = {EPS}), 256 points")
    ax.set_title(f"median and range over {args.seeds} seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    target = banana(np.random.default_rng(12345), 512)
    ax2.scatter(*target.T, s=4, c="k", alpha=0.4, label="target")
    model = MLP(2, [16, 16], 2)
    z = np.random.default_rng(999).standard_normal((512, 2))
    for name in ("Adam", "SiNG"):
        ax2.scatter(*model.sample(last[name], z).T, s=4, alpha=0.5, label=f"{name}, seed 0")
    ax2.set_title(f"samples after {args.seconds:g} s")
    ax2.legend(fontsize=8, markerscale=3)
    ax2.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
