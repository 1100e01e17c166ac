"""Reading HDF5 run files back (the layout is described in :mod:`densflow.io.recorder`).

Run files are data: reading one never executes anything from it. A file that is
damaged (truncated, overwritten with other bytes, a dataset failing its checksum) or
hand-made with the right ``format`` attribute but not the layout gives a one-line
:class:`DamagedFileError` naming the file, the run and what is wrong, never a
traceback from h5py.
"""

import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from .flowfile import flow_groups, is_flow_group, read_flow_group
from .h5io import (FORMAT, FORMAT_VERSION, DamagedFileError, RunFileError, numeric_dataset,
                   open_file)
from ..optim.result import INNER_HISTORIES, SolveResult

__all__ = ["Run", "RunFile", "read_run_file", "read_flows", "check_run_file", "read_monitors", "HISTORIES",
           "INNER_HISTORIES", "MONITORS"]

HISTORIES = ("energies", "steps", "decrements", "times")
#: Per-step counts of Newton's inner work, recorded by runs of ``method="newton"``.
#: h5py's and HDF5's exceptions on unreadable objects and data.
READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError)


@dataclass
class Run:
    """One recorded run, read back by :func:`read_run_file`."""

    name: str
    attrs: dict
    energies: np.ndarray
    steps: np.ndarray
    decrements: np.ndarray
    times: np.ndarray
    p_final: np.ndarray = None
    mu: np.ndarray = None
    panel: int = None
    panel_title: str = None
    panel_metrics: tuple = ()
    snapshots: np.ndarray = None
    snapshot_iterations: np.ndarray = None

    @property
    def metric(self):
        return str(self.attrs.get("metric", "?"))

    @property
    def status(self):
        return str(self.attrs.get("status", "?"))

    @property
    def n_iter(self):
        return int(self.steps.size)

    @property
    def converged(self):
        return bool(self.attrs.get("converged", False))

    @property
    def message(self):
        """Why the run stopped (empty for a run that has not stopped)."""
        return str(self.attrs.get("message", ""))

    @property
    def weights(self):
        return tuple(float(w) for w in self.attrs.get("weights", ()))

    @property
    def wall_time(self):
        """Recorded wall time, or the sum of iteration times for an unfinished run."""
        return float(self.attrs.get("wall_time", self.times.sum()))

    def result(self):
        """This run as a :class:`densflow.SolveResult`."""
        return SolveResult(p=self.p_final, energies=self.energies, steps=self.steps,
                           decrements=self.decrements, times=self.times, n_iter=self.n_iter,
                           converged=self.converged, message=self.message,
                           metric=self.metric, wall_time=self.wall_time,
                           info={"resumed_from": int(self.attrs.get("resumed_from", -1))})


@dataclass
class RunFile:
    """A run file read back: its root attributes, its runs in case order and its
    time-accurate flows (:class:`densflow.io.flowfile.FlowRun`)."""

    path: str
    attrs: dict
    runs: list
    flows: list = field(default_factory=list)


def check_format(f, path):
    """Raise :class:`RunFileError` unless ``f`` is a densflow run file this version reads."""
    try:
        fmt = f.attrs.get("format")
        version = f.attrs.get("format_version", FORMAT_VERSION)
    except READ_ERRORS as exc:
        raise DamagedFileError(f"{path}: damaged run file, its root attributes cannot be "
                               f"read ({_short(exc)})") from None
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if fmt != FORMAT:
        raise RunFileError(f"{path}: not a densflow run file (the root attribute "
                           f"'format' is not {FORMAT!r})")
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise DamagedFileError(f"{path}: damaged run file (format_version = {version!r} "
                               "is not an integer)") from None
    if version > FORMAT_VERSION:
        raise RunFileError(f"{path}: written by a newer densflow (format_version {version}; "
                           f"this one reads up to {FORMAT_VERSION})")


def _dataset(g, key, where, ndim=None, required=True):
    obj = numeric_dataset(g, key, where, required=required, ndim=ndim)
    if obj is None:
        return None
    try:
        return np.asarray(obj[()], dtype=float) if obj.dtype.kind == "f" else obj[()]
    except READ_ERRORS as exc:
        raise DamagedFileError(f"{where}: dataset {key!r} cannot be read ({_short(exc)})") from None


def _short(exc):
    return str(exc).split("\n")[0][:160] or type(exc).__name__


def _read_run(g, snapshots=False, path="run file"):
    where = f"{path}: damaged run file: run {g.name.lstrip('/')!r}"
    try:
        return _read_run_checked(g, snapshots, where)
    except RunFileError:
        raise
    except READ_ERRORS as exc:
        raise DamagedFileError(f"{where}: cannot be read ({_short(exc)})") from None


