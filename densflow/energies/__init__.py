"""Energies on grid densities (:ref:`energies`): terms combined by ``alpha * term`` and
``+`` into an :class:`Energy`; their line objects live in :mod:`densflow.energies.lines`."""

from .lines import State
from .terms import KINDS, KL, Dirichlet, Energy, HMinus1, Term

__all__ = ["Term", "HMinus1", "KL", "Dirichlet", "Energy", "State", "KINDS"]
