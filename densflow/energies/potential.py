r"""The potential energy :math:`E(p) = \sum_s p_s V(x_s)` (:ref:`free-energies`).

Linear in :math:`p`: gradient :math:`V`, Hessian 0. ``KL(grid, grid.gibbs(V))`` is the
entropy plus this term, up to a constant.
"""

import hashlib

import numpy as np

from ..core.operators import dot
from ..core.state import State
from ..core.validation import as_real_array
from .terms import Term

__all__ = ["Potential", "grid_field", "fingerprint"]


def fingerprint(values):
    """A short hash of an array's values and shape (records a field in run files)."""
    arr = np.ascontiguousarray(values, dtype=float)
    digest = hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()
    return f"sha256:{digest[:16]}"


def grid_field(grid, values, coordinates, name):
    """A finite array of the grid's shape from ``values``: a callable of the coordinate
    arrays (``f(x)`` in 1D, ``f(x1, x2)`` in 2D, given ``coordinates``) or an array.

    Raises
    ------
    ValueError
        If the array has another shape, or some value is NaN or infinite.
    TypeError
        If the values are not real numbers.
    """
    if callable(values):
        coords = coordinates
        try:
            v = values(coords) if grid.dim == 1 else values(*coords)
        except Exception as exc:
            raise ValueError(f"{name} cannot be evaluated on the {grid.dim}D grid "
                             f"({type(exc).__name__}: {exc})") from None
        v = np.broadcast_to(as_real_array(v, f"{name} (its values)"), grid.shape)
    else:
        v = as_real_array(values, name)
        if v.shape != grid.shape:
            raise ValueError(f"{name} must be a callable or an array of the grid's shape "
                             f"{grid.shape}, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        bad = int(np.count_nonzero(~np.isfinite(v)))
        raise ValueError(f"{name} must be finite on the grid, but {bad} values are NaN or inf")
    out = np.array(v, dtype=float)
    out.setflags(write=False)
    return out


class PotentialLine:
    """The potential along :math:`p - \\eta s`: exactly :math:`-\\eta\\, V\\cdot s`."""

    def __init__(self, term, state, s):
        self.term = term
        self.slope = dot(term.V, s)
        self.curvature = 0.0

    def delta(self, eta, q):
        return -eta * self.slope

    def state_at(self, eta, q):
        return self.term.evaluate(q)


class Potential(Term):
    r"""Potential energy (linear; no curvature).

    .. math::

        E(p) = \sum_s p_s V(x_s), \qquad \nabla E = V, \qquad \nabla^2 E = 0 .

    Parameters
    ----------
    grid : Grid
        The periodic grid.
    V : callable or array_like
        ``V(x)`` in 1D, ``V(x1, x2)`` in 2D on the coordinate arrays (as
        :meth:`densflow.Grid.gibbs` takes it), or the values as an array of the grid's
        shape; finite.

    Examples
    --------
    >>> grid = df.Grid(256)                                              # doctest: +SKIP
    >>> E = df.energies.PorousMedium(grid, 2) + df.energies.Potential(grid, lambda x: np.cos(2 * np.pi * x))
    """

    kind = "linear"
    name = "Potential"
    quadratic_line = True

    def __init__(self, grid, V):
        super().__init__(grid)
        self.V = grid_field(grid, V, grid.coordinates(), "V")

    def evaluate(self, p):
        return State(p, dot(p, self.V), self.V.copy())

    def line(self, state, s):
        return PotentialLine(self, state, s)

    def change(self, state, q, log_ratio):
        r""":math:`(q - p)\cdot V`."""
        return dot(q - state.p, self.V), self.evaluate(q)

    def hessian_product(self, p, v, rtol=None):
        """Zero: the term is linear."""
        return np.zeros(np.shape(v))

    def label(self):
        return f"Potential(V {fingerprint(self.V)})"

    def __repr__(self):
        return f"Potential({self.grid!r}, V)"
