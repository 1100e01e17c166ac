r"""Natural-gradient metrics on grid densities (:ref:`metrics`).

A metric is a symmetric positive semidefinite operator :math:`M(p)`, an approximate
inverse Hessian of the energy. Every direction is the :math:`M`-projected gradient
onto the mass-preserving subspace :math:`\{\textstyle\sum_s s_s = 0\}`:

.. math::

    s = M (g - c\,\mathbf 1), \qquad c = \frac{\mathbf 1^\top M g}{\mathbf 1^\top M \mathbf 1}
    \quad (s = M g \text{ when } M\mathbf 1 = 0),

so that :math:`\sum_s s_s = 0` and :math:`s\cdot g = (g-c\mathbf 1)^\top M (g-c\mathbf 1) \ge 0`.
A last :math:`O(N)` correction removes the rounding residue of :math:`\sum_s s_s`
(it changes ``s`` at the level of machine precision only).

A metric object is a light, reusable description (``Combined(wavelet="db4")``); its
:meth:`Metric.bind` prepares what depends on the energy and grid once per run and
returns an operator whose ``direction(p, g)`` is called every iteration. The rounding
fix lives in :mod:`densflow.metrics.massfix`, the safeguard for nearly vanishing
densities in :mod:`densflow.metrics.safeguard` (both re-exported here).
"""

import numpy as np

from ..kernels import metric as MK
from ..core.operators import apply_laplacian_pinv, dot, inverse_symbol, laplacian_symbol, weighted_laplacian
from ..core.wavelets import cached_basis
from .massfix import RESIDUE_SHARE, mass_fix
from .safeguard import BlendedPreconditioner, Safeguard

__all__ = ["Metric", "Wasserstein", "FisherRao", "Mahalanobis", "Combined", "Safeguard", "get", "NAMES",
           "mass_fix", "RESIDUE_SHARE", "BlendedPreconditioner", "CombinedPreconditioner"]


#: 1D grids up to this size compute the combined direction in one compiled call
#: (:func:`densflow.kernels.metric.combined_direction_1d`); measured on the 2-core
#: target machine: 16 vs 20 µs at n = 512, equal at 4096, 5–10 % slower from 2^16 on.
FUSED_DIRECTION_MAX = 1 << 13


#: Binders of the metrics on grids that are not periodic, ``{(boundary, metric name):
#: bind(metric, energy)}``; the module of a boundary registers its own
#: (:mod:`densflow.metrics.box` for the no-flux box).
BOUNDARY_BINDERS = {}


def _bind_on_boundary(metric, energy):
    try:
        binder = BOUNDARY_BINDERS[(energy.grid.boundary, metric.name)]
    except KeyError:
        raise ValueError(f"the {metric.name} metric has no binding on a {energy.grid.boundary} "
                         f"grid") from None
    return binder(metric, energy)


class Metric:
    """Base class: a named description of a metric, bound to an energy per run."""

    name = None

    def bind(self, energy):
        """Return an operator with ``direction(p, g)`` for this energy's grid."""
        raise NotImplementedError

    def params(self):
        """Parameters that identify the metric (for records)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class _Bound:
    """A metric bound to an energy: ``direction(p, g) -> s``."""

    def apply(self, p, g):
        """:math:`M(p) g`."""
        raise NotImplementedError

    def operator(self, p):
        """The map :math:`v \\mapsto M(p) v`, with the parts that depend on ``p`` formed once."""
        return lambda v: self.apply(p, v)

    def preconditioner(self, p):
        r"""The mass-preserving map :math:`v \mapsto M(v - c\mathbf 1)`, :math:`c = \mathbf
        1^\top M v / \mathbf 1^\top M \mathbf 1`, with the parts that depend on ``p``
        formed once: symmetric positive semidefinite, zero on constants, onto
        :math:`\{\sum_s s_s = 0\}` (the direction of :meth:`direction` without its
        rounding fix). Newton's method preconditions its conjugate gradients with it."""
        return self.operator(p)  # M 1 = 0 (Wasserstein, Mahalanobis)

    def direction(self, p, g):
        raise NotImplementedError


class Wasserstein(Metric):
    r"""Wasserstein metric :math:`M(p) = \sum_d D_d^\top \operatorname{diag}(p) D_d`
    (the discrete :math:`-\nabla\cdot(p\nabla)`; :math:`M\mathbf 1 = 0`)."""

    name = "wasserstein"

    def bind(self, energy):
        if not energy.grid.periodic:
            return _bind_on_boundary(self, energy)
        return _BoundWasserstein(energy.grid.n)


