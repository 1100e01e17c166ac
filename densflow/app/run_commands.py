"""The bodies of ``densflow run`` (a case file into a run file and its figure) and
``densflow sweep`` (every point of a sweep on Dask), with the line each prints per run."""

import contextlib
import os

from .outputs import check_run_target, figure_path, save_figure
from .progress import FlowProgress, Progress, compile_notice
from .usage import UsageError, printer, usage_errors

__all__ = ["cmd_run", "cmd_sweep"]


def cmd_run(args, out, err):
    """``densflow run``: returns the exit status (1 when a run ended in a numerical
    failure)."""
    from .importing import CaseError
    from .loading import load_case
    from ..io.recorder import ResumeError, RunFileError
    from .runner import run_case

    if args.output is not None:  # before any work: the case file may take long to load
        check_run_target(args.output)
        figure_path(args.output, args.figure)
    with usage_errors(CaseError):
        case = load_case(args.case)
    kind = getattr(case, "kind", None)
    parametric = kind == "parametric"
    if parametric and args.method is not None:
        raise UsageError(f"{args.case}: --method applies to grid cases; a parametric case's "
                         "experiments choose their metric and step rule")
    if kind == "flow" and args.method is not None:
        raise UsageError(f"{args.case}: --method applies to grid cases; a flow case's steps "
                         "are implicit time steps (scheme=)")
    if args.method is not None and args.method != case.method:
        case.method, case.newton = args.method, None
    path = args.output or f"{case.name}.h5"
    check_run_target(path)
    figure = figure_path(path, args.figure)
    if os.path.exists(path) and not (args.resume or args.overwrite):
        raise UsageError(f"{path} exists; use --resume to continue it or --overwrite to replace it")
    if not args.quiet:
        for note in case.notes():
            print(f"note: {note}", file=out, flush=True)

    def report(label, res, was):
        if kind == "flow":
            return _flow_report(label, res, was, out)
        note = _resume_note(was, res.info.get("resumed_from", -1))
        state = ("failed" if "error" in res.info else
                 "converged" if res.converged else "not converged")
        print(f"{label:32s} {res.n_iter:5d} iterations  E = {res.energies[-1]:.3e}  "
              f"{state}  {res.wall_time:6.2f} s{note}", file=out, flush=True)
        if not res.converged:
            print(f"    stopped: {res.message}", file=out, flush=True)

    notice = contextlib.nullcontext() if args.quiet else compile_notice(printer(err))
    with usage_errors(RunFileError, ResumeError, OSError, ValueError), notice:
        runner, progress = run_case, Progress
        if parametric:
            from .parametric_case import run_parametric_case as runner
        if kind == "flow":
            from .flow_case import run_flow_case as runner
            progress = FlowProgress
        results = runner(case, path, resume=args.resume, overwrite=args.overwrite,
                         progress=None if args.quiet else
                         (lambda label: progress(label, printer(err, "  "))),
                         report=None if args.quiet else report)
    figure = save_figure(path, figure, case)
    failed = sum("error" in r.info for r in results)
    if failed:
        print(f"densflow: {failed} run(s) ended in a numerical failure (see 'stopped:' above "
              f"and 'densflow inspect {path}')", file=err)
    if not args.quiet:
        print(f"wrote {path} and {figure}", file=out)
    return 1 if failed else 0


def _resume_note(status, resumed_from, unit="iteration"):
    """What ``--resume`` did with a run that was recorded with ``status`` before
    (``resumed_from``: the iteration, or a flow's step, it went on from; -1: none)."""
    if status is None:
        return ""
    if status == "complete":
        return ", recorded"
    return f", resumed from {unit} {resumed_from}" if resumed_from >= 0 else ", restarted"


def _flow_report(label, res, was, out):
    """The line ``densflow run`` prints after a flow."""
    note = _resume_note(was, res.info.get("resumed_from", -1), unit="step")
    state = "failed" if res.failed else "reached t_end" if res.converged else "stopped"
    print(f"{label:32s} {res.n_steps:5d} steps  t = {res.t:.4g}  F = {res.energies[-1]:.6e}  "
          f"{state}  {res.wall_time:6.2f} s{note}", file=out, flush=True)
    if not res.converged:
        print(f"    stopped: {res.message}", file=out, flush=True)


def cmd_sweep(args, out, err):
    """``densflow sweep``: returns the exit status (1 when a point failed)."""
    from .importing import CaseError
    from .sweep import INDEX, check_outdir, load_sweep, point_label, run_sweep
    from ..io.h5io import RunFileError

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("densflow sweep needs Dask's distributed scheduler; install it with "
                         "pip install 'densflow[sweep]'") from None
    if args.workers < 1:
        raise UsageError(f"--workers must be an integer >= 1, got {args.workers}")
    with usage_errors(CaseError):
        sweep = load_sweep(args.case)
    outdir = args.output or sweep.name
    with usage_errors(RunFileError):
        check_outdir(outdir)

    def report(point, got):
        if args.quiet:
            return
        where = point_label(point)
        if isinstance(got, Exception):
            print(f"{where}: failed ({type(got).__name__}: {got})", file=out, flush=True)
        else:
            its = " ".join(f"{r['metric']}:{r['iterations']}{'' if r['converged'] else '*'}" for r in got)
            notes = {r["note"] for r in got if r.get("note")}
            print(f"{where}: {its}" + "".join(f" ({n})" for n in sorted(notes)), file=out, flush=True)

    with usage_errors(ConnectionError, RunFileError):
        rows = run_sweep(args.case, outdir, scheduler=args.scheduler, workers=args.workers,
                         report=report, progress=None if args.quiet else printer(err, "  "))
    failed = sum(1 for r in rows if r.get("file_status") == "failed")
    if not args.quiet:
        print(f"wrote {os.path.join(outdir, INDEX)} and {os.path.join(outdir, 'summary.png')}"
              + (f"; {failed} point(s) failed: rerun to retry them" if failed else ""), file=out)
    return 1 if failed else 0
