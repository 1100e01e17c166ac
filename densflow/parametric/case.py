r"""Parametric case files: experiments on push-forward models, run by ``densflow run``
into one HDF5 run file (issue 16).

A parametric case file defines a module-level ``case``::

    from densflow.parametric.case import Experiment, ParametricCase

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
group, the recorded value against the iteration (median and range over seeds). Budgets
are iteration counts and seeds, never seconds: wall time is recorded, not used to stop.
"""

import numbers
import os

import numpy as np

from ..linesearch import Armijo, FixedStep
from .problem import STEP_RULES

__all__ = ["Experiment", "ParametricCase", "run_parametric_case"]


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
    """

    def __init__(self, label, make, metric="euclidean", line_search=None, max_iter=100, tol=None,
                 gtol=None, group="runs"):
        for name, v in (("label", label), ("group", group)):
            if not isinstance(v, str) or not v.strip() or "/" in v:
                raise ValueError(f"Experiment {name} must be a non-empty string without '/', got {v!r}")
        if not callable(make):
            raise TypeError("Experiment make must be callable: make(seed) -> (problem, p0)")
        if line_search is not None and not isinstance(line_search, (Armijo, FixedStep) + STEP_RULES):
            raise TypeError("Experiment line_search must be Armijo, FixedStep, TrustRegion or None")
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
            raise ValueError(f"Experiment max_iter must be an integer >= 0, got {max_iter!r}")
        self.label, self.make, self.metric, self.group = label, make, metric, group
        self.line_search, self.max_iter, self.tol, self.gtol = line_search, int(max_iter), tol, gtol

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
        As for :class:`densflow.case.Case` (``name`` defaults to the file's stem).
    snapshot_every : int
        Store the parameters every this many iterations.
    """

    kind = "parametric"

    def __init__(self, experiments, seeds=(0,), name=None, title=None, snapshot_every=10):
        experiments = list(experiments)
        if not experiments or not all(isinstance(e, Experiment) for e in experiments):
            raise ValueError("ParametricCase experiments must be a non-empty list of Experiment")
        keys = [(e.group, e.label) for e in experiments]
        if len(set(keys)) != len(keys):
            raise ValueError("ParametricCase experiments must have distinct (group, label)")
        self.experiments = experiments
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("ParametricCase seeds must not be empty")
        self.name, self.title = name, title
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ValueError(f"snapshot_every must be an integer >= 1, got {snapshot_every!r}")
        self.snapshot_every = snapshot_every
        self.path = None
        # what densflow run reads of a grid case
        self.method, self.newton = "gradient", None

    def notes(self):
        return []

    def __repr__(self):
        return (f"ParametricCase(name={self.name!r}, {len(self.experiments)} experiments, "
                f"{len(self.seeds)} seeds)")


def run_parametric_case(case, path, resume=False, overwrite=False, progress=None, report=None):
    """Solve every (experiment, seed) of ``case`` into ``path`` (as
    :func:`densflow.runner.run_case` does for grid cases); returns the results."""
    from ..recorder import Recorder
    from ..runner import COMPLETE_ATTR, case_file_attributes
    from ..solver import solve

    root = {**case_file_attributes(case), "case_kind": "parametric"}
    mode = "a" if resume else ("w" if overwrite else "x")
    results = []
    total = len(case.experiments) * len(case.seeds)
    with Recorder(path, mode=mode, snapshot_every=case.snapshot_every,
                  attrs=None if resume else root) as recorder:
        recorded = recorder.root_attr("case_name", case.name)
        if recorded != case.name:
            raise ValueError(f"{path} holds case {recorded!r}, not {case.name!r}; "
                             "use --overwrite to replace it")
        done = 0
        for exp in case.experiments:
            for seed in case.seeds:
                done += 1
                label = f"[{done}/{total}] {exp.group}/{exp.label} seed {seed}"
                record = recorder.run(f"{exp.group}/{exp.label}/seed{seed}",
                                      attrs={"experiment": exp.label, "group": exp.group,
                                             "seed": seed})
                was = record.status if resume else None
                problem, p0 = exp.make(seed)
                res = solve(problem, p0, exp.metric_for(seed), tol=exp.tol, gtol=exp.gtol,
                            max_iter=exp.max_iter, line_search=exp.line_search, out=record,
                            resume=resume, callback=progress(label) if progress else None)
                results.append(res)
                if report is not None:
                    report(label, res, was)
        final = dict(root) if resume else {}
        if not any("error" in r.info for r in results):
            final[COMPLETE_ATTR] = 1
        recorder.set_attrs(final)
    return results


def is_parametric_file(runfile):
    """Whether a read run file holds parametric runs."""
    kind = runfile.attrs.get("case_kind")
    if isinstance(kind, bytes):
        kind = kind.decode()
    return kind == "parametric" or any(str(r.attrs.get("kind", "")) == "parametric" for r in runfile.runs)


def save_parametric_figure(runfile, path, dpi=100):
    """Per group, the recorded value against the iteration: median and range over seeds
    of each experiment (a run that did not complete is drawn dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for run in runfile.runs:
        g = str(run.attrs.get("group", "runs"))
        e = str(run.attrs.get("experiment", run.name))
        groups.setdefault(g, {}).setdefault(e, []).append(run)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.6 * len(groups), 4.2), squeeze=False)
    for ax, (g, exps) in zip(axes[0], groups.items()):
        positive = all(np.all(r.energies > 0) for runs in exps.values() for r in runs)
        for e, runs in exps.items():
            n = max(r.energies.size for r in runs)
            V = np.full((len(runs), n), np.nan)
            for i, r in enumerate(runs):
                V[i, :r.energies.size] = r.energies
            k = np.arange(n)
            done = all(r.status == "complete" for r in runs)
            line, = ax.plot(k, np.nanmedian(V, 0), ls="-" if done else "--",
                            label=f"{e} ({len(runs)} seeds, median {np.nanmedian(V[:, -1]):.3g})")
            if len(runs) > 1:
                ax.fill_between(k, np.nanmin(V, 0), np.nanmax(V, 0), color=line.get_color(), alpha=0.15)
        if positive:
            ax.set_yscale("log")
        ax.set_title(g, fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("recorded value (loss)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    title = runfile.attrs.get("case_title")
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(str(title), 60 * len(groups))), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=dpi)
    plt.close(fig)
    return path
