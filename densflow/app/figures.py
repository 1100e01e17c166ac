"""The convergence figure of a run file: energy against iteration, one panel per weight set.

Uses matplotlib's Agg backend (no display needed) and only the run file, so a figure
can be redrawn long after the run (``densflow plot FILE.h5``).
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from ..io.recorder import RunFile, read_run_file  # noqa: E402

__all__ = ["convergence_figure", "save_convergence_figure", "save_sweep_figure"]

LABELS = {"combined": "combined (wavelet)", "wasserstein": "Wasserstein",
          "fisher_rao": "Fisher–Rao", "mahalanobis": "Mahalanobis"}
STYLES = {"combined": dict(color="k", lw=2.0), "wasserstein": dict(color="tab:blue"),
          "fisher_rao": dict(color="tab:orange"), "mahalanobis": dict(color="tab:green")}


def _weights_text(weights):
    return "(α1, α2, α3) = (" + ", ".join(f"{w:g}" for w in weights) + ")"


def _panels(runfile):
    """``[(title, [runs])]``: the case's panels, then one panel per run outside panels."""
    panels = {}
    for run in runfile.runs:
        key = ("panel", run.panel) if run.panel is not None else ("run", run.name)
        if key not in panels:
            title = run.panel_title if run.panel is not None else run.name
            panels[key] = (f"{title}\n{_weights_text(run.weights)}", [])
        panels[key][1].append(run)
    return list(panels.values())


def _run_label(run):
    """``"Wasserstein: 1000 iterations, not converged"``: the legend entry of a run."""
    name = LABELS.get(run.metric, run.metric)
    if run.status not in ("complete", "failed"):
        return f"{name}: {run.n_iter} iterations so far ({run.status})"
    if run.converged:
        return f"{name}: {run.n_iter} iterations"
    return f"{name}: stopped at {run.n_iter}, not converged"


