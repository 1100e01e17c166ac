"""densflow: natural-gradient flows of probability densities.

Grid side: :class:`Grid`, :mod:`densflow.energies`, :mod:`densflow.metrics` and
:func:`solve`; time-accurate flows :func:`flow`; the documentation in ``docs/`` explains them, and
``docs/architecture.rst`` the layers of the package.
"""

from . import _aliases, energies, metrics
from .core.grid import Grid
from .solving import Armijo, SolveResult, solve
from .flows import FlowResult, flow

__version__ = "0.1.0"

__all__ = ["Grid", "energies", "metrics", "solve", "SolveResult", "Armijo", "flow", "FlowResult",
           "__version__"]

_aliases.install()
