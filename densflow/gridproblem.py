r"""Grid energies as a problem kind of the descent loop (:mod:`densflow.optim.kinds`).

:func:`prepare` checks a grid run's arguments and binds what the loop steps with: the
metric (:mod:`densflow.metrics`), wrapped in the :class:`~densflow.metrics.Safeguard`
unless ``safeguard=None``, and for ``method="newton"`` the Newton–Krylov steps of
:mod:`densflow.newton` preconditioned by it, for ``method="newton_potential"`` Newton's
method in the potential (:mod:`densflow.potential_newton`), which falls back to that
metric. :func:`setup_attributes` describes the run for its run file. Importing
:mod:`densflow` registers this kind.
"""

from collections.abc import Mapping

import numpy as np

from . import metrics as _metrics
from .core.validation import check_safeguard
from .core.wavelets import cached_basis
from .energies import Energy, Term
from .energies.mirror import MirrorLines
from .metrics.diagonal import HessianDiagonal, applies as _diagonal_applies
from .io.runrecord import string_array
from .optim.failure import NUMERICAL_FAILURES
from .optim.kinds import Bound, register
from .optim.linesearch import Armijo
from .optim.loop import check_loop_settings
from .newton import Newton, NewtonStep, compact_applies
from .free_newton import FreeNewtonStep
from .compact_fused import fused_compact_step
from .potential_fused import fused_step
from .potential_newton import PotentialLines, PotentialNewton, PotentialNewtonStep, applies as _potential_applies

__all__ = ["prepare", "make_bound", "LazyBound", "positive_density", "setup_attributes", "check_method",
           "resolve_method", "METHODS", "DEFAULT_METHOD", "NEWTON_METHODS", "NEWTON_LINE_SEARCH"]

#: Methods of :func:`densflow.solve` on grid energies: the metric's natural-gradient step
#: (``"gradient"``), Newton–Krylov in the density preconditioned by the metric
#: (``"newton"``, :mod:`densflow.newton`), Newton in the potential
#: (``"newton_potential"``, :mod:`densflow.potential_newton`; energies with an H⁻¹
#: term), or ``"auto"``: ``"newton_potential"`` where it applies, else ``"newton"`` —
#: on a free energy (:func:`densflow.metrics.diagonal.applies`) preconditioned by the
#: inverse Hessian diagonal and stepping along exponential curves
#: (:mod:`densflow.energies.mirror`), the metric giving the first-order fallback.
METHODS = ("auto", "gradient", "newton", "newton_potential")
#: The second-order methods (their settings are a :class:`densflow.newton.Newton`).
NEWTON_METHODS = ("newton", "newton_potential")
#: The method of :func:`densflow.solve` (and of case files) unless one is chosen.
DEFAULT_METHOD = "auto"

#: The line search of ``method="newton"`` unless one is given: the textbook sufficient
#: decrease constant (a full Newton step on a quadratic decreases E by exactly half
#: of ``s.g``, which the paper's ``c1 = 1/2`` would reject at rounding level).
NEWTON_LINE_SEARCH = Armijo(c1=1e-4)
#: The settings of ``method="newton_potential"`` unless given (frozen: shared by runs).
_DEFAULT_POTENTIAL = PotentialNewton()


