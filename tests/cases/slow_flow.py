"""A 2D flow case that runs for several seconds, for the kill-and-resume test:
Fokker–Planck (the Wasserstein flow of KL to a Gibbs density) on 48 x 48 cells with
4000 fixed BDF2 steps (progress lines start after 2 s)."""

import densflow as df
from densflow.app.flow_case import FlowCase

case = FlowCase(
    title="slow 2D Fokker-Planck",
    grid=df.Grid(48, dim=2),
    energy={"kl": "2*cos(2*pi*x1)*cos(2*pi*x2)"},
    p0="1.5 + 0.8*cos(2*pi*(x1 + x2)) + 0.5*sin(4*pi*x1)",
    flow=dict(t_end=0.1, dt=2.5e-5, save_every=200),
)
