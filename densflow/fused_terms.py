"""What the compiled whole steps (:mod:`densflow.potential_fused`,
:mod:`densflow.compact_fused`) share: finding the one term of each standard kind in an
energy, and building the energy's new :class:`~densflow.core.state.State` from what a
kernel computed."""

from .core.state import State
from .energies.terms import KL, Dirichlet, HMinus1

__all__ = ["one_term_each", "new_state", "POTENTIAL_KINDS", "COMPACT_KINDS"]


def one_term_each(energy, kinds):
    """``[(index, weight, term)]`` of the energy's active term of each kind in ``kinds``
    (``(None, 0.0, None)`` for a kind it lacks), or ``None`` when it has two of a kind
    or a term of another kind."""
    found = {kind: [] for kind in kinds}
    for j, (a, t) in enumerate(energy.active_terms):
        kind = found.get(type(t))
        if kind is None or kind:
            return None
        kind.append((j, a, t))
    return [v[0] if v else (None, 0.0, None) for v in found.values()]


def new_state(q, grad, count, terms, values, arrays):
    """The energy's :class:`~densflow.core.state.State` at ``q`` with gradient ``grad``
    and ``count`` active terms. ``terms``: :func:`one_term_each`'s entries; ``values``
    and ``arrays`` per entry: the term's value and ``(gradient,)`` or, for KL,
    ``(gradient, log ratio)``. The value is :math:`\\sum_k a_k v_k` in the entries'
    order (an absent term adds :math:`0 \\cdot 0`)."""
    parts = [None] * count
    value = 0.0
    for (j, a, t), v, held in zip(terms, values, arrays):
        value += a * v
        if j is not None:
            parts[j] = State(q, v, *held)
    return State(q, float(value), grad, parts)


#: The kinds of Newton in the potential's compiled steps, in their kernels' order.
POTENTIAL_KINDS = (HMinus1, KL, Dirichlet)
#: The kinds of the compact Newton's compiled step.
COMPACT_KINDS = (KL, Dirichlet)
