"""Energies on grid densities (:ref:`energies`): terms combined by ``alpha * term`` and
``+`` into an :class:`Energy`; their line objects live in :mod:`densflow.energies.lines`."""

from .lines import EnergyLine, KLLine, QuadraticLine, State
from .terms import KINDS, LINE_RTOL, Dirichlet, Energy, HMinus1, KL, Term

__all__ = ["Term", "HMinus1", "KL", "Dirichlet", "Energy", "State", "KINDS"]
