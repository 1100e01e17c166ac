r"""The interaction energy :math:`\tfrac12 \sum_s\sum_t p_s W(x_s - x_t) p_t`
(:ref:`free-energies`).

The displacement :math:`x_s - x_t` is wrapped periodically into :math:`[-\tfrac12,
\tfrac12)^{\mathrm{dim}}`, so the matrix :math:`K_{st} = W(x_s - x_t)` is circulant: it
is applied by FFT convolution in :math:`O(N \log N)`, its eigenvalues are the discrete
Fourier transform :math:`\hat W` of the kernel's samples (real, as :math:`W` is even).

.. math::

    E(p) = \tfrac12\, p^\top K p, \qquad \nabla E = K p, \qquad \nabla^2 E = K .

Mahalanobis-like: the combined metric takes the wavelet diagonal :math:`w_i^\top K w_i`,
the same for every translate in a block of the basis (so one FFT per block, once per
grid), clipped at 0 where the kernel is attractive (:math:`\hat W < 0`: the term is
then not convex, and the metric preconditions only the convex part).

On the no-flux box (``Grid(n, dim, boundary="neumann")``, cell centres
:math:`x_i = (i+\tfrac12)/n`) the displacements are not wrapped: :math:`x_s - x_t =
(i_s - i_t)/n \in (-1, 1)^{\mathrm{dim}}`, so :math:`K` is (block) Toeplitz. It is the
corner :math:`K = P^\top C P` of the circulant :math:`C` of ``2n`` points per axis whose
kernel is sampled at :math:`j/n`, :math:`j = -n, \dots, n-1` (the sample at
:math:`-1` is never read by the corner) — :math:`P` pads with zeros — so it is applied
by a zero-padded FFT convolution, still :math:`O(N \log N)`. :math:`C` is the
convolution of the box's even reflection (:mod:`densflow.core.box_wavelets`), and the
combined metric's wavelet diagonals on the box are those of :math:`C` in the reflected
basis. :math:`\hat C \ge 0` implies :math:`K \succeq 0` (a sufficient test of
convexity on the box).
"""

import numpy as np
import scipy.fft as sfft

from ..core.grid import Grid
from ..core.operators import dot
from ..core.state import State
from .potential import fingerprint, grid_field
from .terms import _Quadratic

__all__ = ["Interaction", "displacements"]

#: Relative tolerance of the evenness check of a kernel's samples.
EVEN_RTOL = 1e-10


def displacements(grid):
    r"""The displacements at which the kernel is sampled: an array in 1D, a pair of
    arrays (``indexing="ij"``) in 2D.

    Periodic grid: the displacement of each cell from cell 0, wrapped into
    :math:`[-\tfrac12,\tfrac12)` (shape ``(n,)*dim``). No-flux box: the unwrapped
    displacements :math:`j/n` of the padded convolution, :math:`j = 0, \dots, n-1`
    then :math:`-n, \dots, -1` (shape ``(2n,)*dim``, entry ``n`` at :math:`-1`,
    beyond any two cells of the box)."""
    if grid.periodic:
        d = np.arange(grid.n) / grid.n
        d = np.where(d >= 0.5, d - 1.0, d)
    else:
        j = np.arange(2 * grid.n)
        d = np.where(j >= grid.n, j - 2 * grid.n, j) / grid.n
    if grid.dim == 1:
        return d
    return tuple(np.meshgrid(d, d, indexing="ij"))


def _reflected(w, axis):
    """``w[-j mod n]`` along ``axis``."""
    return np.roll(np.flip(w, axis=axis), 1, axis=axis)


