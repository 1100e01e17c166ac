"""densflow: natural-gradient flows of probability densities.

Grid side: :class:`Grid`, :mod:`densflow.energies`, :mod:`densflow.metrics` and
:func:`solve`; time-accurate flows :func:`flow`; the documentation in ``docs/`` explains them, and
``docs/architecture.rst`` the layers of the package.
"""

from . import _aliases, energies, gridproblem, metrics  # noqa: F401  (gridproblem registers its kind)
from .core.grid import Grid
from ._version import __version__
from .solving import Armijo, SolveResult, solve
from .flows import FlowResult, flow


__all__ = ["Grid", "energies", "metrics", "solve", "SolveResult", "Armijo", "flow", "FlowResult",
           "__version__"]

_aliases.install()
