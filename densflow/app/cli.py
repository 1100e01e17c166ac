"""The ``densflow`` command: run case files, inspect and plot HDF5 run files.

::

    densflow run CASE.py [-o FILE.h5] [--figure PNG] [--resume | --overwrite] [--quiet]
    densflow sweep CASE.py [--scheduler ADDRESS] [--workers K] [-o DIR] [--quiet]
    densflow inspect FILE.h5
    densflow plot FILE.h5 [-o PNG] [--movie GIF]

Errors in the user's input (a missing or broken case file, a file that is not a
densflow run file or is damaged, an output that exists or is open in another process,
a full disk, a resumed case that changed) print one line ``densflow: error: ...`` to
stderr and exit with status 2. A run that does not converge prints why; ``run`` exits
with status 1 when a run ended in a numerical failure. Output piped into a reader that
stops early (``densflow inspect FILE | head -3``) ends the command quietly with status
141, as a command-line tool ended by ``SIGPIPE``.
"""

import argparse
import contextlib
import os
import signal
import sys

import numpy as np

from .._version import __version__
from .progress import FlowProgress, Progress, compile_notice
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
    plot.add_argument("--movie", metavar="GIF",
                      help="flows: also animate the saved densities into this GIF")
    return ap


def _save_figure(source, figure, case=None):
    from .figures import save_convergence_figure
    from .parametric_case import is_parametric_file, save_parametric_figure
    from ..io.recorder import RunFile, RunFileError, read_run_file

    try:
        runfile = source if isinstance(source, RunFile) else read_run_file(source)
        if runfile.flows and not runfile.runs:
            from .flow_figures import save_flow_figure

            return save_flow_figure(runfile, figure)
        if is_parametric_file(runfile):
            return save_parametric_figure(runfile, figure, case)
        return save_convergence_figure(runfile, figure)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{figure}: cannot write the figure ({exc.strerror or exc})") from None


def _figure_formats():
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def _figure_path(h5_path, figure=None):
    """The file the figure of run file ``h5_path`` is written to, checked before any
    work: a format matplotlib writes (a name without suffix gets matplotlib's default
    format, as ``savefig`` does), a regular or new file, never the run file itself."""
    from matplotlib import rcParams

    from ..io.h5io import RunFileError, check_target

    path = figure if figure else os.path.splitext(h5_path)[0] + ".png"
    if not path or path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise UsageError(f"{path}: names a folder, not a figure; give a file name")
    ext = os.path.splitext(path)[1][1:].lower()
    if not ext:
        ext = rcParams["savefig.format"]
        path = f"{path}.{ext}"
    if os.path.realpath(path) == os.path.realpath(h5_path) or (
            os.path.exists(path) and os.path.exists(h5_path) and os.path.samefile(path, h5_path)):
        raise UsageError(f"{path}: the figure would overwrite the run file {h5_path}; "
                         + ("give another --figure" if figure else
                            "name the run file FILE.h5 or give --figure"))
    formats = _figure_formats()
    if ext not in formats:
        raise UsageError(f"{path}: cannot write a figure in format {ext!r}; matplotlib writes "
                         + ", ".join(sorted(formats)))
    try:
        check_target(path, "figure")
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    return path


def _check_run_target(path):
    from ..io.h5io import RunFileError, check_target

    try:
        check_target(path)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None


