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
returns an operator whose ``direction(p, g)`` is called every iteration.
"""

import numpy as np

from ..kernels import metric as MK
from ..core.operators import apply_laplacian_pinv, dot, inverse_symbol, laplacian_symbol, weighted_laplacian
from ..core.wavelets import cached_basis

__all__ = ["Metric", "Wasserstein", "FisherRao", "Mahalanobis", "Combined", "Safeguard", "get", "NAMES",
           "mass_fix"]


def mass_fix(s, m1=None):
    r"""Remove the rounding residue :math:`t = \sum_s s_s` of a direction.

    Along ``m1`` when given (Fisher–Rao: along ``p``). Otherwise evenly, ``t/N`` per
    entry, except that an entry smaller than that share takes only the fraction
    ``|s_i| N / (RESIDUE_SHARE |t|)`` of it, so that it changes by about its own size at
    most: a nearly empty cell (where the safeguarded directions are proportional to
    ``p``) stays nearly empty. An even share there would be orders of magnitude above
    :math:`p_i`, and positivity would then block every step. When no entry is that
    small (every run from a density that does not nearly vanish, the paper's included)
    the arithmetic is the even spread, bit for bit.
    """
    if m1 is None:
        out = np.empty_like(s)
        if MK.spread_residue(s, RESIDUE_SHARE, out):  # the common case, in one pass
            return out
    total = s.sum()
    if total == 0.0:
        return s
    if m1 is None:
        share = RESIDUE_SHARE * abs(total) / s.size
        magnitude = np.abs(s)
        if magnitude.min() >= share:
            return s - total / s.size
        m1 = np.minimum(1.0, magnitude / share)
    denom = m1.sum()
    if denom > 0 and np.isfinite(denom):
        return s - (total / denom) * m1
    return s - total / s.size


#: An entry of a direction takes a full share of its rounding residue only above this
#: many even shares (see :func:`mass_fix`). Measured on a σ = 0.01 bump floored at
#: 1e-6 … 5e-324 (2D, 64², weights (1, 3e-4, 1e-4)): 838–1295 iterations with 1,
#: 1186–3200 with 10, 1240–3315 with 1e4.
RESIDUE_SHARE = 1.0

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


class BlendedPreconditioner:
    r"""The safeguard's map :math:`v \mapsto \tilde M(v - c\mathbf 1)` with
    :math:`\tilde M = D M D + F`, :math:`F = (I - D^2)\operatorname{diag}(p)/\alpha_2`
    (see :class:`Safeguard`); ``operator`` applies :math:`M(p)`."""

    def __init__(self, operator, d, f):
        self.operator, self.d, self.f = operator, d, f
        self.w = operator(d)
        self.den = dot(d, self.w) + f.sum()

    def __call__(self, v):
        d, f = self.d, self.f
        u = self.operator(d * v)
        c = (dot(d, u) + dot(f, v)) / self.den
        return d * (u - c * self.w) + f * (v - c)


class Safeguard:
    r"""Makes a bound metric usable on rough and nearly vanishing densities.

    Let :math:`\delta = \tau / N` (``floor`` :math:`=\tau`, a fraction of the uniform
    density). Where :math:`p \ge \delta` everywhere, the direction is exactly the
    wrapped metric's. Otherwise:

    * energies with a KL term (:math:`\alpha_2 > 0`), which keep :math:`p > 0`: the
      metric is blended with the Fisher–Rao metric of the KL term in the cells where
      :math:`p < \delta` (with a porous-medium term: :math:`\operatorname{diag}(p)/\alpha_2`
      replaced by the inverse :math:`\operatorname{diag}(q)` of the Fisher–Rao-like
      terms' Hessian, see :meth:`densflow.energies.Energy.fisher_rao_part`),

      .. math::

          \tilde M = D\,M(p)\,D + (I - D^2)\operatorname{diag}(p)/\alpha_2, \qquad
          D = \operatorname{diag}(\min(1, p/\delta)),

      so that in a nearly empty cell :math:`s_i \approx p_i (g_i - c)/\alpha_2`: it shrinks with
      :math:`p_i` and the step is not throttled by positivity. (A wavelet of a coarse
      scale spans full and empty cells alike; its diagonal entries :math:`H_1 p`,
      :math:`H_2 p` average :math:`p` over the support and do not vanish where
      :math:`p` does, which is what stalls the plain metric.)
    * energies without a KL or porous-medium term are defined for every :math:`p`; the
      solver then does not enforce positivity, and the metric's :math:`p`-dependent
      parts are evaluated at the floored density :math:`\max(p, \delta)`.

    Both :math:`\tilde M` and :math:`M(\max(p,\delta))` are symmetric positive
    semidefinite, so the direction :math:`s = \tilde M (g - c\mathbf 1)` conserves mass
    and has :math:`s\cdot g \ge 0` as before.
    """

    def __init__(self, bound, energy, floor=0.1):
        if not (isinstance(floor, (int, float)) and 0 < floor <= 1):
            raise ValueError(f"floor must be a number in (0, 1], got {floor!r}")
        self.bound = bound
        self.floor = float(floor)
        self.alpha2, self.mobility = energy.fisher_rao_part()
        self.positive_domain = energy.positive_domain
        self.delta = self.floor / energy.grid.size

    @property
    def requires_positive(self):
        """Whether iterates must stay in the positive orthant (energies with KL or a
        porous-medium term)."""
        return self.positive_domain

    def preconditioner(self, p):
        """The safeguarded map :math:`v \\mapsto \\tilde M (v - c\\mathbf 1)` (see
        :meth:`densflow.metrics._Bound.preconditioner`), formed once for ``p``."""
        if p.min() >= self.delta:
            return self.bound.preconditioner(p)
        if not self.positive_domain:
            return self.bound.preconditioner(np.maximum(p, self.delta))
        d = np.minimum(1.0, p / self.delta)
        q = p if self.mobility is None else self.mobility(p)
        return BlendedPreconditioner(self.bound.operator(p), d, (1.0 - d * d) * q / self.alpha2)

    def direction(self, p, g):
        if p.min() >= self.delta:
            return self.bound.direction(p, g)
        if not self.positive_domain:
            return self.bound.direction(np.maximum(p, self.delta), g)
        return mass_fix(self.preconditioner(p)(g))


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
