r"""Sums of energy terms (:ref:`energies`): :class:`Energy`, :math:`E = \sum_k \alpha_k
E_k`, built by ``alpha * term`` and ``+``; it collects the terms' declarations of
curvature for the metrics and Newton's method, and evaluates the sum and its lines."""

import numbers

import numpy as np

from ..kernels import energy as EK
from ..core.validation import check_weight
from .base import KINDS, Term
from .lines import EnergyLine, State

__all__ = ["Energy"]


class Energy:
    r"""A non-negative combination :math:`E = \sum_k \alpha_k E_k` of terms on one grid.

    Build it with ``alpha * Term(...)`` and ``+``. ``E.weights`` gives the total weight
    of each kind, :math:`(\alpha_1, \alpha_2, \alpha_3)` for the Wasserstein-,
    Fisher–Rao- and Mahalanobis-type terms (for records); the metrics read the terms'
    own declarations through :attr:`wasserstein_weight`, :meth:`fisher_rao_part` and
    :meth:`wavelet_diagonal`.
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
        self._has_kl = any(t.kl_divergence for _, t in self._active)
        #: Whether E = +inf outside the positive orthant (a KL or porous-medium term).
        self.positive_domain = any(t.positive_domain for _, t in self._active)
        #: Whether every active term is convex.
        self.convex = all(t.convex for _, t in self._active)
        # a search line can backtrack in one compiled call when the active terms are
        # exact quadratics along the line and at most one KL term
        # (densflow.energies.lines.EnergyLine.backtrack)
        kl = [k for k, (_, t) in enumerate(self._active) if t.kl_divergence]
        self._line_kl = kl[0] if len(kl) == 1 else None
        self._fused_line = len(kl) <= 1 and all(t.kl_divergence or t.quadratic_line
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
            if t.kind in w:
                w[t.kind] += a
        return w

    # the terms' curvature, as the metrics and Newton's method read it ------------------
    @property
    def wasserstein_weight(self):
        """Total weight of the ``"wasserstein"`` terms (:math:`\\alpha/(H_1 p)_i`)."""
        return self.weights["wasserstein"]

    def fisher_rao_part(self):
        r"""The ``"fisher_rao"`` terms as ``(a, mobility)``: their Hessian is
        :math:`a\,\operatorname{diag}(1/q(p))` with ``q = mobility(p)``; ``mobility`` is
        ``None`` for :math:`q = p` (only KL terms: ``a`` the sum of their weights).
        Otherwise ``a = 1`` and :math:`1/q = \sum_k \alpha_k / q_k(p)`. ``(0.0, None)``
        without such terms.
        """
        terms = [(a, t) for a, t in self.active_terms if t.kind == "fisher_rao"]
        if all(t.kl_divergence for _, t in terms):
            return self.weights["fisher_rao"], None

        def mobility(p):
            curvature = sum(a / t.mobility(p) for a, t in terms)
            return 1.0 / curvature

        return 1.0, mobility

    def wavelet_diagonal(self, basis):
        r"""The ``"mahalanobis"`` terms' constant wavelet diagonal :math:`\sum_k
        \alpha_k (w_i^\top H_k w_i)_i` (Dirichlet terms: their summed weight times
        :math:`h_3`)."""
        a3 = sum(a for a, t in self.terms if getattr(t, "diagonal_is_h3", False))
        out = a3 * basis.h3
        for a, t in self.active_terms:
            if t.kind == "mahalanobis" and not getattr(t, "diagonal_is_h3", False):
                out = out + a * t.wavelet_diagonal(basis)
        return out

    @property
    def active_terms(self):
        """The ``(weight, term)`` pairs with a positive weight."""
        return self._active

    @property
    def min_value(self):
        """The minimum value (0, at μ) when all terms share μ, else ``None`` (also when
        a term has no reference measure: free energies)."""
        mus = [t.mu for _, t in self.active_terms]
        if any(m is None for m in mus):
            return None
        if mus and all(np.array_equal(mus[0], m) for m in mus[1:]):
            return 0.0
        return None

    @property
    def stops_on_change(self):
        """Whether :func:`densflow.solve`'s ``tol`` bounds the relative energy change of
        a step (no known minimum value) instead of :math:`E - E_{\\min}`."""
        return self.min_value is None

    def kkt_residual(self, state):
        r""":math:`\max_s |\nabla E(p) - \overline{\nabla E(p)}|` of a :class:`State`: zero
        at a stationary point in the interior of the simplex."""
        g = state.gradient
        return float(np.max(np.abs(g - g.mean())))

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
        return [{"term": t.label(), "kind": str(t.kind), "weight": a} for a, t in self.terms]

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

        With ``positive=False`` an energy without a KL or porous-medium term is evaluated
        outside the positive orthant too (its terms are defined for every ``p``); an
        energy with one is always :math:`+\\infty` there. ``known``: ``{index of
        a quadratic term in active_terms: its operator applied to s}``, products the
        caller already has (they save those terms' solves).
        """
        return EnergyLine(self, state, s, positive=positive or self.positive_domain, known=known)

    def __repr__(self):
        inner = " + ".join(f"{a:g} * {t.name}" for a, t in self.terms)
        return f"Energy({inner})"
