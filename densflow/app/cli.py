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

This module parses the arguments and dispatches; the commands' bodies are in
:mod:`densflow.app.run_commands` (``run``, ``sweep``) and
:mod:`densflow.app.inspect_commands` (``inspect``, ``plot``).
"""

import argparse
import contextlib
import os
import signal
import sys

from .._version import __version__
from ..gridproblem import METHODS
from .inspect_commands import cmd_inspect, cmd_plot
from .run_commands import cmd_run, cmd_sweep
from .usage import UsageError

__all__ = ["main", "UsageError"]


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
    commands = {"run": cmd_run, "sweep": cmd_sweep, "inspect": cmd_inspect, "plot": cmd_plot}
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
