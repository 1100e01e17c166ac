"""Heat flow on the circle: the Wasserstein gradient flow of the entropy
:math:`\\int\\rho\\log\\rho` is the heat equation :math:`\\partial_t\\rho = \\Delta\\rho`
(each Fourier mode k decays as :math:`e^{-4\\pi^2k^2t}`). A nearly piecewise-constant
start (a smoothed box) spreads out; adaptive BDF2 steps grow from microseconds, where
the edges smooth, to milliseconds near equilibrium."""

import numpy as np

import densflow as df
from densflow.app.flow_case import FlowCase

case = FlowCase(
    title="Heat flow on the circle: Wasserstein flow of the entropy (n = 256)",
    grid=df.Grid(256),
    energy={"entropy": 1.0},
    p0="1 + 0.9*tanh(20*cos(2*pi*x))",
    flow=dict(t_end=0.03, scheme="bdf2", rtol=1e-4,
              save_times=np.r_[0.0, np.geomspace(1e-5, 0.03, 40)]),
)
