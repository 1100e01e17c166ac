"""A small 1D flow case for the command-line tests: heat flow (the Wasserstein flow of
the entropy) on n = 64 cells, adaptive BDF2 steps."""

import densflow as df
from densflow.app.flow_case import FlowCase

case = FlowCase(
    title="small heat flow",
    grid=df.Grid(64),
    energy={"entropy": 1.0},
    p0="1 + 0.5*cos(2*pi*x) + 0.3*sin(6*pi*x)",
    flow=dict(t_end=0.05, rtol=1e-5, save_every=4),
)
