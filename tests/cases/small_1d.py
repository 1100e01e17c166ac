"""A small 1D case for the command-line tests (n = 64, two panels)."""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    title="small 1D test case",
    grid=df.Grid(64, dim=1),
    potential="sin(4*pi*x)",
    p0="1 + 0.5*cos(2*pi*x)",
    panels=[
        Panel((1, 1e-3, 0), ["combined", "wasserstein"], title="(1) Wasserstein + Fisher–Rao"),
        Panel((0, 1e-3, 1e-4), ["combined", "fisher_rao", "mahalanobis"]),
    ],
    tol=1e-12,
    max_iter=200,
    method="gradient",  # first-order runs: the CLI tests count their iterations
)
