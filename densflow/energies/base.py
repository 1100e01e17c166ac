r"""The base of every energy term (:ref:`energies`, :ref:`free-energies`): :class:`Term`,
with its declaration of curvature for the metrics and its algebra (``alpha * term``,
``+``, which build an :class:`~densflow.energies.energy.Energy`), and the quadratic
terms' common part."""

import numbers

import numpy as np

from ..core.grid import Grid
from ..core.operators import dot
from ..core.validation import check_probability_vector
from .lines import QuadraticLine, State

__all__ = ["Term", "KINDS"]

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
        from .energy import Energy  # (energy.py imports this module)

        return Energy([(alpha, self)])

    __rmul__ = __mul__

    def __add__(self, other):
        from .energy import Energy

        return Energy([(1.0, self)]) + other

    def __radd__(self, other):
        if isinstance(other, numbers.Real) and other == 0:  # sum([...])
            from .energy import Energy

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
