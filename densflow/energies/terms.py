r"""Energies over probability vectors on a periodic grid (:ref:`energies`).

Three terms, each of one *kind* (the natural metric that matches its Hessian):

* :class:`HMinus1` (Wasserstein-type): :math:`E_1(p) = \tfrac12 (p-\mu)^\top L_\mu^+ (p-\mu)`,
  :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`.
* :class:`KL` (Fisher–Rao-type): :math:`E_2(p) = \sum_s p_s \log(p_s/\mu_s)`.
* :class:`Dirichlet` (Mahalanobis-type): :math:`E_3(p) = \tfrac12 (p-\mu)^\top A (p-\mu)`,
  :math:`A = -\Delta = \sum_d D_d^\top D_d`.

Terms combine with non-negative scalars and ``+`` into an :class:`Energy`
:math:`E = \sum_k \alpha_k E_k`; the weights then live in the energy, where the combined
metric reads them. Along a search line :math:`p - \eta s` the quadratic terms are exact
quadratics in :math:`\eta`, so a line-search trial costs :math:`O(N)` (one linear solve per
direction, none per trial); see :meth:`Energy.evaluate` and :meth:`Energy.line`.
"""

import numbers

import numpy as np

from ..kernels import energy as EK
from ..core.validation import check_probability_vector, check_weight
from ..core.grid import Grid
from .lines import EnergyLine, KLLine, QuadraticLine, State
from ..core.operators import WeightedLaplacianSolver, dot, laplacian

__all__ = ["Term", "HMinus1", "KL", "Dirichlet", "Energy", "KINDS"]

KINDS = ("wasserstein", "fisher_rao", "mahalanobis")

#: Relative residual of the 2D solve :math:`L_\mu^+ s` along a search direction.
LINE_RTOL = 1e-8


class Term:
    """Base class of an energy term on a grid with reference probability vector ``mu``."""

    kind = None
    #: Short name used in records and messages.
    name = None

    def __init__(self, grid, mu):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a densflow.Grid, got {type(grid).__name__}")
        self.grid = grid
        self.mu = check_probability_vector(mu, grid.shape, name="mu").copy()
        self.mu.setflags(write=False)

    # public, checked ---------------------------------------------------------------
    def value(self, p, check=True):
        """Energy at the density ``p`` (checked unless ``check=False``)."""
        return self.evaluate(self._checked(p, check)).value

    def gradient(self, p, check=True):
        """Euclidean gradient :math:`\\partial E/\\partial p` at ``p``."""
        return self.evaluate(self._checked(p, check)).gradient

    def _checked(self, p, check):
        if check:
            return self.grid.check_density(p)
        return np.asarray(p, dtype=float)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`\nabla^2 E(p)\, v` (exact; ``rtol`` bounds the relative residual of
        an inner linear solve where the term needs one)."""
        raise NotImplementedError

    # algebra -----------------------------------------------------------------------
    def __mul__(self, alpha):
        if not isinstance(alpha, numbers.Real):
            return NotImplemented
        return Energy([(alpha, self)])

    __rmul__ = __mul__

    def __add__(self, other):
        return Energy([(1.0, self)]) + other

    def __radd__(self, other):
        if isinstance(other, numbers.Real) and other == 0:  # sum([...])
            return Energy([(1.0, self)])
        return NotImplemented

    def __repr__(self):
        return f"{type(self).__name__}({self.grid!r}, mu)"


class _Quadratic(Term):
    r"""A term :math:`\tfrac12 (p-\mu)^\top H (p-\mu)` with :math:`H` symmetric PSD."""

    def _apply(self, r):
        raise NotImplementedError

    def evaluate(self, p):
        r = p - self.mu
        u = self._apply(r)
        return State(p, 0.5 * dot(r, u), u)

    def line(self, state, s):
        return QuadraticLine(state, s, self._apply_to_direction(s))

    def _apply_to_direction(self, s):
        return self._apply(s)

    def hessian_product(self, p, v, rtol=None):
        """:math:`H v`: the Hessian of a quadratic does not depend on ``p``."""
        return self._apply(v)


class HMinus1(_Quadratic):
    r"""Weighted :math:`\dot H^{-1}(\mu)` energy (Wasserstein-type).

    .. math::

        E_1(p) = \tfrac12 (p-\mu)^\top L_\mu^+ (p-\mu), \qquad
        \nabla E_1(p) = L_\mu^+ (p-\mu),

    with :math:`L_\mu = \sum_d D_d^\top \operatorname{diag}(\mu) D_d`. The pseudo-inverse
    is applied exactly in 1D (cumulative sums) and by FFT-preconditioned conjugate
    gradients in 2D (:class:`densflow.core.operators.WeightedLaplacianSolver`); the gradient
    has zero mean.
    """

    kind = "wasserstein"
    name = "HMinus1"

    def __init__(self, grid, mu):
        super().__init__(grid, mu)
        self.solver = WeightedLaplacianSolver(self.mu, grid.n)

    def _apply(self, r):
        return self.solver.solve(r)

    def _apply_to_direction(self, s):
        # the line search's L^+ s: 1e-8 suffices, since the solver re-evaluates the
        # gradient from the density every few iterations (2D; exact in 1D)
        return self.solver.solve(s, rtol=LINE_RTOL)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`L_\mu^+ v` (2D: CG to relative residual ``rtol``, default the solver's)."""
        return self.solver.solve(v, rtol=rtol)


