"""The ``densflow`` command: run case files, inspect and plot HDF5 run files.

::

    densflow run CASE.py [-o FILE.h5] [--figure PNG] [--resume | --overwrite] [--quiet]
    densflow sweep CASE.py [--scheduler ADDRESS] [--workers K] [-o DIR] [--quiet]
    densflow inspect FILE.h5
    densflow plot FILE.h5 [-o PNG]

Errors in the user's input (a missing or broken case file, a file that is not a
densflow run file or is damaged, an output that exists or is open in another process,
a full disk, a resumed case that changed) print one line ``densflow: error: ...`` to
stderr and exit with status 2. A run that does not converge prints why; ``run`` exits
with status 1 when a run ended in a numerical failure.
"""

import argparse
import contextlib
import os
import sys

from .._version import __version__
from .progress import Progress, compile_notice
from ..gridproblem import METHODS

__all__ = ["main"]


class UsageError(Exception):
    """A problem with the user's input, reported in one line."""


def _printer(stream, indent=""):
    """``emit(line)`` printing ``indent + line`` to ``stream``, flushed."""
    return lambda line: print(indent + line, file=stream, flush=True)


def _parser():
    ap = argparse.ArgumentParser(
        prog="densflow",
        description="Natural-gradient flows of probability densities: run case files, "
                    "inspect and plot HDF5 run files.")
    ap.add_argument("--version", action="version", version=f"densflow {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a case file, write an HDF5 run file and its figure")
    run.add_argument("case", metavar="CASE", help="case file (Python defining 'case')")
    run.add_argument("-o", "--output", metavar="FILE.h5",
                     help="run file to write (default: NAME.h5 in the current directory)")
    run.add_argument("--figure", metavar="PATH",
                     help="figure to write (default: the run file with suffix .png)")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue an interrupted run file from its last snapshots")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing run file")
    run.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    run.add_argument("--method", choices=METHODS,
                     help="override the case's method: 'gradient' (first-order natural "
                          "gradient), 'newton' (Newton-Krylov in the density preconditioned "
                          "by the metric), 'newton_potential' (Newton in the potential, "
                          "energies with an H^-1 term) or 'auto' (the default: "
                          "newton_potential where it applies, else newton)")

    sweep = sub.add_parser("sweep", help="run every point of a case file's sweep on Dask")
    sweep.add_argument("case", metavar="CASE", help="case file defining 'sweep'")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running Dask scheduler (default: a local cluster)")
    sweep.add_argument("--workers", type=int, default=2, metavar="K",
                       help="worker processes of the local cluster (default: 2)")
    sweep.add_argument("-o", "--output", metavar="DIR",
                       help="folder of the run files, index.csv and summary.png (default: NAME/)")
    sweep.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    inspect = sub.add_parser("inspect", help="print the table of runs in a run file")
    inspect.add_argument("file", metavar="FILE.h5")

    plot = sub.add_parser("plot", help="redraw the figure of a run file")
    plot.add_argument("file", metavar="FILE.h5")
    plot.add_argument("-o", "--output", metavar="PNG",
                      help="figure to write (default: the run file with suffix .png)")
    return ap


def _save_figure(source, figure, case=None):
    from .figures import save_convergence_figure
    from .parametric_case import is_parametric_file, save_parametric_figure
    from ..io.recorder import RunFile, RunFileError, read_run_file

    try:
        runfile = source if isinstance(source, RunFile) else read_run_file(source)
        if is_parametric_file(runfile):
            return save_parametric_figure(runfile, figure, case)
        return save_convergence_figure(runfile, figure)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{figure}: cannot write the figure ({exc.strerror or exc})") from None


def _figure_path(h5_path, figure=None):
    return figure if figure else os.path.splitext(h5_path)[0] + ".png"


