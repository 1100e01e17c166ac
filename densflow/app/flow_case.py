r"""Flow case files: time-accurate gradient flows (:func:`densflow.flow`) run by
``densflow run`` into one HDF5 run file, drawn by ``densflow plot`` (``--movie`` for
an animation).

A flow case file defines a module-level ``case``; one flow reads::

    import densflow as df
    from densflow.app.flow_case import FlowCase

    case = FlowCase(
        title="Heat flow on the circle",
        grid=df.Grid(256),
        energy={"entropy": 1.0},                      # the Wasserstein flow of it: heat
        p0="1 + 0.8*cos(2*pi*x)",
        flow=dict(t_end=0.02, rtol=1e-4, save_times=[0, 0.002, 0.005, 0.01, 0.02]),
    )

and several flows on one grid (a figure row each) are :class:`Flow` objects::

    case = FlowCase(grid=df.Grid(256), title="Porous medium", flows=[
        Flow("m = 2", energy={"porous_medium": 2}, p0=BARENBLATT_2, t_end=0.01),
        Flow("m = 3", energy={"porous_medium": 3}, p0=BARENBLATT_3, t_end=0.01),
    ])

``flow=dict(...)`` and ``Flow(...)`` take :func:`densflow.flow`'s keywords (``t_end``,
``metric``, ``scheme``, ``dt``, ``rtol``, ``atol``, ``save_times``, ``save_every``,
``mobility``, ``max_steps``, ``newton``, ``t0``) and may override the case's
``energy`` and ``p0``.

The energy is a dict of terms (or a densflow energy object), each a weight or a
parameter, or a ``(weight, parameter)`` pair; a potential ``V`` is an expression of the
coordinates (``x`` in 1D, ``x1, x2`` in 2D), as in grid cases:

=================  ========================  ==========================================
key                value                      term
=================  ========================  ==========================================
``entropy``        weight                     ``KL(grid, uniform)``: :math:`\int\rho\log\rho`
``kl``             V or (weight, V)           ``KL(grid, gibbs(V))``: entropy + potential
``potential``      V or (weight, V)           ``Potential(grid, V)``: :math:`\sum_s p_s V(x_s)`
``porous_medium``  m or (weight, m)           ``PorousMedium(grid, m)``: :math:`\int\rho^m/(m-1)`
``interaction``    W or (weight, W)           ``Interaction(grid, W)``; W an expression of
                                              the displacement ``d`` (1D) or ``d1, d2``
                                              (2D), wrapped into [-1/2, 1/2)
``dirichlet``      V or (weight, V)           ``Dirichlet(grid, gibbs(V))``
``h_minus1``       V or (weight, V)           ``HMinus1(grid, gibbs(V))``
=================  ========================  ==========================================

``p0`` is ``"uniform"`` or an expression of a positive function (normalised to a
probability vector). The recipes are recorded as text in the run file with the case's
source; resuming a run file (``densflow run CASE --resume``) is refused when anything
that changes the arithmetic changed.
"""

import numbers

import numpy as np

from .. import energies as _energies
from ..core.grid import Grid
from ..energies.interaction import displacements as kernel_displacements
from ..flows import FLOW_METRICS, SCHEMES
from ..flows.proximal import COMBINED_REFUSAL
from .case import CaseError, evaluate_expression  # noqa: F401  (CaseError: the loader's error)

__all__ = ["Flow", "FlowCase", "build_energy", "displacements", "ENERGY_TERMS"]

#: The keys of an energy dict and what each builds (see the module notes).
ENERGY_TERMS = ("entropy", "kl", "potential", "porous_medium", "interaction", "dirichlet",
                "h_minus1")
#: Keywords of :func:`densflow.flow` a flow of a case may set.
FLOW_OPTIONS = ("t_end", "metric", "scheme", "dt", "rtol", "atol", "save_times", "save_every",
                "mobility", "max_steps", "newton", "t0")
#: Terms that come with the free energies (issue 24): their class in densflow.energies.
_FREE = {"potential": "Potential", "porous_medium": "PorousMedium", "interaction": "Interaction"}


def displacements(grid):
    """The displacements of an interaction kernel's expression
    (:func:`densflow.energies.interaction.displacements`: wrapped into ``[-1/2, 1/2)`` on
    the torus, unwrapped and padded on a box), as its variables: ``{"d": ...}`` or
    ``{"d1", "d2"}``."""
    d = kernel_displacements(grid)
    if grid.dim == 1:
        return {"d": d}
    return {"d1": d[0], "d2": d[1]}


