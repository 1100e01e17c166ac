"""The expression language of case files: NumPy expressions of the coordinates (a
potential, an initial density, an interaction kernel) and sums of free-energy terms.

An expression is evaluated with no builtins and only the names of
:data:`EXPRESSION_NAMES` plus the coordinates (``x`` in 1D, ``x1`` and ``x2`` in 2D), so
that a run file can record it as text and the case can be rerun from the file alone.
"""

import numpy as np

from .. import energies as _energies_free
from ..energies import terms as _energies

__all__ = ["EXPRESSION_NAMES", "TERM_NAMES", "evaluate_expression", "evaluate_terms",
           "expression_names"]

#: Names available in potential and initial-density expressions (plus the coordinates).
EXPRESSION_NAMES = {"np": np, "pi": np.pi, "e": np.e, "sin": np.sin, "cos": np.cos,
                    "tan": np.tan, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
                    "abs": np.abs, "tanh": np.tanh, "cosh": np.cosh, "sinh": np.sinh}


def expression_names(dim, variables=None):
    """The names an expression may use on a ``dim``-dimensional grid, as text."""
    coords = ("x" if dim == 1 else "x1, x2") if variables is None else ", ".join(variables)
    return f"{coords}, " + ", ".join(n for n in EXPRESSION_NAMES if n != "np") + " and np (NumPy)"


def evaluate_expression(expr, grid, name="expression", variables=None):
    """Evaluate a NumPy expression of the coordinates on ``grid``.

    Parameters
    ----------
    expr : str
        E.g. ``"sin(4*pi*x)"`` (1D) or ``"sin(4*pi*x1) * sin(4*pi*x2)"`` (2D); the
        functions of :data:`EXPRESSION_NAMES` and ``np`` are available.
    grid : Grid
        The grid.
    name : str
        The argument's name, for error messages.
    variables : dict or None
        Other variables than the coordinates (name to an array, all of one shape: the
        result's), e.g. the displacements of an interaction kernel.

    Returns
    -------
    ndarray
        The finite values, of the grid's shape (of the variables' shape if given).
    """
    if not isinstance(expr, str) or not expr.strip():
        raise TypeError(f"{name} must be a non-empty expression string, got {expr!r}")
    what = "coordinates" if variables is None else "variables"
    if variables is None:
        coords = grid.coordinates()
        variables = {"x": coords} if grid.dim == 1 else {"x1": coords[0], "x2": coords[1]}
    where = " and ".join(variables)
    shape = np.shape(next(iter(variables.values())))  # the grid's, or the variables' (a box's padded displacements)
    try:
        with np.errstate(all="ignore"):
            values = eval(expr, {"__builtins__": {}, **EXPRESSION_NAMES}, variables)  # noqa: S307
        if np.iscomplexobj(values):
            raise TypeError("the expression has complex values")
        values = np.broadcast_to(np.asarray(values, dtype=float), shape)
    except Exception as exc:
        raise ValueError(f"{name} {expr!r} cannot be evaluated on the {grid.dim}D grid "
                         f"({type(exc).__name__}: {exc}; the {what} are {where}; "
                         f"allowed names: {expression_names(grid.dim, variables)})") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} {expr!r} is not finite everywhere on the grid")
    return np.array(values)


#: Names of free-energy terms in a panel's ``terms`` expression (:ref:`free-energies`):
#: ``PorousMedium(m)``, ``Potential("V expression of x")``, ``Interaction("W expression
#: of the displacement x")`` (``x1, x2`` in 2D), ``Entropy()`` (KL to the uniform density).
TERM_NAMES = ("PorousMedium", "Potential", "Interaction", "Entropy")


def evaluate_terms(expr, grid):
    """The energy of a panel's ``terms`` expression, e.g. ``"PorousMedium(3) +
    Potential('cos(2*pi*x)')"`` or ``"0.1 * Entropy() + Interaction('-exp(-x**2/0.08)')"``
    (see :data:`TERM_NAMES`; ``Interaction``'s expression is evaluated on the wrapped
    displacements, :func:`densflow.energies.interaction.displacements`)."""
    from ..energies.interaction import displacements

    if not isinstance(expr, str) or not expr.strip():
        raise TypeError(f"Panel terms must be a non-empty expression string, got {expr!r}")

    def on(values):
        return lambda *_: values

    def potential(v):
        return _energies_free.Potential(grid, on(evaluate_expression(v, grid, name="Potential V")))

    def interaction(w):
        d = displacements(grid)
        shifted = _Shifted(grid, d)
        return _energies_free.Interaction(grid, on(evaluate_expression(w, shifted, name="Interaction W")))

    names = {"PorousMedium": lambda m: _energies_free.PorousMedium(grid, m),
             "Potential": potential, "Interaction": interaction,
             "Entropy": lambda: _energies.KL(grid, grid.uniform())}
    try:
        energy = eval(expr, {"__builtins__": {}, **EXPRESSION_NAMES}, names)  # noqa: S307
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Panel terms {expr!r}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"Panel terms {expr!r} cannot be evaluated ({type(exc).__name__}: {exc}; "
                         f"allowed names: {', '.join(TERM_NAMES)} and numbers)") from None
    if isinstance(energy, _energies.Term):
        energy = 1.0 * energy
    if not isinstance(energy, _energies.Energy):
        raise ValueError(f"Panel terms {expr!r} must be a sum of terms ({', '.join(TERM_NAMES)}), "
                         f"got {type(energy).__name__}")
    return energy


class _Shifted:
    """A grid stand-in whose coordinates are the kernel's displacements (wrapped on the
    torus, unwrapped and padded to ``(2n,)*dim`` on a box)."""

    def __init__(self, grid, d):
        self.dim, self._d = grid.dim, d
        self.shape = np.shape(d) if grid.dim == 1 else np.shape(d[0])

    def coordinates(self):
        return self._d
