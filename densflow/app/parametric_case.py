r"""Parametric case files: experiments on push-forward models, run by ``densflow run``
into one HDF5 run file (issue 16).

A parametric case file defines a module-level ``case``::

    from densflow.app.parametric_case import Experiment, ParametricCase

    def make(seed):                       # the problem and its start for one seed
        ...
        return problem, theta0

    case = ParametricCase(
        title="...",
        experiments=[Experiment("RWP", make, metric=lambda seed: RWP(damping=1e-3),
                                line_search=FixedStep(0.5), max_iter=60)],
        seeds=range(5),
    )

``densflow run FILE`` solves every (experiment, seed) with :func:`densflow.solve` and
records each run as the group ``GROUP/LABEL/seedS`` (attributes ``experiment``,
``group``, ``seed``); ``densflow inspect`` lists them and ``densflow plot`` draws, per
group, the recorded value and every monitor against the iteration (median and range over
seeds). Budgets are iteration counts and seeds, never seconds: wall time is recorded, not
used to stop.

An experiment's ``monitor(problem, p)`` returns numbers the loss does not show (a
distance to the target, a divergence on held-out samples); they are computed after the
run on every snapshot of its parameters and on its last iterate, and stored in the run's
subgroup ``monitors`` (datasets ``iterations`` and one per name; :func:`read_monitors`).
A case's ``figure(runfile_path, png_path)`` draws its own figure from the run file:
``densflow run CASE --figure PNG`` uses it (``--resume`` on a complete file redraws it
without running anything); ``densflow plot`` draws the generic figure.
"""

import numbers
import os

import numpy as np

from ..optim.linesearch import Armijo, FixedStep
from ..io.runfile import MONITORS, read_monitors
from ..parametric.problem import STEP_RULES

__all__ = ["Experiment", "ParametricCase", "run_parametric_case", "read_monitors"]


class Experiment:
    """One method of a parametric case: a curve in the figure.

    Parameters
    ----------
    label : str
        Name of the method (unique within its group).
    make : callable
        ``make(seed)`` returns ``(problem, p0)``.
    metric : str, metric object or callable
        As :func:`densflow.solve`'s ``metric``; a callable ``metric(seed)`` builds a fresh
        object per run (for stateful ones: ``Adam``, KWNG's random basis).
    line_search : Armijo, FixedStep, TrustRegion or None
    max_iter : int
        The budget (iterations).
    tol, gtol : float or None
        Stopping rules of :func:`densflow.solve`.
    group : str
        The figure panel (e.g. a learning rate).
    seeds : iterable of int or None
        This experiment's seeds; ``None``: the case's (e.g. ``[0]`` for a deterministic
        method among stochastic ones).
    monitor : callable or None
        ``monitor(problem, p)`` returns a dict ``{name: number}`` (names: letters, digits
        and ``_``), recorded at every snapshot and at the last iterate of each run.
    """

    def __init__(self, label, make, metric="euclidean", line_search=None, max_iter=100, tol=None,
                 gtol=None, group="runs", seeds=None, monitor=None):
        for name, v in (("label", label), ("group", group)):
            if not isinstance(v, str) or not v.strip() or "/" in v:
                raise ValueError(f"Experiment {name} must be a non-empty string without '/', got {v!r}")
        if not callable(make):
            raise TypeError("Experiment make must be callable: make(seed) -> (problem, p0)")
        if line_search is not None and not isinstance(line_search, (Armijo, FixedStep) + STEP_RULES):
            raise TypeError("Experiment line_search must be Armijo, FixedStep, TrustRegion or None")
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
            raise ValueError(f"Experiment max_iter must be an integer >= 0, got {max_iter!r}")
        if monitor is not None and not callable(monitor):
            raise TypeError("Experiment monitor must be callable: monitor(problem, p) -> dict")
        self.seeds = None if seeds is None else _check_seeds(seeds, "Experiment seeds")
        self.label, self.make, self.metric, self.group = label, make, metric, group
        self.line_search, self.max_iter, self.tol, self.gtol = line_search, int(max_iter), tol, gtol
        self.monitor = monitor

    def metric_for(self, seed):
        m = self.metric
        return m(seed) if callable(m) and not hasattr(m, "direction") else m

    def __repr__(self):
        return f"Experiment({self.label!r}, group={self.group!r}, max_iter={self.max_iter})"