def _cmd_run(args, out, err):
    from .case import CaseError
    from .loading import load_case
    from ..io.recorder import ResumeError, RunFileError
    from .runner import run_case

    if args.output is not None:  # before any work: the case file may take long to load
        _check_run_target(args.output)
        _figure_path(args.output, args.figure)
    try:
        case = load_case(args.case)
    except CaseError as exc:
        raise UsageError(str(exc)) from None
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
    _check_run_target(path)
    figure = _figure_path(path, args.figure)
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

    notice = contextlib.nullcontext() if args.quiet else compile_notice(_printer(err))
    try:
        with notice:
            runner, progress = run_case, Progress
            if parametric:
                from .parametric_case import run_parametric_case as runner
            if kind == "flow":
                from .flow_case import run_flow_case as runner
                progress = FlowProgress
            results = runner(case, path, resume=args.resume, overwrite=args.overwrite,
                               progress=None if args.quiet else
                               (lambda label: progress(label, _printer(err, "  "))),
                               report=None if args.quiet else report)
    except (RunFileError, ResumeError, OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    figure = _save_figure(path, figure, case)
    failed = sum("error" in r.info for r in results)
    if failed:
        print(f"densflow: {failed} run(s) ended in a numerical failure (see 'stopped:' above "
              f"and 'densflow inspect {path}')", file=err)
    if not args.quiet:
        print(f"wrote {path} and {figure}", file=out)
    return 1 if failed else 0


def _flow_report(label, res, was, out):
    """The line ``densflow run`` prints after a flow."""
    if was is None:
        note = ""
    elif was == "complete":
        note = ", recorded"
    else:
        at = res.info.get("resumed_from", -1)
        note = f", resumed from step {at}" if at >= 0 else ", restarted"
    state = "failed" if res.failed else "reached t_end" if res.converged else "stopped"
    print(f"{label:32s} {res.n_steps:5d} steps  t = {res.t:.4g}  F = {res.energies[-1]:.6e}  "
          f"{state}  {res.wall_time:6.2f} s{note}", file=out, flush=True)
    if not res.converged:
        print(f"    stopped: {res.message}", file=out, flush=True)


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
    from ..io.h5io import RunFileError
    from .sweep import check_outdir

    try:
        check_outdir(outdir)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None

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

    try:
        rows = run_sweep(args.case, outdir, scheduler=args.scheduler, workers=args.workers,
                         report=report, progress=None if args.quiet else _printer(err, "  "))
    except (ConnectionError, RunFileError) as exc:
        raise UsageError(str(exc)) from None
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


def _flow_table(runfile):
    header = ["flow", "metric", "scheme", "energy", "steps", "t", "F(t)", "saved",
              "Newton/step", "wall time [s]", "status"]
    rows = []
    for run in runfile.flows:
        terms = run.attrs.get("energy_terms", ())
        weights = run.attrs.get("energy_weights", ())
        energy = " + ".join(f"{w:g} {t.decode() if isinstance(t, bytes) else t}"
                            for w, t in zip(weights, terms)) or "-"
        newton = f"{run.newton_iterations.mean():.1f}" if run.n_steps else "-"
        wall = f"{run.wall_time:.2f}" if np.isfinite(run.wall_time) else "-"
        rows.append([run.label, run.metric, run.scheme, energy, str(run.n_steps), f"{run.t:.4g}",
                     f"{run.energies[-1]:.6e}" if run.energies.size else "-",
                     str(run.times.size), newton, wall, run.status])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    stops = []
    for run in runfile.flows:
        if run.status == "running":
            stops.append(f"  {run.label}: unfinished at t = {run.t:.4g} after {run.n_steps} steps "
                         "(interrupted; densflow run CASE -o FILE --resume continues it)")
        elif run.status == "failed" and not run.message:
            stops.append(f"  {run.label}: {run.attrs.get('error', 'failed')}")
        elif not run.converged:
            stops.append(f"  {run.label}: {run.message}")
    if stops:
        lines += ["not at t_end:"] + stops
    return "\n".join(lines)


def _cmd_inspect(args, out, err):
    runfile = _read(args.file, check=True)
    a = runfile.attrs
    print(f"{runfile.path}: case {a.get('case_name', '-')}, created {a.get('created', '?')}, "
          f"densflow {a.get('densflow_version', '?')}, numpy {a.get('numpy_version', '?')}",
          file=out)
    if runfile.flows:
        print(_flow_table(runfile), file=out)
        if not runfile.runs:
            return 0
    if not runfile.runs:
        print("no runs", file=out)
        return 0
    boundaries = {str(r.attrs["grid_boundary"]) for r in runfile.runs if "grid_boundary" in r.attrs}
    if boundaries:  # periodic runs record no boundary
        print(f"boundary: {', '.join(sorted(boundaries))} (no-flux box)", file=out)
    print(_table(runfile), file=out)
    reasons = _stop_reasons(runfile)
    if reasons:
        print("not converged:", file=out)
        print("\n".join(reasons), file=out)
    return 0


def _cmd_plot(args, out, err):
    figure = _figure_path(args.file, args.output)
    runfile = _read(args.file)
    if not runfile.runs and not runfile.flows:
        raise UsageError(f"{args.file}: holds no runs to plot")
    if args.movie and not runfile.flows:
        raise UsageError(f"{args.file}: --movie animates flows; this file holds none")
    figure = _save_figure(runfile, figure)
    print(f"wrote {figure}", file=out)
    if args.movie:
        from .flow_figures import save_flow_movie

        try:
            save_flow_movie(runfile, args.movie)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.movie}: cannot write the movie ({exc})") from None
        print(f"wrote {args.movie}", file=out)
    return 0


def main(argv=None):
    """Run the ``densflow`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on a usage error (one line on stderr), 130
        when interrupted, 141 when the reader of the output went away.
    """
    out, err = sys.stdout, sys.stderr
    try:
        status = _dispatch(argv, out, err)
        out.flush()  # here, so that a reader gone away is noticed here, not at exit
        return status
    except BrokenPipeError:
        _stdout_to_devnull()
        return 128 + signal.SIGPIPE


def _dispatch(argv, out, err):
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
        again = {"run": "rerun with --resume to continue",
                 "sweep": "rerun the same command to continue (complete points are kept, "
                          "partial ones resumed)"}.get(args.command, "")
        print("densflow: interrupted" + (f"; {again}" if again else ""), file=err)
        return 130


def _stdout_to_devnull():
    """The reader of stdout went away (``densflow inspect FILE | head``): point the
    descriptor at ``/dev/null`` so that Python's own flush at exit does not fail again
    and print a traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
