"""Aggregation-diffusion in 2D: the Wasserstein flow of
:math:`\\varepsilon\\int\\rho\\log\\rho + \\tfrac12\\iint\\rho(x)W(x-y)\\rho(y)`
with the attractive Gaussian kernel :math:`W(d) = -e^{-|d|^2/(2\\sigma^2)}`
(``df.energies.Interaction``), i.e.
:math:`\\partial_t\\rho = \\varepsilon\\Delta\\rho + \\nabla\\cdot(\\rho\\nabla W*\\rho)`.
Around the uniform density the modes with
:math:`\\varepsilon < 2\\pi\\sigma^2 e^{-2\\pi^2\\sigma^2|k|^2}` grow (for σ = 0.1,
ε = 0.01: |k| up to 3), so a small perturbation of those modes forms clusters (by t = 2),
which then stay: well-separated clusters merge only on much longer times. A cluster of mass M has the width :math:`\\sigma\\sqrt{\\varepsilon/M}`
(about 0.026, three cells here): smaller ε needs a finer grid."""

import numpy as np

import densflow as df
from densflow.app.flow_case import FlowCase

SIGMA, EPS = 0.1, 0.01

case = FlowCase(
    title=f"Aggregation-diffusion: clusters from a perturbed uniform density "
          f"(sigma = {SIGMA}, eps = {EPS}, 128 x 128)",
    grid=df.Grid(128, dim=2),
    energy={"entropy": EPS, "interaction": f"-exp(-(d1**2 + d2**2)/(2*{SIGMA}**2))"},
    p0="1 + 0.1*cos(2*pi*(2*x1 + x2)) + 0.1*cos(2*pi*(x1 - 2*x2)) + 0.05*sin(6*pi*x1)"
       " + 0.05*cos(4*pi*(x1 + x2))",
    flow=dict(t_end=10.0, rtol=1e-3, save_times=np.r_[0.0, np.geomspace(0.05, 10.0, 40)]),
)