class ParametricCase:
    """Experiments × seeds, recorded in one run file.

    Parameters
    ----------
    experiments : sequence of Experiment
    seeds : iterable of int
    name, title : str or None
        As for :class:`densflow.app.case.Case` (``name`` defaults to the file's stem).
    snapshot_every : int
        Store the parameters every this many iterations (and evaluate the monitors there).
    figure : callable or None
        ``figure(runfile_path, png_path)`` draws the case's own figure from its run file
        (``densflow run --figure``); ``None``: the generic figure of ``densflow plot``.
    """

    kind = "parametric"

    def __init__(self, experiments, seeds=(0,), name=None, title=None, snapshot_every=10,
                 figure=None):
        experiments = list(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise ValueError("ParametricCase experiments must be a non-empty list of Experiment")
        keys = [(e.group, e.label) for e in experiments]
        if len(set(keys)) != len(keys):
            raise ValueError("ParametricCase experiments must have distinct (group, label)")
        self.experiments = experiments
        self.seeds = _check_seeds(seeds, "ParametricCase seeds")
        if figure is not None and not callable(figure):
            raise TypeError("ParametricCase figure must be callable: figure(runfile_path, png_path)")
        self.figure = figure
        self.name, self.title = name, title
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ValueError(f"snapshot_every must be an integer >= 1, got {snapshot_every!r}")
        self.snapshot_every = snapshot_every
        self.path = None
        # what densflow run reads of a grid case
        self.method, self.newton = "gradient", None

    def notes(self):
        return []

    def seeds_of(self, experiment):
        """The seeds of ``experiment`` (its own, else the case's)."""
        return self.seeds if experiment.seeds is None else experiment.seeds

    def runs(self):
        """The ``(experiment, seed)`` pairs in the order they run."""
        return [(e, s) for e in self.experiments for s in self.seeds_of(e)]

    def __repr__(self):
        return (f"ParametricCase(name={self.name!r}, {len(self.experiments)} experiments, "
                f"{len(self.seeds)} seeds)")


def _check_seeds(seeds, name):
    try:
        out = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an iterable of integers, got {seeds!r}") from None
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must be non-empty and distinct, got {out}")
    return out


def run_parametric_case(case, path, resume=False, overwrite=False, progress=None, report=None):
    """Solve every (experiment, seed) of ``case`` into ``path`` (as
    :func:`densflow.app.runner.run_case` does for grid cases); returns the results."""
    from .runner import case_file_attributes, finish_case_file, open_case_file
    from ..solving import solve

    root = {**case_file_attributes(case), "case_kind": "parametric"}
    results = []
    total = len(case.runs())
    with open_case_file(case, path, root, resume, overwrite,
                        snapshot_every=case.snapshot_every) as recorder:
        for done, (exp, seed) in enumerate(case.runs(), start=1):
            label = f"[{done}/{total}] {exp.group}/{exp.label} seed {seed}"
            name = f"{exp.group}/{exp.label}/seed{seed}"
            record = recorder.run(name, attrs={"experiment": exp.label, "group": exp.group,
                                               "seed": seed})
            was = record.status if resume else None
            problem, p0 = exp.make(seed)
            res = solve(problem, p0, exp.metric_for(seed), tol=exp.tol, gtol=exp.gtol,
                        max_iter=exp.max_iter, line_search=exp.line_search, out=record,
                        resume=resume, callback=progress(label) if progress else None)
            if exp.monitor is not None:
                _record_monitors(recorder, name, problem, exp.monitor, res)
            results.append(res)
            if report is not None:
                report(label, res, was)
        finish_case_file(recorder, root, resume, results)
    return results


def _record_monitors(recorder, name, problem, monitor, res):
    """Evaluate ``monitor`` on the run's snapshots and its last iterate; write them to the
    run's subgroup ``monitors`` (kept as it is when it already holds those iterations)."""
    g = recorder.file[name]
    its = [int(k) for k in g["snapshot_iterations"][:]]
    points = [g["snapshots"][i] for i in range(len(its))]
    if res.n_iter not in its:
        its.append(int(res.n_iter))
        points.append(np.asarray(res.p, dtype=float))
    old = g.get(MONITORS)
    if old is not None and "iterations" in old and list(old["iterations"][:]) == its:
        return
    from ..optim.failure import NUMERICAL_FAILURES
    from ..parametric.problem import PARAMETRIC_FAILURES

    got = []
    for p in points:
        try:
            got.append(monitor(problem, p))
        except NUMERICAL_FAILURES + PARAMETRIC_FAILURES:  # e.g. a diverged generator: NaN
            got.append(None)
    names = next((list(v) for v in got if isinstance(v, dict)), None)
    if names is None:
        if all(v is None for v in got):
            return
        raise TypeError(f"monitor must return a dict of numbers, got {got[0]!r}")
    values = {key: [] for key in names}
    for v in got:
        if v is not None and (not isinstance(v, dict) or list(v) != names or not names):
            raise ValueError(f"monitor must return a non-empty dict with the same names at "
                             f"every iterate ({names}), got {v!r}")
        for key in names:
            values[key].append(np.nan if v is None else float(v[key]))
    for key in names:
        if not (isinstance(key, str) and key.isidentifier() and key.isascii()):
            raise ValueError(f"monitor names must be ASCII identifiers, got {key!r}")
    with recorder.writing(8 * len(its) * (len(values) + 1)) as f:
        if old is not None:
            del g[MONITORS]
        m = g.create_group(MONITORS)
        m.create_dataset("iterations", data=np.asarray(its, dtype=np.int64))
        m["iterations"].attrs.update({"units": "1", "description": "iteration of each value"})
        for key, v in values.items():
            m.create_dataset(key, data=np.asarray(v, dtype=float))
        f.flush()


def is_parametric_file(runfile):
    """Whether a read run file holds parametric runs."""
    kind = runfile.attrs.get("case_kind")
    if isinstance(kind, bytes):
        kind = kind.decode()
    return kind == "parametric" or any(str(r.attrs.get("kind", "")) == "parametric" for r in runfile.runs)


def save_parametric_figure(runfile, path, case=None):
    """Draw ``case.figure`` when the case has one (``densflow run``), else the generic
    figure of :func:`densflow.app.parametric_figures.save_seeds_figure`."""
    if case is not None and getattr(case, "figure", None) is not None:
        case.figure(runfile.path, os.fspath(path))
        return path
    from .parametric_figures import save_seeds_figure

    return save_seeds_figure(runfile, path)
