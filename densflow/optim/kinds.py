r"""The protocol between the descent loop and a problem kind, and the registry of kinds.

The loop (:mod:`densflow.optim.loop`) knows no problem kind. A *kind* — grid energies
(:mod:`densflow.gridproblem`), parametric problems (:mod:`densflow.parametric.problem`),
or anything else — registers a ``prepare`` function with :func:`register`;
:func:`densflow.solve` finds the kind of its first argument with :func:`lookup` and calls

.. code-block:: python

    bound = prepare(problem, x0, metric=..., line_search=..., tol=..., gtol=...,
                    max_iter=..., **options)

which checks what belongs to the kind and returns a :class:`Bound`: everything the loop
needs, and nothing it has to interpret.

What the loop asks of ``bound.problem``: ``evaluate(x)`` returning a
:class:`densflow.core.state.State` (``p``, ``value``, ``gradient``), ``line(state, s,
positive)`` returning an object with ``delta(eta)`` and ``state_at(eta)`` (the line
searches of :mod:`densflow.optim.linesearch` use it), and ``min_value`` (a float or
``None``).
"""

from dataclasses import dataclass

__all__ = ["Bound", "register", "lookup", "kinds"]


def _no_first_step(x, s, line_search):
    return None


@dataclass
class Bound:
    r"""A problem prepared for the descent loop.

    Attributes
    ----------
    problem : object
        ``evaluate``, ``line`` and ``min_value`` as described in the module docstring.
    x0 : ndarray
        The checked starting point (a fresh array the loop may keep).
    direction : callable
        ``direction(x, g, gap)``: the step direction :math:`s` at ``x`` (the loop moves
        to :math:`x - \eta s`); ``gap`` is :math:`E(x) - E_{\min}` or ``None``.
    metric : str
        The metric's name, for results and records.
    line_search : object
        A step rule with ``search(line, slope, eta0)`` and ``min_step``.
    setup : dict
        The attributes that identify the run's numerics in a run file (a resume must
        match them).
    reference : ndarray or None
        An array recorded with the run and compared on resume (a grid energy's μ).
    failures : tuple of exception types
        Failures that end the run with a message instead of propagating.
    fallback : callable or None
        ``fallback(x, g)``: a first-order direction the loop takes when ``direction``
        gives no descent, or when no step along it is accepted while
        ``fallback_ready()`` is true.
    fallback_ready : callable
        Whether the last direction did inner work worth replacing by the fallback.
    first_step : callable
        ``first_step(x, s, line_search)``: the step rule's first trial (``None``: its
        own, e.g. ``Armijo.eta0``).
    after_step : callable or None
        ``after_step(line, eta, slope)`` after every accepted step.
    inner_counts : callable or None
        The inner work of the last direction, a dict over
        :data:`densflow.optim.result.INNER_HISTORIES` (``None``: zeros, not recorded).
    positive : bool
        Whether trial points outside the positive orthant are refused.
    admissible : callable or None
        ``admissible(x)``: ``None`` when ``x`` is an acceptable answer, else why not
        (a grid density with entries ``<= 0``). The loop never returns an iterate that
        is not: it then returns the last admissible one since its (re)start, with
        ``converged=False`` and the reason in the message (``None``: every iterate is).
    checkpoint, restore : callable or None
        ``checkpoint()`` returns the problem's state as text (a fresh-batch problem's
        generator), taken just before the state at iteration 0 and at every snapshot is
        evaluated and recorded with the snapshot; ``restore(text)`` puts it back when a
        run resumes from that snapshot, so that it continues bit for bit.
    start : callable or None
        ``start(x0)``: the state the run starts from at iteration 0 (a fresh run, or one
        resumed at its snapshot 0, which holds ``x0``); a problem may start from a point
        computed from ``x0`` (Newton in the potential: :meth:`densflow.potential_newton.
        PotentialLines.start`). ``None``: ``problem.evaluate(x0)``.
    fused_step : callable or None
        ``fused_step(state, gap)``: the whole step from ``state`` in one call, or
        ``None`` for the general path this time; ``(s, slope, eta, new_state)`` with
        ``eta = None`` when no trial step was accepted (the loop then tries
        ``fallback``). Only for problems without ``after_step``; it must take the
        step the general path would (:mod:`densflow.potential_fused`).
    method : str
        The method's name (``info["method"]`` of the result).
    max_iter : int
        The checked cap on the number of steps.
    """

    problem: object
    x0: object
    direction: object
    metric: str
    line_search: object
    setup: dict
    reference: object = None
    failures: tuple = ()
    fallback: object = None
    fallback_ready: object = lambda: False
    first_step: object = _no_first_step
    after_step: object = None
    inner_counts: object = None
    positive: bool = True
    admissible: object = None
    checkpoint: object = None
    restore: object = None
    start: object = None
    fused_step: object = None
    method: str = "gradient"
    max_iter: int = 1000


_KINDS = []


def register(accepts, prepare, name):
    """Register a problem kind.

    Parameters
    ----------
    accepts : callable
        ``accepts(obj)`` is true for the objects of this kind.
    prepare : callable
        Returns a :class:`Bound` (see the module docstring for its arguments).
    name : str
        The kind's name, used in the error for an object of no kind.
    """
    for k, (_, _, existing) in enumerate(_KINDS):
        if existing == name:
            _KINDS[k] = (accepts, prepare, name)
            return
    _KINDS.append((accepts, prepare, name))


def lookup(obj):
    """The ``prepare`` function of the kind of ``obj``, or ``None``."""
    for accepts, prepare, _ in _KINDS:
        if accepts(obj):
            return prepare
    return None


def kinds():
    """The names of the registered kinds."""
    return tuple(name for _, _, name in _KINDS)
