"""Mesh independence: how each metric's iteration count changes as the grid is refined.

Run with ``densflow sweep cases/mesh_independence.py`` (Dask, two local workers by
default). Every point is the paper's full combination, weights (1, 1e-3, 1e-4) in 1D
and (1, 3e-4, 1e-4) in 2D, μ ∝ exp(-V) with the paper's V, uniform start, all four
metrics, at most 500 iterations to E <= 1e-12 with the paper's plain Armijo.
"""

import densflow as df
from densflow.app.case import Case, Panel
from densflow.app.sweep import Sweep

POTENTIAL = {1: "sin(4*pi*x)", 2: "sin(4*pi*x1) * sin(4*pi*x2)"}
WEIGHTS = {1: (1, 1e-3, 1e-4), 2: (1, 3e-4, 1e-4)}


def make_case(dim, n):
    return Case(
        title=f"{dim}D, n = {n} per axis",
        grid=df.Grid(n, dim=dim),
        potential=POTENTIAL[dim],
        panels=[Panel(WEIGHTS[dim], ["combined", "wasserstein", "fisher_rao", "mahalanobis"],
                      title="Wasserstein + Fisher–Rao + Mahalanobis")],
        tol=1e-12,
        max_iter=500,
        safeguard=None,  # the paper's plain Armijo, as in the paper's cases (see there)
        method="gradient",  # the paper's first-order method: its iteration counts
    )


sweep = Sweep(
    make_case,
    points=[dict(dim=1, n=n) for n in (256, 1024, 4096, 16384, 65536)]
    + [dict(dim=2, n=n) for n in (32, 64, 128, 256, 512)],
    x="n",
)
