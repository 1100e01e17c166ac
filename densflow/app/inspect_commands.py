"""The bodies of ``densflow inspect`` (the tables of the runs and flows of a run file,
and why those that did not converge stopped) and ``densflow plot`` (its figure again,
and a flow's movie)."""

import numpy as np

from .outputs import figure_path, save_figure
from .usage import UsageError, usage_errors

__all__ = ["cmd_inspect", "cmd_plot", "format_table"]


def format_table(header, rows):
    """``rows`` (lists of strings) under ``header`` as left-aligned text columns, with
    a rule of dashes under the header."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _table(runfile):
    header = ["panel", "metric", "weights (α1, α2, α3)", "iterations", "final energy",
              "converged", "wall time [s]", "status"]
    rows = []
    for run in runfile.runs:
        rows.append([str(run.panel) if run.panel is not None else run.name, run.metric,
                     "(" + ", ".join(f"{w:g}" for w in run.weights) + ")", str(run.n_iter),
                     f"{run.energies[-1]:.3e}" if run.energies.size else "-",
                     "yes" if run.converged else "no", f"{run.wall_time:.2f}", run.status])
    return "\n".join(format_table(header, rows))


def _read(path, check=False):
    from ..io.runfile import check_run_file, read_run_file
    from ..io.recorder import RunFileError

    with usage_errors(RunFileError):
        return check_run_file(path) if check else read_run_file(path)


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
    lines = format_table(header, rows)
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


def cmd_inspect(args, out, err):
    """``densflow inspect``: print the file's header line and tables."""
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


def cmd_plot(args, out, err):
    """``densflow plot``: redraw the figure (and with ``--movie`` a flow's movie)."""
    figure = figure_path(args.file, args.output)
    runfile = _read(args.file)
    if not runfile.runs and not runfile.flows:
        raise UsageError(f"{args.file}: holds no runs to plot")
    if args.movie and not runfile.flows:
        raise UsageError(f"{args.file}: --movie animates flows; this file holds none")
    figure = save_figure(runfile, figure)
    print(f"wrote {figure}", file=out)
    if args.movie:
        from .flow_figures import save_flow_movie

        try:
            save_flow_movie(runfile, args.movie)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{args.movie}: cannot write the movie ({exc})") from None
        print(f"wrote {args.movie}", file=out)
    return 0
