"""Iterations of the combined metric's first-order method (``method="gradient"``, or
``--method newton``) from rough and nearly vanishing initial densities.

Usage: python benchmarks/robustness_table.py [--seeds K] [--max-iter M] [--method newton]

Rows: the weight sets of the paper's figures (1D n = 512, 2D 64 x 64). Columns: the
largest iteration count over K seeds of rough data (i.i.d. cell values uniform in
[0.5, 1.5], normalised) and the count from a nearly vanishing density (a Gaussian bump
with a floor of 1e-6 of its maximum over a third of the domain), with the default
safeguard and with the paper's plain Armijo (``safeguard=None``). ``*`` marks a run
that did not reach E <= 1e-12 within M iterations (its final energy in brackets).
"""

import argparse
import os
import sys

import densflow as df
import densflow.gridproblem
from _tables import print_rst_table  # benchmarks/ is on sys.path when run as a script

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_robustness import N, WEIGHTS, make_energy, nearly_vanishing, rough, setup  # noqa: E402


def cell(results):
    worst = max(results, key=lambda r: (not r.converged, r.n_iter))
    return f"{worst.n_iter}" if worst.converged else f"{worst.n_iter}* ({worst.energies[-1]:.0e})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=200)
    ap.add_argument("--method", choices=densflow.gridproblem.METHODS, default="gradient",
                    help="gradient: the paper's first-order steps (default); newton")
    args = ap.parse_args()
    header = ["grid", "weights", f"rough, {args.seeds} seeds", "vanishing", "rough (plain)", "vanishing (plain)"]
    rows = []
    for dim in (1, 2):
        grid, mu = setup(dim)
        for w in WEIGHTS[dim]:
            E = make_energy(grid, mu, w)
            row = [f"{dim}D n={N[dim]}", f"({w[0]:g}, {w[1]:g}, {w[2]:g})"]
            for safeguard in (0.1, None):
                solve = lambda p0: df.solve(E, p0, metric="combined", max_iter=args.max_iter,  # noqa: E731
                                            safeguard=safeguard, method=args.method)
                row.append(cell([solve(rough(grid, s)) for s in range(args.seeds)]))
                row.append(cell([solve(nearly_vanishing(grid))]))
            rows.append(row[:2] + [row[2], row[3], row[4], row[5]])
            print("#", " | ".join(rows[-1]), file=sys.stderr, flush=True)
    print_rst_table(header, rows)


if __name__ == "__main__":
    main()
