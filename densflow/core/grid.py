"""Uniform grids on the unit interval and the unit square: periodic (the torus) or a
no-flux (Neumann) box."""

import numpy as np

from .validation import as_real_array, check_positive_int, check_probability_vector

__all__ = ["Grid", "GIBBS_SPAN", "BOUNDARIES"]

#: About the largest ``t`` with ``exp(-t) > 0`` in float64 (745.13, half the smallest
#: subnormal): a potential spanning more gives a measure with zeros.
GIBBS_SPAN = 1075 * float(np.log(2.0))  # -log(2**-1075)

#: Boundary conditions of a :class:`Grid`: the periodic torus (the default) and the
#: no-flux box :math:`[0, 1]^{\mathrm{dim}}` (Neumann; :ref:`boxes`).
BOUNDARIES = ("periodic", "neumann")


class Grid:
    r"""A uniform grid on :math:`[0, 1)^{\mathrm{dim}}`, periodic or a no-flux box.

    The periodic grid has ``n`` points per axis at :math:`x_i = i/n`; the no-flux box
    (``boundary="neumann"``) has ``n`` cells per axis with centres
    :math:`x_i = (i + \tfrac12)/n` and no flux through its walls (:ref:`boxes`). Either
    way ``N = n**dim`` unknowns. Densities on it are probability vectors stored with shape ``(n,)`` in
    1D and ``(n, n)`` in 2D (axis ``d`` of the array is coordinate :math:`x_{d+1}`).

    Parameters
    ----------
    n : int
        Points per axis, at least 2.
    dim : {1, 2}
        Spatial dimension.
    boundary : {"periodic", "neumann"}
        The torus (default) or the no-flux box.
    """

    def __init__(self, n, dim=1, boundary="periodic"):
        self.n = check_positive_int(n, "n", minimum=2)
        if dim not in (1, 2) or isinstance(dim, bool):
            raise ValueError(f"dim must be 1 or 2, got {dim!r}")
        self.dim = int(dim)
        if not isinstance(boundary, str) or boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {', '.join(map(repr, BOUNDARIES))}, "
                             f"got {boundary!r}")
        self.boundary = boundary

    @property
    def periodic(self):
        """Whether the grid is the periodic torus."""
        return self.boundary == "periodic"

    @property
    def shape(self):
        """Array shape of a density: ``(n,)`` or ``(n, n)``."""
        return (self.n,) * self.dim

    @property
    def size(self):
        """Number of unknowns ``N = n**dim``."""
        return self.n**self.dim

    def coordinates(self):
        """Grid coordinates: ``x`` in 1D, ``(x1, x2)`` (``indexing="ij"``) in 2D."""
        x = np.arange(self.n) / self.n if self.periodic else (np.arange(self.n) + 0.5) / self.n
        if self.dim == 1:
            return x
        return tuple(np.meshgrid(x, x, indexing="ij"))

    def uniform(self):
        """The uniform probability vector."""
        return np.full(self.shape, 1.0 / self.size)

    def gibbs(self, potential):
        r"""The probability vector :math:`\mu_s \propto \exp(-V(x_s))`.

        Parameters
        ----------
        potential : callable
            ``V(x)`` in 1D, ``V(x1, x2)`` in 2D, evaluated on arrays of coordinates.

        Raises
        ------
        ValueError
            If ``V`` is not finite on the grid, or spans more than :data:`GIBBS_SPAN`
            (``exp(-V)`` would underflow to 0 somewhere: the message says where and by
            how much).
        """
        coords = self.coordinates()
        v = potential(coords) if self.dim == 1 else potential(*coords)
        v = np.broadcast_to(as_real_array(v, "potential V (its values)"), self.shape)
        if not np.all(np.isfinite(v)):
            raise ValueError("potential must return finite values on the grid")
        spread = float(v.max() - v.min())
        w = np.exp(-(v - v.min()))
        if not np.all(w > 0):
            zero = int(np.count_nonzero(w == 0))
            raise ValueError(
                f"potential: exp(-V) underflows to 0 at {zero} of {self.size} grid points: "
                f"V spans {spread:.4g} (max V - min V), beyond the {GIBBS_SPAN:.0f} a float64 "
                f"exp can span by {spread - GIBBS_SPAN:.4g}; mu would vanish there (scale V down)")
        return w / w.sum()

    def check_density(self, p, name="p"):
        """Return ``p`` as an array after checking it is a positive probability vector
        of this grid's shape (see :func:`densflow.core.validation.check_probability_vector`)."""
        return check_probability_vector(p, self.shape, name=name)

    def __eq__(self, other):
        return isinstance(other, Grid) and (self.n, self.dim, self.boundary) == (
            other.n, other.dim, other.boundary)

    def __hash__(self):
        return hash((self.n, self.dim) if self.periodic else (self.n, self.dim, self.boundary))

    def __repr__(self):
        if self.periodic:
            return f"Grid(n={self.n}, dim={self.dim})"
        return f"Grid(n={self.n}, dim={self.dim}, boundary={self.boundary!r})"