def _read_run_checked(g, snapshots, where):
    hist = {key: _dataset(g, key, where, ndim=1) for key in HISTORIES}
    k = hist["steps"].size
    expected = {"energies": (k + 1,) if k else (0, 1), "times": (k,), "decrements": (k, k + 1)}
    for key, sizes in expected.items():
        if hist[key].size not in sizes:
            raise DamagedFileError(f"{where}: {key} holds {hist[key].size} entries for "
                                   f"{k} steps")
    run = Run(name=g.name.lstrip("/"), attrs=dict(g.attrs), **hist,
              p_final=_dataset(g, "p_final", where, required=False),
              mu=_dataset(g, "mu", where, required=False))
    parent = g.parent
    try:
        if "index" in parent.attrs:
            run.panel = int(parent.attrs["index"])
            run.panel_title = str(parent.attrs.get("title", ""))
            run.panel_metrics = tuple(str(m) for m in parent.attrs.get("metrics", ()))
        # the attributes the table and the figure use must have their types
        run.metric, run.status, run.converged, run.message, run.wall_time  # noqa: B018
        if len(run.weights) not in (0, 3):
            raise ValueError("weights must hold 3 numbers")
        float(run.attrs.get("tol", np.nan))
        int(run.attrs.get("resumed_from", -1))
    except READ_ERRORS as exc:
        raise DamagedFileError(f"{where}: bad attribute ({_short(exc)})") from None
    if snapshots:
        run.snapshots = _dataset(g, "snapshots", where, required=False)
        run.snapshot_iterations = _dataset(g, "snapshot_iterations", where, ndim=1, required=False)
    return run


def _order(run):
    if run.panel is None:
        return (1, 0, 0, run.name)
    pos = run.panel_metrics.index(run.metric) if run.metric in run.panel_metrics else len(run.panel_metrics)
    return (0, run.panel, pos, run.name)


def _run_groups(f, path):
    """The run groups (those holding ``energies``). A group holding no run, no group
    and no ``energies`` that is neither a panel (attribute ``index``) nor inside a run
    (its monitors) is a run whose data is missing: the file is damaged."""
    groups, hollow = [], []

    def visit(name, obj):
        if not isinstance(obj, h5py.Group):
            return
        if "energies" in obj:
            if not is_flow_group(obj):
                groups.append(obj)
        elif (not any(obj.get(k, getclass=True) is h5py.Group for k in obj)
              and "index" not in obj.attrs
              and "energies" not in obj.parent):  # a run's monitors: the run's own checks
            hollow.append(name)

    try:
        f.visititems(visit)
    except READ_ERRORS as exc:
        raise DamagedFileError(f"{path}: damaged run file, its groups cannot be listed "
                               f"({_short(exc)})") from None
    if hollow:
        raise DamagedFileError(f"{path}: damaged run file: run {hollow[0]!r} has no dataset "
                               "'energies' (its data is missing)")
    return groups


def read_run_file(path, snapshots=False):
    """Read a densflow run file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    snapshots : bool
        Also load the density snapshots (they can be large), and the saved densities
        of flows.

    Returns
    -------
    RunFile
        Root attributes and the runs, ordered by panel and then as the case lists the
        metrics (runs outside panels last, by name); the flows in ``flows``.

    Raises
    ------
    RunFileError
        If the file is missing, not HDF5, not a densflow run file, open for writing in
        another process, or damaged (:class:`DamagedFileError`, naming the run and the
        dataset or attribute).
    """
    path = os.fspath(path)
    with open_file(path, "r") as f:
        check_format(f, path)
        runs = sorted((_read_run(g, snapshots, path) for g in _run_groups(f, path)), key=_order)
        flows = [read_flow_group(g, snapshots, path) for g in flow_groups(f, path)]
        try:
            attrs = dict(f.attrs)
        except READ_ERRORS as exc:
            raise DamagedFileError(f"{path}: damaged run file, root attributes cannot be "
                                   f"read ({_short(exc)})") from None
        return RunFile(path=path, attrs=attrs, runs=runs, flows=flows)


def read_flows(path, densities=True):
    """The time-accurate flows recorded in the run file ``path`` (a list of
    :class:`densflow.io.flowfile.FlowRun`, with their saved densities if ``densities``)."""
    path = os.fspath(path)
    with open_file(path, "r") as f:
        check_format(f, path)
        return [read_flow_group(g, densities, path) for g in flow_groups(f, path)]


def check_run_file(path):
    """Read every dataset of every run in ``path`` (its checksums are verified as
    HDF5 reads them), one snapshot at a time, and return :func:`read_run_file`'s result.

    Raises
    ------
    DamagedFileError
        Naming the first run and dataset that cannot be read.
    """
    runfile = read_run_file(path)
    with open_file(path, "r") as f:
        for g in _run_groups(f, path) + flow_groups(f, path):
            what = "flow" if is_flow_group(g) else "run"
            where = f"{path}: damaged run file: {what} {g.name.lstrip('/')!r}"
            for key, obj in g.items():
                if not isinstance(obj, h5py.Dataset):
                    continue
                try:
                    if key in ("snapshots", "densities") and obj.ndim >= 2:
                        for i in range(obj.shape[0]):
                            obj[i]
                    else:
                        obj[()]
                except READ_ERRORS as exc:
                    raise DamagedFileError(f"{where}: dataset {key!r} cannot be read "
                                           f"({_short(exc)})") from None
    return runfile


#: The subgroup of a run that holds its monitors (parametric case files).
MONITORS = "monitors"


def read_monitors(path):
    """The monitors of a parametric run file: ``{run name: (iterations, {name: values})}``
    (runs without monitors are left out)."""
    out = {}
    with open_file(path, "r") as f:
        for g in _run_groups(f, path):
            m = g.get(MONITORS)
            if m is None or "iterations" not in m:
                continue
            out[g.name.lstrip("/")] = (m["iterations"][()],
                                       {k: m[k][()] for k in m if k != "iterations"})
    return out