def _cmd_run(args, out, err):
    from .case import CaseError
    from .loading import load_case
    from ..io.recorder import ResumeError, RunFileError
    from .runner import run_case

    try:
        case = load_case(args.case)
    except CaseError as exc:
        raise UsageError(str(exc)) from None
    parametric = getattr(case, "kind", None) == "parametric"
    if parametric and args.method is not None:
        raise UsageError(f"{args.case}: --method applies to grid cases; a parametric case's "
                         "experiments choose their metric and step rule")
    if args.method is not None and args.method != case.method:
        case.method, case.newton = args.method, None
    path = args.output or f"{case.name}.h5"
    if os.path.exists(path) and not (args.resume or args.overwrite):
        raise UsageError(f"{path} exists; use --resume to continue it or --overwrite to replace it")
    if not args.quiet:
        for note in case.notes():
            print(f"note: {note}", file=out, flush=True)

    def report(label, res, was):
        note = _resume_note(was, res.info.get("resumed_from", -1))
        state = ("failed" if "error" in res.info else
                 "converged" if res.converged else "not converged")
        print(f"{label:32s} {res.n_iter:5d} iterations  E = {res.energies[-1]:.3e}  "
              f"{state}  {res.wall_time:6.2f} s{note}", file=out, flush=True)
        if not res.converged:
            print(f"    stopped: {res.message}", file=out, flush=True)

    notice = contextlib.nullcontext() if args.quiet else compile_notice(_printer(err))
    try:
        with notice:
            runner = run_case
            if parametric:
                from .parametric_case import run_parametric_case as runner
            results = runner(case, path, resume=args.resume, overwrite=args.overwrite,
                               progress=None if args.quiet else
                               (lambda label: Progress(label, _printer(err, "  "))),
                               report=None if args.quiet else report)
    except (RunFileError, ResumeError, OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    figure = _save_figure(path, _figure_path(path, args.figure), case)
    failed = sum("error" in r.info for r in results)
    if failed:
        print(f"densflow: {failed} run(s) ended in a numerical failure (see 'stopped:' above "
              f"and 'densflow inspect {path}')", file=err)
    if not args.quiet:
        print(f"wrote {path} and {figure}", file=out)
    return 1 if failed else 0


def _cmd_sweep(args, out, err):
    from .case import CaseError
    from .sweep import INDEX, load_sweep, point_label, run_sweep

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError("densflow sweep needs Dask's distributed scheduler; install it with "
                         "pip install 'densflow[sweep]'") from None
    if args.workers < 1:
        raise UsageError(f"--workers must be an integer >= 1, got {args.workers}")
    try:
        sweep = load_sweep(args.case)
    except CaseError as exc:
        raise UsageError(str(exc)) from None
    outdir = args.output or sweep.name

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

    rows = run_sweep(args.case, outdir, scheduler=args.scheduler, workers=args.workers,
                     report=report, progress=None if args.quiet else _printer(err, "  "))
    failed = sum(1 for r in rows if r.get("file_status") == "failed")
    if not args.quiet:
        print(f"wrote {os.path.join(outdir, INDEX)} and {os.path.join(outdir, 'summary.png')}"
              + (f"; {failed} point(s) failed: rerun to retry them" if failed else ""), file=out)
    return 1 if failed else 0


def _resume_note(status, resumed_from):
    """What ``--resume`` did with a run that was recorded with ``status`` before."""
    if status is None:
        return ""
    if status == "complete":
        return ", recorded"
    return f", resumed from iteration {resumed_from}" if resumed_from >= 0 else ", restarted"


def _table(runfile):
    header = ["panel", "metric", "weights (α1, α2, α3)", "iterations", "final energy",
              "converged", "wall time [s]", "status"]
    rows = []
    for run in runfile.runs:
        rows.append([str(run.panel) if run.panel is not None else run.name, run.metric,
                     "(" + ", ".join(f"{w:g}" for w in run.weights) + ")", str(run.n_iter),
                     f"{run.energies[-1]:.3e}" if run.energies.size else "-",
                     "yes" if run.converged else "no", f"{run.wall_time:.2f}", run.status])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _read(path, check=False):
    from ..io.runfile import check_run_file, read_run_file
    from ..io.recorder import RunFileError

    try:
        return check_run_file(path) if check else read_run_file(path)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None


def _stop_reasons(runfile):
    """One line per run that did not converge: why it stopped."""
    lines = []
    for run in runfile.runs:
        if run.converged:
            continue
        where = f"panel {run.panel} {run.metric}" if run.panel is not None else run.name
        if run.status == "running":
            why = (f"unfinished after {run.n_iter} iterations (interrupted; "
                   "densflow run CASE -o FILE --resume continues it)")
        else:
            why = run.message or str(run.attrs.get("error", "")) or run.status
        lines.append(f"  {where}: {why}")
    return lines


def _cmd_inspect(args, out, err):
    runfile = _read(args.file, check=True)
    a = runfile.attrs
    print(f"{runfile.path}: case {a.get('case_name', '-')}, created {a.get('created', '?')}, "
          f"densflow {a.get('densflow_version', '?')}, numpy {a.get('numpy_version', '?')}",
          file=out)
    if not runfile.runs:
        print("no runs", file=out)
        return 0
    print(_table(runfile), file=out)
    reasons = _stop_reasons(runfile)
    if reasons:
        print("not converged:", file=out)
        print("\n".join(reasons), file=out)
    return 0


def _cmd_plot(args, out, err):
    runfile = _read(args.file)
    if not runfile.runs:
        raise UsageError(f"{args.file}: holds no runs to plot")
    figure = _save_figure(runfile, _figure_path(args.file, args.output))
    print(f"wrote {figure}", file=out)
    return 0


def main(argv=None):
    """Run the ``densflow`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on a usage error (one line on stderr), 130
        when interrupted.
    """
    out, err = sys.stdout, sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error
        return exc.code if isinstance(exc.code, int) else 2
    commands = {"run": _cmd_run, "sweep": _cmd_sweep, "inspect": _cmd_inspect, "plot": _cmd_plot}
    try:
        return commands[args.command](args, out, err)
    except UsageError as exc:
        print(f"densflow: error: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print("densflow: interrupted; rerun with --resume to continue", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
