"""Running a case into one HDF5 run file (used by ``densflow run`` and sweeps)."""

import contextlib

from .importing import recorded_path
from ..io.recorder import Recorder
from ..solving import solve

__all__ = ["run_case", "case_file_attributes", "open_case_file", "finish_case_file"]

#: Root attribute set to 1 once every (panel, metric) run of a case is recorded.
COMPLETE_ATTR = "case_complete"


def case_file_attributes(case):
    """Root attributes that identify the case of a run file."""
    with open(case.path, encoding="utf-8", errors="replace") as fh:
        source = fh.read()
    return {"case_name": case.name, "case_title": case.title or case.name,
            "case_file": recorded_path(case.path), "case_source": source}


@contextlib.contextmanager
def open_case_file(case, path, root, resume=False, overwrite=False, **options):
    """The :class:`~densflow.io.recorder.Recorder` of ``case``'s run file ``path``, open
    in the block: created with the root attributes ``root`` (an existing file is refused
    unless ``overwrite``), or with ``resume`` opened to continue, and refused
    (``ValueError``) when it holds another case. ``options``: more arguments of the
    ``Recorder`` (``snapshot_every``)."""
    mode = "a" if resume else ("w" if overwrite else "x")
    with Recorder(path, mode=mode, attrs=None if resume else root, **options) as recorder:
        recorded = recorder.root_attr("case_name", case.name)
        if recorded != case.name:
            raise ValueError(f"{path} holds case {recorded!r}, not {case.name!r}; "
                             "use --overwrite to replace it")
        yield recorder


def run_case(case, path, resume=False, progress=None, report=None, attrs=None, overwrite=False):
    """Solve every (panel, metric) pair of ``case`` and record them in ``path``.

    Parameters
    ----------
    case : densflow.app.case.Case
        The case (with ``case.path`` set, as :func:`densflow.app.loading.load_case` does).
    path : str
        The run file; created unless ``resume`` (an existing file is refused unless
        ``overwrite``, and never replaced while another process has it open).
    resume : bool
        Continue an existing file: complete runs are kept, an unfinished run goes on
        from its last snapshot (see :func:`densflow.solve`); a run whose setup, μ, p0
        or recipes changed is refused.
    progress : callable or None
        ``progress(label)`` returns a solver callback for the run ``label`` (or None).
    report : callable or None
        Called as ``report(label, result, previous_status)`` after each run.
    attrs : dict or None
        Extra root attributes (e.g. a sweep point).
    overwrite : bool
        Replace an existing file (without ``resume``).

    Returns
    -------
    list of SolveResult
        A run ended by a numerical failure has ``converged=False``, a message and
        ``info["error"]``; it is marked failed in the file, and the file's
        ``case_complete`` is then not set.

    Raises
    ------
    densflow.io.recorder.RunFileError, densflow.io.recorder.ResumeError, OSError, ValueError
        If the file cannot be written (exists, is open in another process, the disk
        is full), belongs to another case, or a recorded run was set up differently.
    """
    root = case_file_attributes(case)
    root.update(attrs or {})
    results = []
    # the measure, p0 and every energy are built before the file: a case that cannot
    # be set up leaves no file behind
    p0 = case.initial_density()
    energies = [case.energy(panel) for panel in case.panels]
    with open_case_file(case, path, root, resume, overwrite,
                        snapshot_every=case.snapshot_every) as recorder:
        total = sum(len(p.metrics) for p in case.panels)
        done = 0
        for i, (panel, energy) in enumerate(zip(case.panels, energies), start=1):
            group = recorder.panel(i, panel.title, panel.weights, panel.metric_names)
            for metric in panel.metrics:
                done += 1
                label = f"[{done}/{total}] panel {i} {metric.name}"
                record = recorder.run(f"{group}/{metric.name}", attrs=case.run_attributes(panel))
                was = record.status if resume else None
                res = solve(energy, p0, metric, out=record, resume=resume,
                            callback=progress(label) if progress else None,
                            **case.solve_options())
                results.append(res)
                if report is not None:
                    report(label, res, was)
        finish_case_file(recorder, root, resume, results)
    return results


def finish_case_file(recorder, root, resume, results):
    """Write a case file's root attributes once its runs are done: on resume the case's
    text and attributes ``root`` only now, once every run has been checked against the
    recorded one; the completion mark when no run ended in an error."""
    final = dict(root) if resume else {}
    if not any("error" in r.info for r in results):
        final[COMPLETE_ATTR] = 1
    recorder.set_attrs(final)