class _BoundWasserstein(_Bound):
    def __init__(self, n):
        self.n = n

    def apply(self, p, g):
        return weighted_laplacian(g, p, self.n)

    def direction(self, p, g):
        return mass_fix(self.apply(p, g))


class FisherRao(Metric):
    r"""Fisher–Rao metric :math:`M(p) = \operatorname{diag}(p)`; the direction is the
    replicator form :math:`s = p\,(g - \sum_s p_s g_s)` (for :math:`\sum p = 1`)."""

    name = "fisher_rao"

    def bind(self, energy):
        return _BoundFisherRao()


class _BoundFisherRao(_Bound):
    def apply(self, p, g):
        return p * g

    def direction(self, p, g):
        c = dot(p, g) / p.sum()
        return mass_fix(p * (g - c), p)

    def preconditioner(self, p):
        total = p.sum()
        return lambda v: p * (v - dot(p, v) / total)


class Mahalanobis(Metric):
    r"""Mahalanobis metric :math:`M = A^+`, with :math:`A` the energy's Dirichlet
    operator :math:`-\Delta`, applied with FFTs (:math:`M\mathbf 1 = 0`)."""

    name = "mahalanobis"

    def bind(self, energy):
        if not energy.grid.periodic:
            return _bind_on_boundary(self, energy)
        return _BoundMahalanobis(inverse_symbol(laplacian_symbol(energy.grid.n, energy.grid.dim)))


class _BoundMahalanobis(_Bound):
    def __init__(self, inverse):
        self.inverse = inverse

    def apply(self, p, g):
        return apply_laplacian_pinv(g, inverse=self.inverse)

    def direction(self, p, g):
        return mass_fix(self.apply(p, g))


class Combined(Metric):
    r"""Wavelet-combined metric of Ying (2021), eq. (3).

    .. math::

        M(p) = W \operatorname{diag}(\lambda) W^\top, \qquad
        \lambda_i = \Big(\frac{\alpha_1}{(H_1 p)_i} + \frac{\alpha_2}{(H_2 p)_i}
        + \alpha_3 (h_3)_i\Big)^{-1},

    with :math:`W` the orthonormal periodic wavelet basis, :math:`(H_1 p)_i =
    \sum_d\sum_s (D_d w_i)_s^2 p_s`, :math:`(H_2 p)_i = \sum_s w_i(s)^2 p_s`,
    :math:`(h_3)_i = \sum_d \lVert D_d w_i\rVert^2` (see :mod:`densflow.core.wavelets`). The
    weights :math:`\alpha_k` are read from the energy's terms by kind. A term with
    weight 0 contributes nothing; a term that is infinite (:math:`H_1 p = 0` for a
    constant basis vector) gives :math:`\lambda_i = 0`, as does a zero denominator.

    Free-energy terms declare their own part (:class:`densflow.energies.Term`): a
    Fisher–Rao-like term with diagonal Hessian :math:`\operatorname{diag}(1/q_k(p))`
    (porous medium: :math:`q = \rho^{2-m}/(mN)`) enters through
    :math:`(H_2 q)_i` with :math:`1/q = \sum_k \alpha_k/q_k`, in place of
    :math:`\alpha_2/(H_2 p)_i`; a Mahalanobis-like term with constant Hessian :math:`K`
    (interaction) adds :math:`\alpha \max(0, w_i^\top K w_i)` to :math:`\alpha_3 (h_3)_i`.

    Parameters
    ----------
    wavelet : str
        An orthogonal PyWavelets wavelet; Daubechies ``"db4"`` by default.
    level : int or None
        Decomposition level (``n`` must be divisible by ``2**level``); ``None`` picks
        the deepest level PyWavelets advises for the filter length.
    """

    name = "combined"

    def __init__(self, wavelet="db4", level=None):
        self.wavelet = wavelet
        self.level = level

    def params(self):
        return {"wavelet": self.wavelet, "level": self.level}

    def bind(self, energy):
        energy.check_weights()
        if not energy.grid.periodic:
            return _bind_on_boundary(self, energy)
        basis = cached_basis(energy.grid, self.wavelet, self.level)
        return _BoundCombined(basis, energy)