def _split(key, value):
    """``(weight, parameter)`` of an energy dict entry."""
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"energy {key!r} must be a parameter or a (weight, parameter) pair, "
                             f"got {value!r}")
        weight, param = value
    else:
        weight, param = 1.0, value
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not (
            np.isfinite(weight) and weight >= 0):
        raise ValueError(f"energy {key!r}: the weight must be a finite number >= 0, got {weight!r}")
    return float(weight), param


def _term_class(key):
    name = _FREE[key]
    cls = getattr(_energies, name, None)
    if cls is None:
        raise ValueError(f"energy {key!r} needs densflow.energies.{name}, which this densflow "
                         "does not have (it comes with the free energies, issue 24)")
    return cls


def build_energy(spec, grid):
    """The energy of a case's ``energy`` (a dict of terms, see the module notes, or a
    densflow energy or term on ``grid``) and its recipe as text."""
    if hasattr(spec, "evaluate") and hasattr(spec, "grid"):
        if spec.grid != grid:
            raise ValueError(f"energy lives on {spec.grid!r}, the case's grid is {grid!r}")
        return spec, f"object {spec!r}"
    if not isinstance(spec, dict) or not spec:
        raise TypeError(f"energy must be a non-empty dict of terms (keys among "
                        f"{', '.join(ENERGY_TERMS)}) or a densflow energy, got {spec!r}")
    terms = []
    for key, value in spec.items():
        if key not in ENERGY_TERMS:
            raise ValueError(f"energy has an unknown term {key!r}; the terms are "
                             f"{', '.join(ENERGY_TERMS)}")
        if key == "entropy":
            weight, _ = _split(key, (value, None))
            term = _energies.KL(grid, grid.uniform())
        else:
            weight, param = _split(key, value)
            term = _make_term(key, param, grid)
        terms.append((weight, term))
    energy = sum((a * t for a, t in terms), start=0)
    if not any(a > 0 for a, _ in terms):
        raise ValueError(f"energy {spec!r}: all weights are zero")
    recipe = ", ".join(f"{k}: {v!r}" for k, v in spec.items())
    return energy, "{" + recipe + "}"


def _make_term(key, param, grid):
    if key == "porous_medium":
        return _term_class(key)(grid, param)
    if key == "interaction":
        w = evaluate_expression(param, grid, name="energy 'interaction' W",
                                variables=displacements(grid))
        return _term_class(key)(grid, w)
    values = evaluate_expression(param, grid, name=f"energy {key!r} V")
    if key == "potential":
        return _term_class(key)(grid, values)
    mu = grid.gibbs(lambda *_: values)
    cls = {"kl": _energies.KL, "dirichlet": _energies.Dirichlet, "h_minus1": _energies.HMinus1}[key]
    return cls(grid, mu)


def initial_density(recipe, grid, name="p0"):
    """The probability vector of a ``p0`` recipe: ``"uniform"`` or an expression."""
    if isinstance(recipe, str) and recipe == "uniform":
        return grid.uniform()
    values = evaluate_expression(recipe, grid, name=name)
    if not np.all(values > 0):
        raise ValueError(f"{name} {recipe!r} must be positive on the whole grid")
    return values / values.sum()


class Flow:
    """One flow of a :class:`FlowCase` (a row of its figure).

    Parameters
    ----------
    label : str
        Names the flow in the figure and in messages.
    energy : dict, energy or None
        The flow's energy (see the module notes); ``None``: the case's.
    p0 : str or None
        The initial density's recipe; ``None``: the case's.
    **options
        Keywords of :func:`densflow.flow` (:data:`FLOW_OPTIONS`); ``t_end`` is required.
    """

    def __init__(self, label="flow", energy=None, p0=None, **options):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"Flow label must be a non-empty string, got {label!r}")
        unknown = sorted(set(options) - set(FLOW_OPTIONS))
        if unknown:
            raise ValueError(f"Flow {label!r}: unknown option(s) {', '.join(unknown)}; the "
                             f"options are {', '.join(FLOW_OPTIONS)}")
        if "t_end" not in options:
            raise ValueError(f"Flow {label!r} needs t_end (the final time)")
        metric = options.get("metric", "wasserstein")
        if metric == "combined":
            raise ValueError(f"Flow {label!r}: {COMBINED_REFUSAL}")
        if metric not in FLOW_METRICS:
            raise ValueError(f"Flow {label!r}: metric must be one of {FLOW_METRICS}, got {metric!r}")
        scheme = options.get("scheme", "bdf2")
        if scheme not in SCHEMES:
            raise ValueError(f"Flow {label!r}: scheme must be one of {SCHEMES}, got {scheme!r}")
        if options.get("save_times") is not None:
            options["save_times"] = [float(v) for v in np.asarray(options["save_times"]).ravel()]
        self.label, self.energy_spec, self.p0, self.options = label, energy, p0, dict(options)

    def __repr__(self):
        return f"Flow({self.label!r}, t_end={self.options['t_end']!r})"


