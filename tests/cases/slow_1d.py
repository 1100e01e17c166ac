"""A 1D case that runs for several seconds, for the SIGKILL/--resume test.

The Fisher–Rao run (30000 iterations at n = 2^13, a few seconds) is the one that gets
killed. 1D, so that its kernels are those the earlier command-line tests compiled and
cached: the test's processes load them instead of compiling.
"""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    grid=df.Grid(2**13, dim=1),  # up to 2^13 the combined direction is one compiled call
    potential="sin(4*pi*x)",
    panels=[Panel((1, 0, 1e-4), ["combined", "fisher_rao"])],
    tol=None,  # the Fisher–Rao run goes on to max_iter
    max_iter=30000,
    method="gradient",  # long first-order run: the kill tests need one
    snapshot_every=1000,
)