def convergence_figure(source, dpi=100):
    """Draw the convergence figure of a run file.

    Parameters
    ----------
    source : str, os.PathLike or RunFile
        A run file or what :func:`densflow.io.recorder.read_run_file` returned.
    dpi : int
        Resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per weight set, :math:`E(p_k)` on a log scale against ``k`` on a
        scale linear from 0 to 1 and logarithmic beyond (so that runs of ten and of a
        thousand iterations both show their shape), one curve per metric. The legend,
        below each panel, gives each run's iteration count and whether it converged,
        and names the dotted line: the tolerance ``tol``. An unfinished run's curve is
        dashed.
    """
    runfile = source if isinstance(source, RunFile) else read_run_file(source)
    if not runfile.runs:
        raise ValueError(f"{runfile.path}: holds no runs to plot")
    panels = _panels(runfile)
    ncols = 1 if len(panels) == 1 else (2 if len(panels) in (2, 4) else 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 4.6 * nrows), dpi=dpi,
                             squeeze=False, layout="constrained")
    for ax, (title, runs) in zip(axes.flat, panels):
        for run in runs:
            k = np.arange(run.energies.size)
            style = dict(STYLES.get(run.metric, {}))
            if run.status != "complete":
                style["ls"] = "--"
            ax.plot(k, np.where(run.energies > 0, run.energies, np.nan), label=_run_label(run),
                    **style)
        tol = runs[0].attrs.get("tol", np.nan)
        if np.isfinite(tol) and tol > 0:
            ax.axhline(tol, color="0.45", lw=1.0, ls=":", label=f"tolerance tol = {tol:g}")
        ax.set_yscale("log")
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        ax.set_xlim(0, max(2, max(r.energies.size - 1 for r in runs)) * 1.15)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration k (logarithmic from 1 on)")
        ax.set_ylabel("energy E(p_k)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1,
                  frameon=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    title = runfile.attrs.get("case_title")
    boundaries = boundary_of(runfile)
    if boundaries:  # runs on a no-flux box (a periodic run records no boundary)
        title = f"{title or ''}{chr(10) if title else ''}boundary: {', '.join(boundaries)}"
    if title:
        fig.suptitle(str(title), fontsize=12)
    return fig


def boundary_of(runfile):
    """The non-periodic boundaries the runs of ``runfile`` record (``grid_boundary``), sorted."""
    found = {run.attrs.get("grid_boundary") for run in runfile.runs}
    return sorted(str(b.decode() if isinstance(b, bytes) else b) for b in found if b is not None)


def save_convergence_figure(source, path, dpi=100):
    """Draw :func:`convergence_figure` of ``source`` and save it to ``path`` (PNG, …)."""
    fig = convergence_figure(source, dpi=dpi)
    try:
        fig.savefig(os.fspath(path), dpi=dpi)
    finally:
        plt.close(fig)
    return path


#: Markers and line widths of the sweep figure: where curves coincide (runs stopped at
#: the same cap), the wider ones underneath and the larger markers keep each visible.
SWEEP_STYLES = {"combined": dict(marker="o", ms=5, lw=2.0, ls="-", zorder=6),
                "wasserstein": dict(marker="s", ms=10, lw=4.0, ls="-", zorder=3),
                "fisher_rao": dict(marker="D", ms=7, lw=2.4, ls="--", zorder=4),
                "mahalanobis": dict(marker="^", ms=5, lw=1.4, ls=":", zorder=5)}


def save_sweep_figure(rows, x, params, path, title=None):
    """Draw the iterations of every run of a sweep against the parameter ``x``.

    Parameters
    ----------
    rows : list of dict
        The index rows of :func:`densflow.app.sweep.run_sweep` (a run's ``panel``,
        ``metric``, ``iterations``, ``converged``, ``max_iter`` and the parameters).
    x : str
        The parameter on the horizontal axis (log scale, base 2).
    params : list of str
        All parameters; one axes per value of the parameters other than ``x``.
    path : str
        Where to save the figure.
    title : str or None
        The figure's title.

    Returns
    -------
    str
        ``path``.

    Notes
    -----
    One curve per (panel, metric). A filled marker is a converged run, a hollow one a
    run that stopped without converging; the iteration cap ``max_iter`` is drawn as a
    grey band. Runs stopped at the cap coincide there: the curves are drawn with
    distinct markers, widths and dashes so that each stays visible.
    """
    others = [p for p in params if p != x]
    groups = {}
    for r in rows:
        if r.get("file_status") == "failed" or r.get("metric") is None:
            continue
        key = tuple(r[p] for p in others)
        groups.setdefault(key, []).append(r)
    keys = list(groups) or [()]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.0 * len(keys), 4.6), squeeze=False,
                             layout="constrained")
    handles = {}
    for ax, key in zip(axes[0], keys):
        curves = {}
        for r in groups.get(key, []):
            curves.setdefault((r["panel"], r["metric"]), []).append(r)
        caps = sorted({int(r["max_iter"]) for r in groups.get(key, [])
                       if int(r.get("max_iter", -1) or -1) > 0})
        for cap in caps:
            band = ax.axhline(cap, color="0.85", lw=9, zorder=1, solid_capstyle="butt")
            handles.setdefault(f"cap: max_iter = {cap}", band)
            ax.annotate(f"cap {cap}", (0.01, cap), xycoords=("axes fraction", "data"),
                        xytext=(0, 9), textcoords="offset points", fontsize=8, color="0.35")
        many_panels = len({c[0] for c in curves}) > 1
        for (panel, metric), rs in sorted(curves.items(), key=lambda kv: str(kv[0])):
            rs = sorted(rs, key=lambda r: r[x])
            xs = np.array([r[x] for r in rs], dtype=float)
            its = np.array([r["iterations"] for r in rs], dtype=float)
            conv = np.array([bool(int(r["converged"])) for r in rs])
            color = STYLES.get(metric, {}).get("color")
            style = dict(SWEEP_STYLES.get(metric, dict(marker="o", ms=5, lw=1.5, ls="-")))
            marker, ms = style.pop("marker"), style.pop("ms")
            label = LABELS.get(metric, metric) + (f" (panel {panel})" if many_panels else "")
            line, = ax.plot(xs, its, color=color, label=label, **style)
            color = line.get_color()
            z = style.get("zorder", 2) + 0.5
            ax.plot(xs[conv], its[conv], ls="none", marker=marker, ms=ms, color=color,
                    zorder=z)
            ax.plot(xs[~conv], its[~conv], ls="none", marker=marker, ms=ms, mfc="white",
                    mew=1.6, color=color, zorder=z)
            handles.setdefault(label, plt.Line2D([], [], color=color, marker=marker, ms=ms,
                                                 **{k: v for k, v in style.items()
                                                    if k != "zorder"}))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "235" else ""))
        ax.set_xlabel(x)
        ax.set_ylabel("iterations (to E ≤ tol, or to the cap)")
        ax.set_title(", ".join(f"{p} = {v}" for p, v in zip(others, key)) or "")
        ax.grid(True, which="both", lw=0.3)
        top = max(caps + [1]) if caps else None
        if top:
            ax.set_ylim(top=top * 1.6)
    handles["filled marker: converged"] = plt.Line2D([], [], ls="none", marker="o", ms=6,
                                                     color="0.3")
    handles["hollow marker: stopped, not converged"] = plt.Line2D(
        [], [], ls="none", marker="o", ms=6, color="0.3", mfc="white", mew=1.6)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center",
               ncol=min(len(handles), 2 * len(keys)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