def check_method(method, newton):
    """Return the method name after checking it and its settings."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    if newton is not None:
        if not isinstance(newton, Newton):
            raise TypeError(f"newton must be a densflow.newton.Newton instance or None, "
                            f"got {type(newton).__name__}")
        if method not in NEWTON_METHODS + ("auto",):
            raise ValueError("newton= settings need method='newton', 'newton_potential' or 'auto'")
    return method


def resolve_method(method, energy):
    """The method ``"auto"`` stands for on ``energy``: ``"newton_potential"`` when the
    energy has an H⁻¹ term (:func:`densflow.potential_newton.applies`), else
    ``"newton"``; other names are returned as they are."""
    if method != "auto":
        return method
    return "newton_potential" if _potential_applies(energy) else "newton"


def prepare(energy, p0, metric="combined", line_search=None, tol=None, gtol=None, max_iter=1000,
            safeguard=0.1, method=None, newton=None):
    """A grid energy prepared for the loop (the arguments are :func:`densflow.solve`'s)."""
    if isinstance(energy, Term):
        energy = 1.0 * energy
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be a densflow Energy or term, got {type(energy).__name__}")
    energy.check_weights()
    p = energy.grid.check_density(p0, name="p0").copy()
    metric = _metrics.get(metric)
    auto = method in (None, "auto")
    method = resolve_method(check_method(DEFAULT_METHOD if method is None else method, newton),
                            energy)
    free = auto and method == "newton" and _diagonal_applies(energy)
    max_iter, line_search = check_loop_settings(
        max_iter, tol, gtol, line_search, (Armijo,),
        default=NEWTON_LINE_SEARCH if method in NEWTON_METHODS else None)
    safeguard = check_safeguard(safeguard)

    lazy = _lazy_applies(metric, energy, newton, method, free)
    operator = LazyBound(metric, energy) if lazy else metric.bind(energy)
    if safeguard is not None:
        operator = _metrics.Safeguard(operator, energy, floor=safeguard)
    if method == "newton":
        step = NewtonStep
        if free:  # free energies: diagonal preconditioner, exponential search curves
            operator, step = HessianDiagonal(operator, energy), FreeNewtonStep
        operator = step(energy, operator, Newton() if newton is None else newton, tol)
    elif method == "newton_potential":
        operator = PotentialNewtonStep(energy, operator, _DEFAULT_POTENTIAL if newton is None
                                       else newton, tol)
    setup = LazySetup(lambda: setup_attributes(energy, metric, operator, tol, gtol, max_iter,
                                               line_search))
    return make_bound(energy, p, operator, metric.name, line_search, max_iter, setup)


def _lazy_applies(metric, energy, newton, method="newton_potential", free=False):
    """Whether a Newton method may bind ``metric`` lazily: Newton in the potential, or
    Newton in ``p`` with the compact solve (:mod:`densflow.newton_compact`, not on free
    energies), the two that use the metric only for revival and fallback steps; the
    combined metric on a periodic grid (its bound has no ``requires_positive``, ``floor``
    or ``bound`` that the set-up would read) with a linear solver other than
    ``"metric"``, on terms that declare their wavelet diagonal (a term without one is
    refused by the bind before the run, not at a late fallback)."""
    kind = "auto" if newton is None else getattr(newton, "preconditioner", "auto")
    if method == "newton":
        if free or kind not in ("auto", "compact") or not compact_applies(energy):
            return False
    elif method != "newton_potential":
        return False
    declared = all(type(t).wavelet_diagonal is not Term.wavelet_diagonal
                   for _, t in energy.active_terms
                   if t.kind == "mahalanobis" and not getattr(t, "diagonal_is_h3", False))
    return (type(metric) is _metrics.Combined and energy.grid.periodic and declared
            and kind in ("auto", "direct", "fourier", "saddle"))


class LazyBound:
    r"""The combined metric bound to ``energy`` at its first use. Newton in the potential
    with a direct or Fourier solver needs the metric only for its rarely taken
    first-order fallback and revival steps; binding it (the wavelet transform of
    :math:`\mathbf 1` and the terms' wavelet diagonal) took ≈ 10 µs, 2 % of a 1D n=512
    paper-panel solve. Binding is deterministic, so a late bind steps exactly as an
    early one. :attr:`basis` (the resolved level the run file records) is the shared
    cached basis the bind uses, made at once: a wavelet or level the grid cannot take is
    refused before the run, as by an eager bind."""

    #: how many times a LazyBound bound its metric (tests count binds)
    binds = 0

    def __init__(self, metric, energy):
        self.metric, self.energy = metric, energy
        self.basis = cached_basis(energy.grid, metric.wavelet, metric.level)
        self._bound = None

    @property
    def bound_now(self):
        """The bound metric (bound on the first call)."""
        if self._bound is None:
            self._bound = self.metric.bind(self.energy)
            LazyBound.binds += 1
        return self._bound

    def __getattr__(self, name):
        if name.startswith("_") or name in ("requires_positive", "floor", "bound"):
            raise AttributeError(name)  # the probes of the wrappers: absent, unbound
        return getattr(self.bound_now, name)


class LazySetup(Mapping):
    """The run's :func:`setup_attributes`, made at the first look (only a recorded run
    reads them: 2–3 % of a 1D n=512 paper-panel solve otherwise)."""

    def __init__(self, make):
        self._make, self._attrs = make, None

    def _get(self):
        if self._attrs is None:
            self._attrs = self._make()
        return self._attrs

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())


def positive_density(p):
    """``None`` for a density with positive entries, else what is wrong with it (a
    safeguarded energy without a KL term may step outside the positive orthant; the
    loop then returns the last positive iterate, not converged)."""
    low = p.min()
    if low > 0:
        return None
    bad = int(np.count_nonzero(~(p > 0)))
    return f"the density has {bad} entries <= 0 or NaN (min {low:.3e}), not a probability vector"


