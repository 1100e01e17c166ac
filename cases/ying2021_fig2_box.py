"""Ying (2021), Fig. 2 on the no-flux box: 2D, 64 × 64, μ ∝ exp(-sin 4πx1 · sin 4πx2), uniform initial density.

Run with ``densflow run cases/ying2021_fig2_box.py``. Each panel compares the combined
metric with the single metrics whose energy terms are switched on.
"""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    name="ying2021_fig2_box",
    title="Ying (2021), Fig. 2 on the no-flux box: 2D, 64 × 64, V = sin 4πx1 · sin 4πx2",
    grid=df.Grid(64, dim=2),
    potential="sin(4*pi*x1) * sin(4*pi*x2)",
    p0="uniform",
    boundary="neumann",
    panels=[
        Panel((1, 3e-4, 0), ["combined", "wasserstein", "fisher_rao"],
              title="(1) Wasserstein + Fisher–Rao"),
        Panel((1, 0, 1e-4), ["combined", "wasserstein", "mahalanobis"],
              title="(2) Wasserstein + Mahalanobis"),
        Panel((0, 3e-4, 1e-4), ["combined", "fisher_rao", "mahalanobis"],
              title="(3) Fisher–Rao + Mahalanobis"),
        Panel((1, 3e-4, 1e-4), ["combined", "wasserstein", "fisher_rao", "mahalanobis"],
              title="(4) Wasserstein + Fisher–Rao + Mahalanobis"),
    ],
    tol=1e-12,
    max_iter=1000,
    # The paper's plain Armijo (E = +inf outside p > 0, metric at p), to reproduce the
    # paper. Delete this line in a copy that starts elsewhere (a bump, rough or nearly
    # vanishing data): the library's default safeguard makes those converge.
    safeguard=None,
    # The paper's first-order method, to reproduce its figures. Delete this line in a
    # copy: the library's default, Newton-Krylov steps preconditioned by the metric, is
    # faster (`densflow run --method newton` runs these panels with it).
    method="gradient",
)
