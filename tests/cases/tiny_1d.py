"""A tiny 1D case for the compile-notice test: one quadratic term, one metric, so that a
cold cache compiles few kernels (n = 16)."""

import densflow as df
from densflow.app.case import Case, Panel

case = Case(
    grid=df.Grid(16, dim=1),
    potential="sin(2*pi*x)",
    panels=[Panel((0, 0, 1e-4), ["mahalanobis"])],
    tol=1e-12,
    max_iter=50,
    method="gradient",
)
