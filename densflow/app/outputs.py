"""The files ``densflow run`` and ``densflow plot`` write: checks of the run file and
figure paths before any work, and the figure of a run file (convergence, parametric
seeds or flows, by what the file holds)."""

import os

from .usage import UsageError, usage_errors

__all__ = ["check_run_target", "figure_path", "save_figure"]


def check_run_target(path):
    """Refuse (:class:`UsageError`) a run file path that cannot be written."""
    from ..io.h5io import RunFileError, check_target

    with usage_errors(RunFileError):
        check_target(path)


def figure_formats():
    """The figure formats matplotlib writes (suffix to description)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return FigureCanvasBase.get_supported_filetypes()


def figure_path(h5_path, figure=None):
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
    formats = figure_formats()
    if ext not in formats:
        raise UsageError(f"{path}: cannot write a figure in format {ext!r}; matplotlib writes "
                         + ", ".join(sorted(formats)))
    with usage_errors(RunFileError):
        check_target(path, "figure")
    return path


def save_figure(source, figure, case=None):
    """Draw the figure of the run file ``source`` (a path or a read
    :class:`~densflow.io.runfile.RunFile`) into ``figure``; returns the path written."""
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
