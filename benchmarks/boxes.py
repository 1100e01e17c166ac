"""The no-flux box against the torus: iteration counts over grid sizes (mesh independence)
and the time per iteration of every metric.

Usage::

    python benchmarks/boxes.py                 # both tables
    python benchmarks/boxes.py --counts        # mesh independence only
    python benchmarks/boxes.py --cost          # time per iteration only
    python benchmarks/boxes.py --quick         # smaller sizes
    python benchmarks/boxes.py --flows         # time per flow step (densflow.flow)
    python benchmarks/boxes.py --profile 256   # where a combined iteration's time goes
    python benchmarks/boxes.py --profile 131072 --dim 1   # the same in 1D
    python benchmarks/boxes.py --cost --metrics combined   # some metrics only
    python benchmarks/boxes.py --cost --metrics combined --dim 1   # 1D sizes only

Counts: the paper's energy with all three terms (1D weights (1, 1e-3, 1e-4), 2D
(1, 3e-4, 1e-4)), μ ∝ exp(-V) with the paper's V, uniform start, ``tol = 1e-12``; the
combined metric's first-order method (the paper's plain Armijo, ``safeguard=None``) and
the default Newton method, on both boundaries at 1D n = 64 … 1024 and 2D 32² … 512².

Cost: the median time of one first-order iteration (direction, line search, gradient)
from a smooth start away from μ, per metric, on the torus and on the box of the same
size, measured in one process on one thread, the two boundaries interleaved, the
minimum over ``--repeats`` rounds. The median iteration and the cheapest one are both
shown: on a shared machine a preempted iteration takes 10-50 times as long, and such
iterations move the medians; the cheapest iteration (one line-search trial) is the
cost of the arithmetic.
"""

import argparse
import cProfile
import io
import os
import pstats

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import densflow as df  # noqa: E402
from _tables import print_rst_table  # noqa: E402  (benchmarks/ is on sys.path)

METRICS = ["combined", "wasserstein", "fisher_rao", "mahalanobis"]
BOUNDARIES = ["periodic", "neumann"]


def problem(dim, n, boundary):
    grid = df.Grid(n, dim, boundary=boundary)
    if dim == 1:
        mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
        a = (1.0, 1e-3, 1e-4)
    else:
        mu = grid.gibbs(lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2))
        a = (1.0, 3e-4, 1e-4)
    E = (a[0] * df.energies.HMinus1(grid, mu) + a[1] * df.energies.KL(grid, mu)
         + a[2] * df.energies.Dirichlet(grid, mu))
    x = grid.coordinates()
    bump = 1 + 0.5 * (np.cos(2 * np.pi * x) if dim == 1 else np.cos(2 * np.pi * x[0]) * np.cos(2 * np.pi * x[1]))
    return grid, E, bump / bump.sum()


def counts(sizes):
    rows = []
    for dim, n in sizes:
        row = [f"{n}" if dim == 1 else f"{n}^2"]
        for boundary in BOUNDARIES:
            grid, E, _ = problem(dim, n, boundary)
            first = df.solve(E, grid.uniform(), metric="combined", method="gradient",
                             safeguard=None, tol=1e-12, max_iter=1000)
            newton = df.solve(E, grid.uniform(), metric="combined", tol=1e-12, max_iter=100)
            row += [f"{first.n_iter}{'' if first.converged else '*'}",
                    f"{newton.n_iter}{'' if newton.converged else '*'}"]
        rows.append(row)
        print("  ".join(row), flush=True)
    print_rst_table(["size", "torus first-order", "torus Newton", "box first-order", "box Newton"], rows)


def cost(sizes, repeats, iters, metrics=METRICS):
    rows = []
    for dim, n in sizes:
        best = {}
        for metric in metrics:
            setups = {b: problem(dim, n, b) for b in BOUNDARIES}
            for b, (_, E, p0) in setups.items():  # warm-up: kernels, bases, solvers
                df.solve(E, p0, metric=metric, method="gradient", max_iter=2)
            for _ in range(repeats):
                for b, (_, E, p0) in setups.items():
                    res = df.solve(E, p0, metric=metric, method="gradient", max_iter=iters)
                    for key, t in (("median", np.median(res.times)), ("min", np.min(res.times))):
                        best[b, metric, key] = min(best.get((b, metric, key), np.inf), float(t))
        for metric in metrics:
            row = [f"{n}" if dim == 1 else f"{n}^2", metric]
            for key in ("median", "min"):
                tp, tb = best["periodic", metric, key], best["neumann", metric, key]
                row += [f"{1e3 * tp:.3f}", f"{1e3 * tb:.3f}", f"{tb / tp:.2f}"]
            rows.append(row)
            print("  ".join(rows[-1]), flush=True)
    print_rst_table(["size", "metric", "torus ms/it", "box ms/it", "box/torus",
                     "torus min", "box min", "min ratio"], rows)


