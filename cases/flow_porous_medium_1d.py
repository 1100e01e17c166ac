"""The porous medium equation :math:`\\partial_t\\rho = \\Delta\\rho^m` from Barenblatt
profiles, m = 2 and 3, in 1D and 2D: the Wasserstein flow of
:math:`\\int\\rho^m/(m-1)` (``df.energies.PorousMedium``). The Barenblatt solution

    rho(x, t) = t^(-alpha) (C - k |x - 1/2|^2 t^(-2 alpha/d))_+^(1/(m-1)),
    alpha = d/(d(m-1) + 2),  k = alpha (m-1)/(2 m d),

(C for unit mass) is the start at t0, where its support has radius 0.1, and the exact
solution until t_end, where the radius is 0.4 (the support stays inside the torus). A
floor of 1e-6 keeps the start positive. The flows run on the Barenblatt time axis
(t0 > 0), so the figure's times are those of the formula."""

import math

import numpy as np

import densflow as df
from densflow.app.flow_case import Flow, FlowCase


def barenblatt(m, d, radius):
    """``(expression, t)``: the Barenblatt profile of exponent m in dimension d whose
    support has ``radius`` at time t, as a p0 expression (up to normalisation)."""
    alpha = d / (d * (m - 1) + 2)
    beta = alpha / d
    k = alpha * (m - 1) / (2 * m * d)
    q = 1 / (m - 1)
    # mass of (1 - k|y|^2)_+^q: C = mass^(-1/(q + d/2)) gives unit mass
    if d == 1:
        mass = math.sqrt(math.pi / k) * math.gamma(q + 1) / math.gamma(q + 1.5)
    else:
        mass = math.pi / (k * (q + 1))
    C = mass ** (-1 / (q + d / 2))
    t = (radius / math.sqrt(C / k)) ** (1 / beta)
    r2 = "(x - 0.5)**2" if d == 1 else "((x1 - 0.5)**2 + (x2 - 0.5)**2)"
    return f"np.maximum({C!r} - {k * t ** (-2 * beta)!r}*{r2}, 0)**{q!r} + 1e-6", t


def flows(d):
    out = []
    for m in (2, 3):
        p0, t0 = barenblatt(m, d, 0.1)
        t1 = barenblatt(m, d, 0.4)[1]
        out.append(Flow(f"m = {m}", energy={"porous_medium": m}, p0=p0, t0=t0, t_end=t1,
                        rtol=1e-4, save_times=np.geomspace(t0, t1, 30)))
    return out


DIM = 1
case = FlowCase(
    title=f"Porous medium equation from Barenblatt profiles ({DIM}D, n = 256)",
    grid=df.Grid(256, dim=DIM),
    flows=flows(DIM),
)
