"""densflow: natural-gradient flows of probability densities.

Grid side: :class:`Grid`, :mod:`densflow.energies`, :mod:`densflow.metrics` and
:func:`solve`; the documentation in ``docs/`` and README.rst explain them.
"""

from . import energies, metrics
from .grid import Grid
from .solver import Armijo, SolveResult, solve

__version__ = "0.1.0"

__all__ = ["Grid", "energies", "metrics", "solve", "SolveResult", "Armijo", "__version__"]
