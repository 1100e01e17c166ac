"""A 2D case that runs for several seconds, for the SIGKILL/--resume test.

The Fisher–Rao run (2500 iterations at 128 × 128, about 5 s) is the one that gets killed.
"""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    grid=df.Grid(128, dim=2),
    potential="sin(4*pi*x1) * sin(4*pi*x2)",
    panels=[Panel((1, 3e-4, 1e-4), ["combined", "fisher_rao"])],
    tol=1e-12,
    max_iter=2500,
    method="gradient",  # long first-order run: the kill tests need one
    snapshot_every=50,
)
