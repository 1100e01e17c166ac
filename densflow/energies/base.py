r"""Energy terms and their sums (:ref:`energies`, :ref:`free-energies`): the base class
:class:`Term`, with its declaration of curvature for the metrics; the quadratic terms'
common part; and :class:`Energy`, :math:`E = \sum_k \alpha_k E_k`, built by
``alpha * term`` and ``+``, which collects the terms' declarations for the metrics and
Newton's method and evaluates the sum and its lines. The terms themselves live in
:mod:`densflow.energies.terms` (the three distances to a reference measure),
:mod:`~densflow.energies.porous`, :mod:`~densflow.energies.potential` and
:mod:`~densflow.energies.interaction`."""

import numbers

import numpy as np

from ..core.grid import Grid
from ..core.operators import dot
from ..core.validation import check_probability_vector, check_weight
from ..kernels import energy as EK
from .lines import EnergyLine, QuadraticLine, State

__all__ = ["Term", "Energy", "EnergyView", "KINDS"]

KINDS = ("wasserstein", "fisher_rao", "mahalanobis")


class Term:
    r"""Base class of an energy term on a grid, with an optional reference probability
    vector ``mu`` (the term's minimiser, where it vanishes; ``None``: no known minimum).

    A term declares its curvature for the metrics (:ref:`free-energies`) by its ``kind``:

    * ``"wasserstein"``: a Hessian like :math:`L_p^+`; enters the combined metric as
      :math:`\alpha/(H_1 p)_i` (:class:`HMinus1`).
    * ``"fisher_rao"``: a diagonal Hessian :math:`\operatorname{diag}(1/q(p))`, with the
      *mobility* :math:`q` of :meth:`mobility`; enters as :math:`\alpha/(H_2 q)_i`
      (:class:`KL`: :math:`q = p`).
    * ``"mahalanobis"``: a constant Hessian; enters as :math:`\alpha\, d_i` with the
      constant wavelet diagonal :math:`d_i = w_i^\top H w_i` of :meth:`wavelet_diagonal`
      (:class:`Dirichlet`: :math:`h_3`).
    * anything else (``"linear"``): no curvature.

    ``positive_domain`` says that the term is :math:`+\infty` outside the positive
    orthant (the solver then keeps :math:`p > 0`).
    """

    kind = None
    #: Short name used in records and messages.
    name = None
    #: Whether the term is +inf outside the positive orthant.
    positive_domain = False
    #: Whether the term is convex (an attractive interaction is not).
    convex = True
    #: Whether :meth:`line` returns an exact quadratic in the step (``slope`` and
    #: ``curvature`` attributes), which the compiled backtracking can take.
    quadratic_line = False
    #: Whether the term is a KL divergence :math:`\sum_s p_s\log(p_s/\mu_s)` (Hessian
    #: :math:`\operatorname{diag}(1/p)`, mobility :math:`p`; the compiled backtracking
    #: takes its line).
    kl_divergence = False

    def __init__(self, grid, mu=None):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a densflow.Grid, got {type(grid).__name__}")
        self.grid = grid
        if mu is None:
            self.mu = None
        else:
            self.mu = check_probability_vector(mu, grid.shape, name="mu").copy()
            self.mu.setflags(write=False)

    def mobility(self, p):
        r"""``"fisher_rao"`` terms: :math:`q(p)` with Hessian :math:`\operatorname{diag}(1/q)`."""
        raise NotImplementedError

    def wavelet_diagonal(self, basis):
        r"""``"mahalanobis"`` terms: :math:`(w_i^\top H w_i)_i` in the pyramid layout of
        ``basis`` (:class:`densflow.core.wavelets.WaveletBasis`), clipped at 0."""
        raise NotImplementedError

    def label(self):
        """The term's name with the parameters that identify it (for records)."""
        return self.name

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

    def change(self, state, q, log_ratio):
        r"""``(E(q) - E(p), state at q)`` from the term's ``state`` at ``p``, with
        ``log_ratio`` :math:`= \log(q/p)`; a term overrides it to sum the change as a
        difference, accurate far below the rounding of :math:`E` (the exponential search
        curves of :mod:`densflow.energies.mirror`)."""
        new = self.evaluate(q)
        return new.value - state.value, new

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
    r"""A term :math:`\tfrac12 (p-c)^\top H (p-c)` with :math:`H` symmetric, about the
    centre :math:`c` (``center``: :math:`\mu` unless a subclass sets another)."""

    quadratic_line = True

    @property
    def center(self):
        return self.mu

    def _apply(self, r):
        raise NotImplementedError

    def evaluate(self, p):
        r = p - self.center
        u = self._apply(r)
        return State(p, 0.5 * dot(r, u), u)

    def line(self, state, s):
        return QuadraticLine(state, s, self._apply_to_direction(s), self.center)

    def _apply_to_direction(self, s):
        return self._apply(s)

    def hessian_product(self, p, v, rtol=None):
        """:math:`H v`: the Hessian of a quadratic does not depend on ``p``."""
        return self._apply(v)

    def change(self, state, q, log_ratio):
        r""":math:`\delta^\top \nabla E(p) + \tfrac12 \delta^\top H\delta`,
        :math:`\delta = q - p` (one product with :math:`H`)."""
        d = q - state.p
        hd = self._apply(d)
        delta = dot(d, state.gradient) + 0.5 * dot(d, hd)
        return delta, State(q, state.value + delta, state.gradient + hd)


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
        mus = tuple(t.mu for _, t in self.active_terms)
        kept = getattr(self, "_min_value_kept", None)  # the terms' mu are read-only copies
        if kept is not None and len(kept[0]) == len(mus) and all(
                a is b for a, b in zip(kept[0], mus)):
            return kept[1]
        value = None
        if not any(m is None for m in mus) and mus and all(
                np.array_equal(mus[0], m) for m in mus[1:]):
            value = 0.0
        self._min_value_kept = (mus, value)
        return value

    @property
    def stops_on_change(self):
        """Whether :func:`densflow.solve`'s ``tol`` bounds the relative energy change of
        a step (no known minimum value) instead of :math:`E - E_{\\min}`."""
        return self.min_value is None

    def kkt_residual(self, state):
        r""":math:`\max_s |\nabla E(p) - \overline{\nabla E(p)}|` of a :class:`State`: zero
        at a stationary point in the interior of the simplex."""
        g = state.gradient
        mean = g.sum() / g.size  # max |g - mean| from the extremes: no temporaries
        return float(max(g.max() - mean, mean - g.min()))

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


class EnergyView:
    """An energy as a Newton step shows it to the loop: everything is the wrapped
    energy's except what a subclass overrides (its :meth:`line`)."""

    def __init__(self, energy):
        self.energy = energy

    def __getattr__(self, name):
        return getattr(self.energy, name)

    def evaluate(self, p):
        return self.energy.evaluate(p)

    @property
    def min_value(self):
        return self.energy.min_value
