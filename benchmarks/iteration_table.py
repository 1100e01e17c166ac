"""Iterations to E <= 1e-12 for every metric on the paper's panels (README tables).

Usage: python benchmarks/iteration_table.py [--dim 1|2] [--n N] [--max-iter K]

Prints an reStructuredText table: one row per weight set, one column per metric; a
count followed by ``*`` means the run stopped at ``max_iter`` without reaching the
tolerance (the final energy is shown in brackets). Like the case files, it runs the
paper's plain Armijo (``safeguard=None``) with its first-order steps
(``method="gradient"``).
"""

import argparse
import time

import numpy as np

import densflow as df
from _tables import print_rst_table  # benchmarks/ is on sys.path when run as a script

PANELS = {1: [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)],
          2: [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]}
METRICS = ["combined", "wasserstein", "fisher_rao", "mahalanobis"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--max-iter", type=int, default=1000)
    args = ap.parse_args()
    grid = df.Grid(args.n, args.dim)
    if args.dim == 1:
        mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    else:
        mu = grid.gibbs(lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2))
    rows = []
    for a1, a2, a3 in PANELS[args.dim]:
        E = (a1 * df.energies.HMinus1(grid, mu) + a2 * df.energies.KL(grid, mu)
             + a3 * df.energies.Dirichlet(grid, mu))
        cells = []
        for metric in METRICS:
            t0 = time.perf_counter()
            res = df.solve(E, grid.uniform(), metric=metric, tol=1e-12, max_iter=args.max_iter,
                           safeguard=None, method="gradient")
            took = time.perf_counter() - t0
            cell = f"{res.n_iter}" if res.converged else f"{res.n_iter}* ({res.energies[-1]:.0e})"
            cells.append(cell)
            print(f"# ({a1:g}, {a2:g}, {a3:g}) {metric}: {cell} in {took:.2f} s", flush=True)
        rows.append([f"({a1:g}, {a2:g}, {a3:g})"] + cells)
    header = ["weights (α1, α2, α3)"] + METRICS
    print_rst_table(header, rows)


if __name__ == "__main__":
    main()
