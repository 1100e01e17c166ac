"""Parameter sweeps of case files, run point by point on a Dask cluster.

A case file may define, besides or instead of ``case``, a module-level ``sweep``::

    sweep = Sweep(make_case, points=[dict(dim=1, n=256), dict(dim=1, n=512), ...], x="n")
    sweep = Sweep(make_case, product=dict(n=[64, 128], wavelet=["db2", "db4"]), x="n")

``make_case(**point)`` returns the :class:`densflow.app.case.Case` of one point. ``densflow
sweep CASE`` runs every point as one task on Dask's distributed scheduler (a
``LocalCluster`` of worker processes by default, or the cluster at ``--scheduler``):
each point writes its own run file, named from its parameters, in the output folder.
A file is complete once its root attribute ``case_complete`` is 1; re-running a sweep
skips complete files (and never touches them), resumes partial ones from their last
snapshots and re-runs failed ones; a file that cannot be read (truncated, damaged) is
set aside as ``FILE.damaged`` and its point run afresh. An index (``index.csv``) lists every run of every
point with its status and summary numbers, and a summary figure plots iterations
against the sweep's ``x`` parameter. Dask is an optional dependency
(``pip install densflow[sweep]``).

While a point runs, its worker sends progress lines to the client (Dask's event
topic :data:`PROGRESS_TOPIC`): the point's start, numba's first compilation, every
run's iteration and energy at most every :data:`PROGRESS_INTERVAL` seconds once it has
lasted :data:`PROGRESS_DELAY` seconds, and each finished run.
"""

import csv
import itertools
import os
import re

import numpy as np

from .case import Case
from .importing import load_object
from .runner import COMPLETE_ATTR

__all__ = ["Sweep", "load_sweep", "run_sweep", "point_filename", "file_status"]

INDEX = "index.csv"
#: Dask event topic of the progress lines workers send to the client.
PROGRESS_TOPIC = "densflow-sweep-progress"
#: Seconds a run lasts before its first progress line, and seconds between two lines.
PROGRESS_DELAY, PROGRESS_INTERVAL = 2.0, 5.0


class Sweep:
    """A named set of parameter values and the case of each.

    Parameters
    ----------
    make_case : callable
        ``make_case(**point) -> Case``.
    product : dict or None
        Parameter name -> list of values; the points are their Cartesian product.
    points : list of dict or None
        The points, listed (exactly one of ``product`` and ``points``).
    x : str or None
        The parameter on the summary figure's horizontal axis (default: the first).
    name : str or None
        Prefix of the run files; :func:`load_sweep` fills in the file's stem.
    """

    def __init__(self, make_case, product=None, points=None, x=None, name=None):
        if not callable(make_case):
            raise TypeError("Sweep make_case must be callable: make_case(**point) -> Case")
        if (product is None) == (points is None):
            raise ValueError("Sweep needs exactly one of product= (dict of lists) and points= (list of dicts)")
        if product is not None:
            if not isinstance(product, dict) or not product or not all(len(v) for v in product.values()):
                raise ValueError("Sweep product must be a non-empty dict of non-empty lists")
            keys = list(product)
            points = [dict(zip(keys, values)) for values in itertools.product(*product.values())]
        points = [dict(p) for p in points]
        if not points or not all(isinstance(p, dict) and p for p in points):
            raise ValueError("Sweep points must be a non-empty list of non-empty dicts")
        names = [point_filename("", p) for p in points]
        if len(set(names)) != len(names):
            raise ValueError("Sweep points must be distinct")
        self.make_case = make_case
        self.points = points
        self.x = x if x is not None else next(iter(points[0]))
        if any(self.x not in p for p in points):
            raise ValueError(f"Sweep x={self.x!r} must be a parameter of every point")
        self.name = name
        self.path = None

    def case(self, point):
        """The :class:`Case` of one point (its name and path set for recording)."""
        case = self.make_case(**point)
        if not isinstance(case, Case):
            raise TypeError(f"make_case({point}) returned a {type(case).__name__}, not a Case")
        case.name = self.name
        case.path = self.path
        return case


def point_filename(prefix, point):
    """``PREFIX__k1=v1_k2=v2.h5`` with characters unsafe in file names replaced."""
    parts = "_".join(f"{k}={v}" for k, v in point.items())
    parts = re.sub(r"[^A-Za-z0-9=._+-]+", "-", parts)
    return f"{prefix}__{parts}.h5" if prefix else f"{parts}.h5"


def load_sweep(path):
    """Import a case file and return its ``sweep`` (one-line
    :class:`densflow.app.importing.CaseError` if it has none)."""
    sweep, stem = load_object(path, "sweep", Sweep)
    sweep.name = sweep.name or stem
    sweep.path = os.fspath(path)
    return sweep