def profile(n, iters=15, metric="combined", top=12, dim=2):
    """cProfile of ``iters`` first-order iterations at ``n^dim`` on each boundary (after a
    warm-up run): the total, the median iteration and the functions by own time."""
    for b in BOUNDARIES:
        _, E, p0 = problem(dim, n, b)
        df.solve(E, p0, metric=metric, method="gradient", max_iter=2)
        prof = cProfile.Profile()
        prof.enable()
        res = df.solve(E, p0, metric=metric, method="gradient", max_iter=iters)
        prof.disable()
        print(f"== {b} {n}^{dim} {metric}: {res.n_iter} iterations, {1e3 * sum(res.times):.0f} ms, "
              f"median {1e3 * np.median(res.times):.2f} ms/it")
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
        text = out.getvalue()
        print(text[text.index("ncalls"):].rstrip(), flush=True)


def flow_cost(sizes, repeats):
    """Time per accepted step of ``df.flow`` (Fokker–Planck, BDF2, fixed steps) on the
    torus and the box of the same size, per flow metric; the two boundaries interleaved,
    the best of ``repeats`` runs."""
    rows = []
    for dim, n in sizes:
        for metric in ("wasserstein", "fisher_rao", "mahalanobis"):
            setups = {}
            for b in BOUNDARIES:
                grid = df.Grid(n, dim, boundary=b)
                V = (lambda x: np.sin(4 * np.pi * x)) if dim == 1 else (
                    lambda a, c: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * c))
                E = df.energies.KL(grid, grid.gibbs(V))
                x = grid.coordinates()
                bump = 1 + 0.5 * (np.cos(2 * np.pi * x) if dim == 1
                                  else np.cos(2 * np.pi * x[0]) * np.cos(2 * np.pi * x[1]))
                setups[b] = (E, bump / bump.sum())
                df.flow(E, setups[b][1], 1e-3, metric=metric, dt=1e-3)  # warm-up
            best, newton = {}, {}
            for _ in range(repeats):
                for b, (E, p0) in setups.items():
                    r = df.flow(E, p0, 0.02, metric=metric, dt=1e-3)
                    best[b] = min(best.get(b, np.inf), r.wall_time / r.n_steps)
                    newton[b] = float(np.mean(r.newton_iterations))
            row = [f"{n}" if dim == 1 else f"{n}^2", metric,
                   f"{1e3 * best['periodic']:.2f}", f"{1e3 * best['neumann']:.2f}",
                   f"{best['neumann'] / best['periodic']:.2f}",
                   f"{newton['periodic']:.1f}", f"{newton['neumann']:.1f}"]
            rows.append(row)
            print("  ".join(row), flush=True)
    print_rst_table(["size", "metric", "torus ms/step", "box ms/step", "box/torus",
                     "torus Newton/step", "box Newton/step"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", action="store_true")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--flows", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", type=int, metavar="N", help="profile a combined iteration at N^dim")
    ap.add_argument("--dim", type=int, choices=(1, 2), default=None,
                    help="the profile's dimension (default 2); --cost: only this dimension's sizes")
    ap.add_argument("--metrics", nargs="+", choices=METRICS, default=METRICS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    both = not (args.counts or args.cost or args.flows or args.profile)
    with threadpool_limits(1):
        if args.profile:
            profile(args.profile, dim=args.dim or 2)
        if args.counts or both:
            sizes = ([(1, n) for n in (64, 256)] + [(2, n) for n in (32, 64)] if args.quick else
                     [(1, n) for n in (64, 128, 256, 512, 1024)]
                     + [(2, n) for n in (32, 64, 128, 256, 512)])
            counts(sizes)
        if args.cost or both:
            sizes = ([(1, 1024), (2, 64)] if args.quick else
                     [(1, 1024), (1, 2**14), (1, 2**17), (2, 64), (2, 128), (2, 256), (2, 512)])
            cost([(d, n) for d, n in sizes if args.dim in (None, d)], args.repeats, args.iters,
                 args.metrics)
        if args.flows:
            sizes = [(1, 1024), (2, 64)] if args.quick else [(1, 1024), (1, 2**14), (2, 64), (2, 256)]
            flow_cost(sizes, args.repeats)


if __name__ == "__main__":
    main()
