"""The Fisher–Rao flow of KL (the replicator equation
:math:`\\dot p = -p\\,(g - \\langle p, g\\rangle)`, :math:`g = \\log(p/\\mu)`): exactly
:math:`\\log p(t) = e^{-t}\\log p_0 + (1 - e^{-t})\\log\\mu + c(t)` in every cell — mass
moves between distant cells without transport, unlike the Wasserstein flow of the same
energy (second row)."""

import numpy as np

import densflow as df
from densflow.app.flow_case import Flow, FlowCase

KL = {"kl": "2*sin(4*pi*x)"}
P0 = "1 + 0.9*cos(2*pi*x)"
TIMES = np.r_[0.0, np.geomspace(1e-3, 6.0, 35)]

case = FlowCase(
    title="Fisher-Rao and Wasserstein flows of KL(p | mu), mu ~ exp(-2 sin 4 pi x) (n = 256)",
    grid=df.Grid(256),
    energy=KL,
    p0=P0,
    flows=[Flow("Fisher-Rao", metric="fisher_rao", t_end=6.0, rtol=1e-5, save_times=TIMES),
           Flow("Wasserstein", metric="wasserstein", t_end=6.0, rtol=1e-5, save_times=TIMES)],
)