class Dirichlet(_Quadratic):
    r"""Dirichlet energy (Mahalanobis-type).

    .. math::

        E_3(p) = \tfrac12 (p-\mu)^\top A (p-\mu), \qquad \nabla E_3(p) = A (p-\mu),
        \qquad A = -\Delta = \sum_d D_d^\top D_d .
    """

    kind = "mahalanobis"
    name = "Dirichlet"

    def _apply(self, r):
        return laplacian(r, self.grid.n)


class KL(Term):
    r"""Kullback–Leibler divergence (Fisher–Rao-type).

    .. math::

        E_2(p) = \sum_s p_s \log\frac{p_s}{\mu_s}, \qquad
        \nabla E_2(p) = \log\frac{p}{\mu} + 1,

    and :math:`E_2 = +\infty` where some :math:`p_s \le 0`.
    """

    kind = "fisher_rao"
    name = "KL"

    def evaluate(self, p):
        p = np.ascontiguousarray(p, dtype=float)
        log_ratio = np.empty(p.shape)
        gradient = np.empty(p.shape)
        value = EK.kl_state(p, self.mu, log_ratio, gradient)
        return State(p, value, gradient, log_ratio)

    def line(self, state, s):
        return KLLine(self, state, s)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`\operatorname{diag}(1/p)\, v`, with ``p`` floored at 1e-300 (for a
        subnormal ``p``, :math:`1/p` overflows)."""
        return v / np.maximum(p, 1e-300)


class Energy:
    r"""A non-negative combination :math:`E = \sum_k \alpha_k E_k` of terms on one grid.

    Build it with ``alpha * Term(...)`` and ``+``. ``E.weights`` gives the total weight
    of each kind, :math:`(\alpha_1, \alpha_2, \alpha_3)` for the Wasserstein-,
    Fisher–Rao- and Mahalanobis-type terms, which the combined metric reads.
    """

    def __init__(self, terms):
        terms = [(check_weight(a, name="weight"), t) for a, t in terms]
        if not terms:
            raise ValueError("an Energy needs at least one term")
        for _, t in terms:
            if not isinstance(t, Term):
                raise TypeError(f"energy terms must be densflow terms, got {type(t).__name__}")
        grid = terms[0][1].grid
        for _, t in terms[1:]:
            if t.grid != grid:
                raise ValueError(f"all terms must live on one grid, got {grid!r} and {t.grid!r}")
        self.terms = tuple(terms)
        self.grid = grid
        self._active = tuple((a, t) for a, t in self.terms if a > 0)
        self._has_kl = any(t.kind == "fisher_rao" for _, t in self._active)
        # a search line can backtrack in one compiled call when the active terms are
        # quadratics and at most one KL term (densflow.energies.lines.EnergyLine.backtrack)
        kl = [k for k, (_, t) in enumerate(self._active) if isinstance(t, KL)]
        self._line_kl = kl[0] if len(kl) == 1 else None
        self._fused_line = len(kl) <= 1 and all(isinstance(t, (KL, _Quadratic))
                                                for _, t in self._active)

    # algebra -----------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, Term):
            other = Energy([(1.0, other)])
        if not isinstance(other, Energy):
            return NotImplemented
        return Energy(self.terms + other.terms)

    def __radd__(self, other):
        if isinstance(other, numbers.Real) and other == 0:  # sum([...])
            return self
        return NotImplemented

    def __mul__(self, alpha):
        if not isinstance(alpha, numbers.Real):
            return NotImplemented
        alpha = check_weight(alpha, name="weight")
        return Energy([(alpha * a, t) for a, t in self.terms])

    __rmul__ = __mul__

    # properties --------------------------------------------------------------------
    @property
    def weights(self):
        """Total weight per kind: ``{"wasserstein": α1, "fisher_rao": α2, "mahalanobis": α3}``."""
        w = dict.fromkeys(KINDS, 0.0)
        for a, t in self.terms:
            w[t.kind] += a
        return w

    @property
    def active_terms(self):
        """The ``(weight, term)`` pairs with a positive weight."""
        return self._active

    @property
    def min_value(self):
        """The minimum value (0, at μ) when all terms share μ, else ``None``."""
        mus = [t.mu for _, t in self.active_terms]
        if mus and all(np.array_equal(mus[0], m) for m in mus[1:]):
            return 0.0
        return None

    @property
    def mu(self):
        """The common reference measure (the minimiser) when all terms share it."""
        return self.active_terms[0][1].mu if self.min_value is not None else None

    def check_weights(self):
        """Raise ``ValueError`` unless some weight is positive."""
        if not self.active_terms:
            raise ValueError(
                "all weights of the energy are zero; at least one term needs a weight > 0"
            )

    def describe(self):
        """Plain description of the terms and weights (for records)."""
        return [{"term": t.name, "kind": t.kind, "weight": a} for a, t in self.terms]

    # evaluation --------------------------------------------------------------------
    def value(self, p, check=True):
        """:math:`E(p)`; ``p`` is checked to be a positive probability vector unless
        ``check=False`` (e.g. for finite differences off the simplex)."""
        return self.evaluate(self._checked(p, check)).value

    def gradient(self, p, check=True):
        """Euclidean gradient :math:`\\nabla E(p) = \\sum_k \\alpha_k \\nabla E_k(p)`."""
        return self.evaluate(self._checked(p, check)).gradient

    def _checked(self, p, check):
        self.check_weights()
        if check:
            return self.grid.check_density(p)
        return np.asarray(p, dtype=float)

    def evaluate(self, p):
        """Value and gradient at ``p`` as a :class:`State` (no input checks)."""
        parts = [t.evaluate(p) for _, t in self.active_terms]
        return self._combine(p, parts)

    def _combine(self, p, parts):
        value = 0.0
        grad = np.empty(self.grid.shape)
        for k, ((a, _), st) in enumerate(zip(self._active, parts)):
            value += a * st.value
            (EK.add_scaled if k else EK.scaled_into)(grad, a, np.ascontiguousarray(st.gradient))
        return State(p, float(value), grad, parts)

    def hessian_product(self, p, v, rtol=None):
        r""":math:`\nabla^2 E(p)\,v = \alpha_1 L_\mu^+ v + \alpha_2 v/p + \alpha_3 A v` (no input
        checks; ``rtol``: relative residual of the inner :math:`L_\mu^+` solve in 2D)."""
        out = np.zeros(self.grid.shape)
        for a, t in self.active_terms:
            out += a * t.hessian_product(p, v, rtol=rtol)
        return out

    def line(self, state, s, positive=True, known=None):
        """The restriction :math:`\\eta \\mapsto E(p - \\eta s)` as an :class:`EnergyLine`.

        With ``positive=False`` an energy without a KL term is evaluated outside the
        positive orthant too (its terms are quadratics defined for every ``p``); an
        energy with a KL term is always :math:`+\\infty` there. ``known``: ``{index of
        a quadratic term in active_terms: its operator applied to s}``, products the
        caller already has (they save those terms' solves).
        """
        return EnergyLine(self, state, s, positive=positive or self._has_kl, known=known)

    def __repr__(self):
        inner = " + ".join(f"{a:g} * {t.name}" for a, t in self.terms)
        return f"Energy({inner})"
