"""Aggregation-diffusion in 2D: the Wasserstein flow of
:math:`\\varepsilon\\int\\rho\\log\\rho + \\tfrac12\\iint\\rho(x)W(x-y)\\rho(y)`
with the attractive Gaussian kernel :math:`W(d) = -e^{-|d|^2/(2\\sigma^2)}`
(``df.energies.Interaction``), i.e.
:math:`\\partial_t\\rho = \\varepsilon\\Delta\\rho + \\nabla\\cdot(\\rho\\nabla W*\\rho)`.
Around the uniform density the modes with
:math:`\\varepsilon < 2\\pi\\sigma^2 e^{-2\\pi^2\\sigma^2|k|^2}` grow (for σ = 0.1,
ε = 0.002: |k| up to 5), so a small perturbation forms clusters, which then merge."""

import numpy as np

import densflow as df
from densflow.app.flow_case import FlowCase

SIGMA, EPS = 0.1, 0.002

case = FlowCase(
    title=f"Aggregation-diffusion: clusters from a perturbed uniform density "
          f"(sigma = {SIGMA}, eps = {EPS}, 64 x 64)",
    grid=df.Grid(64, dim=2),
    energy={"entropy": EPS, "interaction": f"-exp(-(d1**2 + d2**2)/(2*{SIGMA}**2))"},
    p0="1 + 0.1*sin(6*pi*x1)*cos(4*pi*x2) + 0.05*cos(2*pi*(5*x1 + x2)) + 0.05*sin(2*pi*(x1 - 4*x2))",
    flow=dict(t_end=20.0, rtol=1e-3, save_times=np.r_[0.0, np.geomspace(0.05, 20.0, 40)]),
)
