"""Errors and observed orders of densflow.flow per problem (the table of docs/flows.rst).

Closed forms: heat flow on the torus (1D, n = 1024, against the continuum solution),
Fisher–Rao flow of KL and Mahalanobis flow of Dirichlet (exact per cell), in time for
both schemes; in space: 2D heat flow against the continuum solution and 1D
Fokker–Planck against a pseudo-spectral method-of-lines reference (as in
tests/test_flows.py), with BDF2 steps fine enough that the time error is negligible.

Usage::

    python benchmarks/flow_orders.py
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import densflow as df  # noqa: E402
from densflow.energies import KL, Dirichlet  # noqa: E402
from test_flows import heat_exact, heat_start, spectral_fokker_planck  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tables import print_rst_table  # noqa: E402


def l1(a, b):
    return float(np.abs(a - b).sum())


def row(label, knobs, errs):
    e = np.array(errs)
    o = np.log2(e[:-1] / e[1:])
    return [label, ", ".join(knobs), ", ".join(f"{v:.2e}" for v in e), ", ".join(f"{v:.2f}" for v in o)]


def main():
    rows = []
    grid = df.Grid(1024, 1)
    T = 0.02
    for scheme in ("bdf2", "euler"):
        errs = [l1(df.flow(KL(grid, grid.uniform()), heat_start(grid), T, dt=T / m, scheme=scheme).p,
                   heat_exact(grid, T)) for m in (5, 10, 20, 40)]
        rows.append(row(f"heat 1D n=1024, {scheme}, time", ["T/5", "T/10", "T/20", "T/40"], errs))
    grid = df.Grid(32, 1)
    x = grid.coordinates()
    mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    p0 = np.exp(np.cos(2 * np.pi * x))
    p0 /= p0.sum()
    T = 0.5
    lp = np.exp(-T) * np.log(p0) + (1 - np.exp(-T)) * np.log(mu)
    exact = np.exp(lp) / np.exp(lp).sum()
    for scheme in ("bdf2", "euler"):
        errs = [l1(df.flow(KL(grid, mu), p0, T, metric="fisher_rao", dt=T / m, scheme=scheme).p, exact)
                for m in (10, 20, 40, 80)]
        rows.append(row(f"Fisher-Rao of KL, {scheme}, time", ["T/10", "T/20", "T/40", "T/80"], errs))
    grid = df.Grid(16, 2)
    mu = grid.gibbs(lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))
    p0 = np.random.default_rng(3).uniform(0.5, 1.5, grid.shape)
    p0 /= p0.sum()
    exact = mu + np.exp(-T) * (p0 - mu)
    for scheme in ("bdf2", "euler"):
        errs = [l1(df.flow(Dirichlet(grid, mu), p0, T, metric="mahalanobis", dt=T / m, scheme=scheme).p,
                   exact) for m in (10, 20, 40, 80)]
        rows.append(row(f"Mahalanobis of Dirichlet 2D, {scheme}, time", ["T/10", "T/20", "T/40", "T/80"], errs))
    T, errs = 0.01, []
    for n in (8, 16, 32, 64):
        g = df.Grid(n, 2)
        errs.append(l1(df.flow(KL(g, g.uniform()), heat_start(g), T, dt=T / 100).p, heat_exact(g, T)))
    rows.append(row("heat 2D, bdf2 dt=T/100, space", ["8", "16", "32", "64"], errs))
    V = lambda x: 1.5 * np.sin(2 * np.pi * x)  # noqa: E731
    rho0 = lambda x: np.exp(np.cos(2 * np.pi * (x - 0.3))) / 1.2660658777520082  # noqa: E731
    T, nr = 0.05, 128
    xr = np.arange(nr) / nr
    ref = spectral_fokker_planck(nr, V, 3 * np.pi * np.cos(2 * np.pi * xr), rho0(xr), T)
    errs = []
    for n in (8, 16, 32, 64):
        g = df.Grid(n, 1)
        x = g.coordinates()
        r = df.flow(KL(g, g.gibbs(V)), rho0(x) / rho0(x).sum(), T, rtol=1e-9, atol=1e-10)
        errs.append(float(np.mean(np.abs(g.size * r.p - ref[:: nr // n]))))
    rows.append(row("Fokker-Planck 1D vs spectral MOL, space", ["8", "16", "32", "64"], errs))
    print_rst_table(["problem", "steps / n", "L1 errors", "observed orders"], rows)


if __name__ == "__main__":
    main()