class _BoundCombined(_Bound):
    def __init__(self, basis, energy):
        self.basis = basis
        # each term's own declaration (densflow.energies.terms.Term): H1 p for the
        # Wasserstein-like, H2 q(p) for the Fisher-Rao-like (mobility q), a constant
        # diagonal for the Mahalanobis-like terms
        self.a1 = energy.wasserstein_weight
        self.a2, self.mobility = energy.fisher_rao_part()
        # W^T 1: wavelets have zero mean, so only the approximation block is nonzero;
        # exact zeros elsewhere keep 1^T M 1 exactly 0 when that block has lambda = 0
        ones = basis.analysis(np.ones(basis.grid.shape))
        self.ones_coeffs = np.zeros_like(ones)
        region = basis.blocks[0][2]
        self.ones_coeffs[region] = ones[region]
        self._a3h3 = np.ascontiguousarray(energy.wavelet_diagonal(basis), dtype=float)

    def eigenvalues(self, p):
        """:math:`\\lambda(p)` in the pyramid layout of the coefficients."""
        need_h1, need_h2 = self.a1 > 0, self.a2 > 0
        if self.mobility is None:  # H2 of p itself (KL terms): one pass
            h1, h2 = self.basis.diagonals(p, need_h1=need_h1, need_h2=need_h2)
        else:
            h1 = self.basis.diagonals(p, need_h1=need_h1, need_h2=False)[0]
            h2 = self.basis.diagonals(self.mobility(p), need_h1=False, need_h2=need_h2)[1]
        lam = np.empty(self.basis.grid.shape)
        MK.eigenvalues(lam if h1 is None else h1, lam if h2 is None else h2,
                       self.a1, self.a2, self._a3h3, lam)
        return lam

    def apply(self, p, g):
        return self.operator(p)(g)

    def operator(self, p):
        return CombinedPreconditioner(self.basis, self.eigenvalues(p), self.ones_coeffs,
                                      project=False)

    def preconditioner(self, p):
        return CombinedPreconditioner(self.basis, self.eigenvalues(p), self.ones_coeffs)

    def direction(self, p, g):
        b = self.basis
        if b.grid.dim == 1 and b.grid.size <= FUSED_DIRECTION_MAX and self.mobility is None:
            s = np.empty(b.grid.shape)
            if MK.combined_direction_1d(np.ascontiguousarray(p, dtype=float),
                                        np.ascontiguousarray(g, dtype=float), *b._flat,
                                        b.lo, b.hi, b.level, self.a1, self.a2, self._a3h3,
                                        self.ones_coeffs, RESIDUE_SHARE, s):
                return s
            return mass_fix(s)
        return mass_fix(self.preconditioner(p)(g))


class CombinedPreconditioner:
    r"""The map :math:`v \mapsto W\operatorname{diag}(\lambda)(W^\top v - c\,W^\top\mathbf 1)`,
    :math:`c = \mathbf 1^\top M v / \mathbf 1^\top M \mathbf 1` (in coefficients), for fixed
    eigenvalues :math:`\lambda`; its parts are attributes, for the fused kernels of
    :mod:`densflow.newton`."""

    def __init__(self, basis, lam, ones, project=True):
        self.basis, self.lam, self.ones = basis, lam, ones
        self.lam1 = lam * ones
        # project=False: the plain operator M(p) v = W diag(lam) W^T v
        self.den = dot(self.lam1, ones) if project else 0.0

    def __call__(self, v):
        v = np.ascontiguousarray(v, dtype=float)
        out = np.empty_like(v)
        b = self.basis
        (MK.combined_1d if v.ndim == 1 else MK.combined_2d)(
            v, b.lo, b.hi, b.level, self.lam, self.ones, self.lam1, self.den, out)
        return out


_REGISTRY = {
    "wasserstein": Wasserstein,
    "fisher_rao": FisherRao,
    "mahalanobis": Mahalanobis,
    "combined": Combined,
}
NAMES = tuple(_REGISTRY)


def get(metric):
    """Return a :class:`Metric` from a name or pass a metric object through."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        key = metric.strip().lower().replace("-", "_")
        if key in _REGISTRY:
            return _REGISTRY[key]()
        raise ValueError(f"metric must be one of {', '.join(map(repr, NAMES))} or a Metric object; got {metric!r}")
    raise TypeError(f"metric must be a name or a densflow.metrics.Metric, got {type(metric).__name__}")
