"""Iterations from Gaussian bumps floored down to the smallest positive double.

Usage: python benchmarks/floors_table.py [--method newton|gradient] [--max-iter M]

A bump (σ = 0.01) is normalised, floored at ``floor`` and normalised again, so that most
cells are nearly empty (as ``tests/test_vanishing_floors.py``). Rows: the paper's weight
sets at 1D n = 512 and 2D 64 x 64; columns: the floor. Each cell is the iteration count
to E <= 1e-12 with the default safeguard; ``*``: not converged within M iterations.
"""

import argparse

import numpy as np

import densflow as df
import densflow.gridproblem
from _tables import print_rst_table  # benchmarks/ is on sys.path when run as a script

WEIGHTS = {1: [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)],
           2: [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]}
FLOORS = [1e-20, 1e-100, 1e-300, float(np.nextafter(0.0, 1.0))]


def floored_bump(grid, floor, sigma=0.01):
    x = grid.coordinates()
    r2 = (x - 0.5) ** 2 if grid.dim == 1 else (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2
    p = np.exp(-r2 / (2 * sigma**2))
    p = np.maximum(p / p.sum(), floor)
    return p / p.sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=densflow.gridproblem.METHODS, default="newton")
    ap.add_argument("--max-iter", type=int, default=5000)
    args = ap.parse_args()
    rows = []
    for dim, n in ((1, 512), (2, 64)):
        grid = df.Grid(n, dim)
        mu = grid.gibbs((lambda x: np.sin(4 * np.pi * x)) if dim == 1 else
                        (lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2)))
        for a1, a2, a3 in WEIGHTS[dim]:
            E = (a1 * df.energies.HMinus1(grid, mu) + a2 * df.energies.KL(grid, mu)
                 + a3 * df.energies.Dirichlet(grid, mu))
            cells = []
            for floor in FLOORS:
                with np.errstate(all="ignore"):
                    res = df.solve(E, floored_bump(grid, floor), method=args.method,
                                   max_iter=args.max_iter)
                cells.append(f"{res.n_iter}" if res.converged else f"{res.n_iter}*")
            rows.append([f"{dim}D n={n}", f"({a1:g}, {a2:g}, {a3:g})"] + cells)
    print_rst_table(["grid", "weights"] + [f"floor {f:.0e}" for f in FLOORS], rows)


if __name__ == "__main__":
    main()
