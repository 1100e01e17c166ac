"""Time-accurate gradient flows of grid densities (:ref:`flows`): :func:`flow` integrates
:math:`\\dot p = -M(p)\\nabla F(p)` by implicit Euler or BDF2 steps, each solved by
Newton–Krylov in the potential variables, with fixed or adaptive step sizes."""

from .driver import FlowNewton, FlowResult, flow
from .proximal import FLOW_METRICS, MOBILITIES
from .recording import read_flow
from .schemes import SCHEMES

__all__ = ["flow", "FlowResult", "FlowNewton", "FLOW_METRICS", "MOBILITIES", "SCHEMES", "read_flow"]
