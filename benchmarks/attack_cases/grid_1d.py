"""The grid case of benchmarks/attacks.py: the paper's 1D problem at n = 512, four
panels, long enough (a few seconds) to be killed at random moments."""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    title="attack case: 1D, n = 512",
    grid=df.Grid(512, dim=1),
    potential="sin(4*pi*x)",
    p0="1 + 0.5*cos(2*pi*x)",
    panels=[Panel((1, 1e-3, 0), ["combined", "wasserstein"]),
            Panel((0, 1e-3, 1e-4), ["combined", "fisher_rao", "mahalanobis"]),
            Panel((1, 0, 1e-4), ["combined", "wasserstein", "mahalanobis"]),
            Panel((1, 1e-3, 1e-4), ["combined", "wasserstein", "fisher_rao"])],
    tol=1e-12, max_iter=400, snapshot_every=7, method="gradient",
)