def make_bound(energy, p, operator, metric_name, line_search, max_iter, setup=None):
    """The :class:`~densflow.optim.kinds.Bound` of ``energy`` stepped by ``operator``: a
    bound metric (or its safeguard), whose ``direction(p, g)`` the loop takes, or a
    :class:`~densflow.newton.NewtonStep`, whose fallback, first trial step and inner
    counts the loop uses too."""
    problem = PotentialLines(energy, operator) if isinstance(operator, PotentialNewtonStep) else energy
    mirror = isinstance(getattr(operator, "inner", None), HessianDiagonal)
    if mirror:
        problem = MirrorLines(energy)
    bound = Bound(problem=problem, x0=p, metric=metric_name, line_search=line_search,
                  setup={} if setup is None else setup, reference=energy.mu,
                  failures=NUMERICAL_FAILURES, max_iter=max_iter,
                  positive=getattr(operator, "requires_positive", True),
                  admissible=positive_density,
                  direction=lambda p, g, gap: operator.direction(p, g),
                  after_step=getattr(operator, "after_step", None))
    if isinstance(operator, NewtonStep):
        bound.method = "newton"
        bound.direction = operator.direction
        bound.fallback = operator.fallback
        bound.fallback_ready = lambda: operator.stats["cg_iterations"] > 0
        if problem is energy and bound.after_step is None:
            bound.fused_step = fused_compact_step(operator, energy, line_search)
        if isinstance(operator, PotentialNewtonStep):
            bound.method = "newton_potential"
            bound.fallback_ready = operator.fallback_ready
            if problem.loose_start:
                bound.start = problem.start
            if bound.after_step is None:
                bound.fused_step = fused_step(operator, energy, line_search, bound.positive)
        bound.first_step = lambda p, s, search: operator.first_step(p, s, search.eta0)
        if mirror:  # the curves stay positive: no fraction-to-the-boundary cut
            bound.first_step = lambda p, s, search: search.eta0
        bound.inner_counts = lambda: operator.stats
    return bound


def setup_attributes(energy, metric, operator, tol, gtol, max_iter, line_search):
    """The attributes of a grid run that identify its numerics (a resume must match them;
    the loop adds ``snapshot_every``)."""
    desc = energy.describe()
    attrs = {
        "metric": metric.name,
        "grid_n": energy.grid.n,
        "grid_dim": energy.grid.dim,
        **({} if energy.grid.periodic else {"grid_boundary": energy.grid.boundary}),
        "energy_terms": string_array(d["term"] for d in desc),
        "energy_kinds": string_array(d["kind"] for d in desc),
        "energy_weights": np.array([d["weight"] for d in desc], dtype=float),
        "weights": np.array(list(energy.weights.values()), dtype=float),
        "tol": np.nan if tol is None else float(tol),
        "gtol": np.nan if gtol is None else float(gtol),
        "max_iter": int(max_iter),
        "line_search": "armijo",
        "line_search_eta0": float(line_search.eta0),
        "line_search_shrink": float(line_search.shrink),
        "line_search_c1": float(line_search.c1),
        "line_search_min_step": float(line_search.min_step),
    }
    params = metric.params()
    if "wavelet" in params:
        attrs["metric_wavelet"] = str(params["wavelet"])
    attrs["safeguard_floor"] = float(getattr(operator, "floor", np.nan))
    newton = getattr(operator, "settings", None)  # a densflow.newton.NewtonStep
    attrs["method"] = ("gradient" if newton is None else "newton_potential"
                       if isinstance(operator, PotentialNewtonStep) else "newton")
    if newton is not None:
        attrs.update({f"newton_{key}": value for key, value in newton.params().items()})
    if isinstance(operator, PotentialNewtonStep):
        attrs["newton_preconditioner"] = operator.kind  # as resolved
        attrs["newton_direct_form"] = operator.form
    if isinstance(getattr(operator, "inner", None), HessianDiagonal):
        attrs["newton_preconditioner"] = HessianDiagonal.kind
        attrs["newton_line"] = MirrorLines.kind
    basis = getattr(getattr(operator, "bound", operator), "basis", None)  # resolved level
    if basis is not None:
        attrs["metric_level"] = int(basis.level)
    elif params.get("level") is not None:
        attrs["metric_level"] = int(params["level"])
    return attrs


register(lambda obj: isinstance(obj, (Energy, Term)), prepare, "grid energy")