def file_status(path):
    """``"missing"``, ``"complete"``, ``"partial"`` (a run file, not complete),
    ``"locked"`` (open in another process) or ``"damaged"`` (cannot be read as HDF5)."""
    from ..io.h5io import FileLockedError, RunFileError, open_file

    if not os.path.exists(path):
        return "missing"
    try:
        with open_file(path, "r") as f:
            return "complete" if int(f.attrs.get(COMPLETE_ATTR, 0)) == 1 else "partial"
    except FileLockedError:
        return "locked"
    except (RunFileError, TypeError, ValueError):
        return "damaged"


def set_aside(path):
    """Rename a damaged ``path`` to ``path.damaged`` (``.damaged-2``, … if taken)."""
    target, i = f"{path}.damaged", 1
    while os.path.exists(target):
        i += 1
        target = f"{path}.damaged-{i}"
    os.replace(path, target)
    return target


def point_label(point):
    """``"dim=2, n=512"``: a point as the progress lines and the report name it."""
    return ", ".join(f"{k}={v}" for k, v in point.items())


def _worker_emitter():
    """``emit(line)`` sending the line to the client on :data:`PROGRESS_TOPIC` (a no-op
    outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return lambda line: None
    return lambda line: worker.log_event(PROGRESS_TOPIC, line)


def run_point(case_file, point, path, progress=None):
    """Run one point of the sweep in ``case_file`` into ``path`` (a Dask task).

    A complete file is left alone; a partial one is resumed; a missing one is written;
    a damaged one (not readable as a run file, or a resume that finds damaged data) is
    set aside (:func:`set_aside`) and the point run afresh, so that a rerun of the
    sweep does retry it.

    Parameters
    ----------
    case_file : str
        The case file defining ``sweep``.
    point : dict
        The point's parameters.
    path : str
        Its run file.
    progress : callable, bool or None
        Where the point's progress lines go (see the module notes): ``emit(line)``,
        ``True`` for the Dask client that submitted the task, ``None`` for nowhere.

    Returns
    -------
    list of dict
        The point's summary rows (see :func:`summary_rows`), with a ``note`` when a
        file was set aside.
    """
    import contextlib

    from ..io.h5io import DamagedFileError, RunFileError
    from .progress import Progress, compile_notice
    from .runner import run_case

    emit = _worker_emitter() if progress is True else (progress or None)
    where = point_label(point)
    status, note = file_status(path), None
    if status == "locked":
        raise RunFileError(f"{path}: open in another process (is another sweep running?)")
    if status == "damaged":
        note = f"damaged file set aside as {os.path.basename(set_aside(path))}"
        status = "missing"
    if status != "complete":
        sweep = load_sweep(case_file)
        attrs = {f"sweep_{k}": v for k, v in point.items()}
        options = {}
        if emit is not None:
            emit(f"{where}: {'resuming' if status == 'partial' else 'started'}")

            def report(label, res, was):
                state = "converged" if res.converged else "not converged"
                emit(f"{where}: {label}: {res.n_iter} iterations, E = {res.energies[-1]:.3e}, "
                     f"{state}, {res.wall_time:.2f} s")

            options = {"report": report,
                       "progress": lambda label: Progress(f"{where}: {label}", emit,
                                                          PROGRESS_DELAY, PROGRESS_INTERVAL)}
        notice = contextlib.nullcontext() if emit is None else compile_notice(
            lambda line: emit(f"{where}: {line}"))
        with notice:
            try:
                run_case(sweep.case(point), path, resume=status == "partial", attrs=attrs,
                         **options)
            except DamagedFileError:
                note = f"damaged file set aside as {os.path.basename(set_aside(path))}"
                run_case(sweep.case(point), path, attrs=attrs, **options)
    rows = summary_rows(point, path)
    if note:
        for row in rows:
            row["note"] = note
    return rows


def summary_rows(point, path):
    """One dict per run of a point's file: parameters, file, status and numbers."""
    from ..io.recorder import read_run_file

    rows = []
    state = file_status(path)
    for run in read_run_file(path).runs:
        rows.append({**point, "file": os.path.basename(path), "file_status": state,
                     "panel": run.panel, "metric": run.metric, "status": run.status,
                     "iterations": run.n_iter, "converged": int(run.converged),
                     "max_iter": int(run.attrs.get("max_iter", -1)),
                     "final_energy": float(run.energies[-1]) if run.energies.size else np.nan,
                     "wall_time": run.wall_time})
    return rows


