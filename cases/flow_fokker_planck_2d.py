"""2D Fokker–Planck equation relaxing to a Gibbs density:
:math:`\\partial_t\\rho = \\Delta\\rho + \\nabla\\cdot(\\rho\\nabla V)`, the Wasserstein
flow of :math:`\\mathrm{KL}(\\rho\\,|\\,e^{-V}/Z)` = entropy + potential energy. A blob
away from the wells of V spreads and settles into :math:`e^{-V}/Z`."""

import numpy as np

import densflow as df
from densflow.app.flow_case import FlowCase

V = "2*cos(2*pi*x1) + 1.5*cos(2*pi*(x1 - x2))"

case = FlowCase(
    title="2D Fokker-Planck: relaxation to exp(-V)/Z, V = " + V + " (64 x 64)",
    grid=df.Grid(64, dim=2),
    energy={"kl": V},                       # = {"entropy": 1, "potential": V} up to a constant
    p0="0.02 + exp(-((x1 - 0.5)**2 + (x2 - 0.5)**2) / 0.01)",
    flow=dict(t_end=0.3, scheme="bdf2", rtol=1e-4,
              save_times=np.r_[0.0, np.geomspace(1e-4, 0.3, 30)]),
)
