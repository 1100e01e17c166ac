"""The porous medium equation :math:`\\partial_t\\rho = \\Delta\\rho^m` (m = 2) in the
no-flux box [0, 1], from a Barenblatt profile centred near the left wall (x = 0.2,
support radius 0.05 at t0): the Barenblatt solution is exact until its support touches
the wall (radius 0.2); after that the wall reflects the spreading mass, which is
conserved, and the density tends to the uniform one. A second flow starts from the
profile centred on the wall, whose half is exact on the box while the support crosses
the wall (its mass is 1/2, so the unit-mass flow runs at twice the Barenblatt speed).
The flows run on the Barenblatt time axis (t0 > 0)."""

import math

import numpy as np

import densflow as df
from densflow.app.flow_case import Flow, FlowCase

M = 2
ALPHA = 1 / (M + 1)
K = ALPHA * (M - 1) / (2 * M)
Q = 1 / (M - 1)
C = (math.sqrt(math.pi / K) * math.gamma(Q + 1) / math.gamma(Q + 1.5)) ** (-1 / (Q + 0.5))


def time_of_radius(r):
    """The Barenblatt time at which the support has radius ``r``."""
    return (r / math.sqrt(C / K)) ** (1 / ALPHA)


def profile(centre, radius):
    """A p0 expression: the Barenblatt profile at ``centre`` with support ``radius``."""
    t = time_of_radius(radius)
    return f"np.maximum({C!r} - {K * t ** (-2 * ALPHA)!r}*(x - {centre!r})**2, 0)**{Q!r} + 1e-9"


t0, t1 = time_of_radius(0.05), time_of_radius(0.6)
s0, s1 = time_of_radius(0.2), time_of_radius(0.6)
case = FlowCase(
    title="Porous medium (m = 2) from Barenblatt profiles in the no-flux box (n = 256)",
    grid=df.Grid(256, dim=1, boundary="neumann"),
    flows=[
        Flow("centred at x = 0.2", energy={"porous_medium": M}, p0=profile(0.2, 0.05), t0=t0,
             t_end=t1, rtol=1e-5, save_times=np.geomspace(t0, t1, 30)),
        Flow("centred on the wall", energy={"porous_medium": M}, p0=profile(0.0, 0.2), t0=s0,
             t_end=s0 + (s1 - s0) / 2, rtol=1e-5, save_times=np.geomspace(s0, s0 + (s1 - s0) / 2, 30)),
    ],
)