def run_sweep(case_file, outdir, scheduler=None, workers=2, report=None, progress=None):
    """Run every point of the sweep in ``case_file`` on Dask; write index and figure.

    Parameters
    ----------
    case_file : str
        The case file defining ``sweep``.
    outdir : str
        Folder of the run files, ``index.csv`` and ``summary.png`` (created).
    scheduler : str or None
        Address of a running Dask scheduler; ``None`` starts a ``LocalCluster`` of
        ``workers`` single-threaded worker processes.
    workers : int
        Worker processes of the local cluster.
    report : callable or None
        Called as ``report(point, rows_or_exception)`` as points finish.
    progress : callable or None
        Called as ``progress(line)`` with the progress lines the workers send while
        points run (see the module notes); ``None``: none are sent.

    Returns
    -------
    list of dict
        The index rows; a point whose task failed has one row with ``file_status``
        ``"failed"`` and the error.

    Raises
    ------
    densflow.io.h5io.RunFileError
        ``outdir`` exists and is not a folder.
    ConnectionError
        No Dask scheduler answers at ``scheduler`` (within Dask's
        ``distributed.comm.timeouts.connect``).
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("densflow sweep needs Dask's distributed scheduler: "
                          "pip install 'densflow[sweep]'") from None
    sweep = load_sweep(case_file)
    check_outdir(outdir)
    case_file = os.path.abspath(case_file)
    jobs = {}
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler)
        except (OSError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConnectionError(f"scheduler {scheduler!r}: cannot reach a Dask scheduler "
                                  f"there ({first})") from None
    os.makedirs(outdir, exist_ok=True)
    try:
        if progress is not None:
            client.subscribe_topic(PROGRESS_TOPIC, lambda event: progress(str(event[1])))
        for point in sweep.points:
            path = os.path.abspath(os.path.join(outdir, point_filename(sweep.name, point)))
            fut = client.submit(run_point, case_file, point, path, progress is not None,
                                pure=False)
            jobs[fut] = point
        rows = []
        for fut in as_completed(list(jobs)):
            point = jobs[fut]
            try:
                got = fut.result()
            except Exception as exc:  # a failed point is recorded, the others go on
                got = [{**point, "file": point_filename(sweep.name, point), "file_status": "failed",
                        "status": f"{type(exc).__name__}: {exc}"}]
                if report is not None:
                    report(point, exc)
            else:
                if report is not None:
                    report(point, got)
            rows.extend(got)
    finally:
        if cluster is not None:
            _close_workers(cluster)
        client.close()
        if cluster is not None:
            cluster.close()
    order = {point_filename("", p): i for i, p in enumerate(sweep.points)}
    rows.sort(key=lambda r: (order[point_filename("", {k: r[k] for k in sweep.points[0]})],
                             r.get("panel") or 0))
    write_index(rows, os.path.join(outdir, INDEX), list(sweep.points[0]))
    from .figures import save_sweep_figure

    save_sweep_figure(rows, sweep.x, list(sweep.points[0]), os.path.join(outdir, "summary.png"),
                      title=f"{sweep.name}: iterations against {sweep.x}")
    return rows


#: Seconds a local worker process gets to exit: a process that has compiled numba kernels
#: and drawn figures takes seconds to tear down on a loaded machine, more than the 4 s
#: after which Dask's nanny kills it (with a warning, and heartbeat errors if the
#: scheduler is gone first).
WORKER_CLOSE_TIMEOUT = 60.0


def _close_workers(cluster):
    """Close the local cluster's workers, each with time to exit, before the client and
    the scheduler: nothing is left to heartbeat to a closed scheduler or to be killed."""
    import asyncio
    import contextlib

    async def close_all(nannies):
        await asyncio.gather(*(n.close(timeout=WORKER_CLOSE_TIMEOUT) for n in nannies),
                             return_exceptions=True)

    with contextlib.suppress(Exception):  # the cluster's own close still follows
        cluster.sync(close_all, list(cluster.workers.values()))


def check_outdir(outdir):
    """Refuse an output folder that exists but is not a folder (one-line
    :class:`densflow.io.h5io.RunFileError`)."""
    from ..io.h5io import RunFileError

    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise RunFileError(f"{outdir}: exists and is not a folder; a sweep writes its run "
                           "files, index.csv and summary.png into a folder")
    parent = os.path.dirname(os.path.abspath(outdir))
    if not os.path.isdir(parent):
        raise RunFileError(f"{outdir}: cannot create (no such directory {parent})")


def write_index(rows, path, params):
    """Write the index rows as CSV (parameters first)."""
    columns = params + ["file", "file_status", "panel", "metric", "status", "iterations",
                        "converged", "final_energy", "wall_time", "max_iter"]
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