class Interaction(_Quadratic):
    r"""Interaction energy with an even kernel :math:`W` (convex where :math:`\hat W \ge 0`).

    Parameters
    ----------
    grid : Grid
        The periodic grid or the no-flux box.
    W : callable or array_like
        ``W(d)`` in 1D, ``W(d1, d2)`` in 2D, on arrays of displacements (see
        :func:`displacements`: wrapped into :math:`[-\tfrac12, \tfrac12)` on the
        periodic grid, unwrapped in :math:`[-1, 1)` on the box), even in each
        component; or its samples at those displacements, an array of shape
        ``(n,)*dim`` (periodic) or ``(2n,)*dim`` (box). Finite.

    Examples
    --------
    Attractive Gaussian interaction with entropy (aggregation–diffusion)::

        E = 0.1 * df.energies.KL(grid, grid.uniform()) + df.energies.Interaction(
            grid, lambda d: -np.exp(-d**2 / (2 * 0.05**2)))
    """

    kind = "mahalanobis"
    name = "Interaction"

    def __init__(self, grid, W):
        super().__init__(grid)
        # the box's kernel lives on the padded grid of 2n points per axis
        self._padded = None if grid.periodic else Grid(2 * grid.n, grid.dim)
        if self._padded is not None and not callable(W) and np.shape(W) != self._padded.shape:
            raise ValueError(
                f"W's samples on the no-flux box must have the padded shape (2n,)*dim = "
                f"{self._padded.shape}: the unwrapped displacements j/n, j = 0..n-1 then "
                f"-n..-1 (densflow.energies.interaction.displacements), got shape {np.shape(W)}")
        w = grid_field(self._padded or grid, W, displacements(grid), "W")
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        for axis in range(grid.dim):
            gap = float(np.max(np.abs(w - _reflected(w, axis))))
            if gap > EVEN_RTOL * scale:
                which = "" if grid.dim == 1 else f" in displacement component {axis + 1}"
                raise ValueError(f"W must be even{which}, W(-d) = W(d): its samples differ from "
                                 f"their reflection by up to {gap:.3g} (max |W| = {scale:.3g})")
        self.W = w
        self._axes = tuple(range(grid.dim))
        # the periodic grid's eigenvalues of K; on the box those of its circulant C
        self.symbol = np.ascontiguousarray(sfft.rfftn(w, axes=self._axes).real)
        self.symbol.setflags(write=False)
        self._diagonals = {}
        self._zero = np.zeros(grid.shape)
        self._zero.setflags(write=False)

    @property
    def center(self):
        """The quadratic's centre: 0 (:math:`E = \\tfrac12 p^\\top K p`)."""
        return self._zero

    def _circulant(self, v):
        vhat = sfft.rfftn(v, axes=self._axes)
        vhat *= self.symbol
        return sfft.irfftn(vhat, s=v.shape, axes=self._axes)

    def _apply(self, v):
        if self._padded is None:
            return self._circulant(v)
        n = self.grid.n
        u = sfft.irfftn(sfft.rfftn(v, s=self._padded.shape, axes=self._axes) * self.symbol,
                        s=self._padded.shape, axes=self._axes)
        return np.ascontiguousarray(u[(slice(0, n),) * self.grid.dim])

    def evaluate(self, p):
        u = self._apply(p)
        return State(p, 0.5 * dot(p, u), u)

    @property
    def convex(self):
        r"""Whether :math:`\hat W \ge 0` (the term is convex; on the box, whether the
        padded circulant's :math:`\hat C \ge 0`, which implies it)."""
        return bool(self.symbol.min() >= 0)

    def wavelet_diagonal(self, basis):
        r""":math:`\max(0, w_i^\top K w_i)` per basis vector, in the pyramid layout (on
        the box: :math:`w_i^\top C w_i` in the basis of the reflected grid)."""
        key = (id(basis), basis.grid.n, basis.level)
        if key not in self._diagonals:
            out = np.empty(basis.grid.shape)
            for _, _, region in basis.blocks:
                e = np.zeros(basis.grid.shape)
                e[tuple(r.start for r in region)] = 1.0
                w = basis.synthesis(e)
                out[region] = max(0.0, dot(w, self._circulant(w)))
            out.setflags(write=False)
            self._diagonals[key] = out
        return self._diagonals[key]

    def label(self):
        return f"Interaction(W {fingerprint(self.W)})"

    def __repr__(self):
        return f"Interaction({self.grid!r}, W)"

