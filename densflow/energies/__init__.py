"""Energies on grid densities (:ref:`energies`, :ref:`free-energies`): terms combined by
``alpha * term`` and ``+`` into an :class:`Energy`; their line objects live in
:mod:`densflow.energies.lines`."""

from .interaction import Interaction
from .lines import State
from .porous import PorousMedium
from .potential import Potential
from .terms import KINDS, KL, Dirichlet, Energy, HMinus1, Term

__all__ = ["Term", "HMinus1", "KL", "Dirichlet", "PorousMedium", "Potential", "Interaction",
           "Energy", "State", "KINDS"]