class FlowCase:
    """Time-accurate flows on one grid, recorded in one run file.

    Parameters
    ----------
    grid : Grid
        The periodic grid.
    flow : dict or None
        One flow: :func:`densflow.flow`'s keywords (``t_end`` required).
    flows : sequence of Flow or None
        Several flows (give ``flow`` or ``flows``).
    energy : dict, energy or None
        The energy of the flows that do not set their own.
    p0 : str
        The initial density of the flows that do not set their own (default uniform).
    name, title : str or None
        As for :class:`densflow.app.case.Case`.
    """

    kind = "flow"

    def __init__(self, grid, flow=None, flows=None, energy=None, p0="uniform", name=None,
                 title=None):
        if not isinstance(grid, Grid):
            raise TypeError(f"FlowCase grid must be a densflow.Grid, got {type(grid).__name__}")
        if (flow is None) == (flows is None):
            raise ValueError("FlowCase needs flow=dict(...) (one flow) or flows=[Flow(...), ...], "
                             "not both")
        if flow is not None:
            if not isinstance(flow, dict):
                raise TypeError(f"FlowCase flow must be a dict of densflow.flow keywords, got "
                                f"{type(flow).__name__}")
            flow = dict(flow)
            flows = [Flow(flow.pop("label", "flow"), flow.pop("energy", None), flow.pop("p0", None),
                          **flow)]
        flows = list(flows)
        if not flows or not all(isinstance(f, Flow) for f in flows):
            raise ValueError("FlowCase flows must be a non-empty list of densflow.app.flow_case.Flow")
        labels = [f.label for f in flows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"FlowCase flows must have distinct labels, got {labels}")
        self.grid, self.flows, self.energy, self.p0 = grid, flows, energy, p0
        self.name, self.title, self.path = name, title, None
        for f in flows:  # build once: a broken recipe fails when the case loads
            if (f.energy_spec if f.energy_spec is not None else energy) is None:
                raise ValueError(f"Flow {f.label!r} has no energy (give energy= to the case or "
                                 "to the flow)")
            self.build(f)
        # what densflow run reads of a grid case
        self.method, self.newton = None, None

    def build(self, flow):
        """``(energy, p0, recipes)`` of one of the case's flows."""
        energy, e_recipe = build_energy(flow.energy_spec if flow.energy_spec is not None
                                        else self.energy, self.grid)
        recipe = flow.p0 if flow.p0 is not None else self.p0
        p0 = initial_density(recipe, self.grid)
        p_recipe = "uniform" if recipe == "uniform" else f"normalised {recipe}"
        return energy, p0, {"energy_recipe": e_recipe, "p0_recipe": p_recipe}

    def group(self, index):
        """The run file group of flow ``index`` (from 1)."""
        return "flow" if len(self.flows) == 1 else f"flow{index}"

    def notes(self):
        return []

    def __repr__(self):
        return f"FlowCase(name={self.name!r}, grid={self.grid!r}, {len(self.flows)} flows)"


def run_flow_case(case, path, resume=False, overwrite=False, progress=None, report=None):
    """Integrate every flow of ``case`` into ``path`` (as
    :func:`densflow.app.runner.run_case` does for grid cases); returns the
    :class:`~densflow.flows.FlowResult` list (a failed flow's ``info["error"]`` holds its
    message)."""
    from ..flows import flow as integrate
    from .runner import case_file_attributes, finish_case_file, open_case_file

    root = {**case_file_attributes(case), "case_kind": "flow"}
    results = []
    with open_case_file(case, path, root, resume, overwrite) as recorder:
        total = len(case.flows)
        for i, f in enumerate(case.flows, start=1):
            label = f"[{i}/{total}] {f.label}"
            energy, p0, recipes = case.build(f)
            record = recorder.flow(case.group(i), attrs={"label": f.label, "index": i, **recipes})
            was = record.status if resume else None
            res = integrate(energy, p0, out=record, resume=resume,
                            on_step=progress(label) if progress else None, **f.options)
            if res.failed:
                res.info["error"] = res.message
            results.append(res)
            if report is not None:
                report(label, res, was)
        finish_case_file(recorder, root, resume, results)
    return results
