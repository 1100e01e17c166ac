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

from .recorder import RunFile, read_run_file  # noqa: E402

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


def convergence_figure(source, dpi=100):
    """Draw the convergence figure of a run file.

    Parameters
    ----------
    source : str, os.PathLike or RunFile
        A run file or what :func:`densflow.recorder.read_run_file` returned.
    dpi : int
        Resolution of the figure.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per weight set, :math:`E(p_k)` on a log scale against ``k``, one
        curve per metric; an unfinished run's curve is dashed, the legend gives the
        iteration counts (``*``: stopped without converging).
    """
    runfile = source if isinstance(source, RunFile) else read_run_file(source)
    if not runfile.runs:
        raise ValueError(f"{runfile.path}: holds no runs to plot")
    panels = _panels(runfile)
    ncols = 1 if len(panels) == 1 else (2 if len(panels) in (2, 4) else 3)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.8 * nrows), dpi=dpi,
                             squeeze=False)
    for ax, (title, runs) in zip(axes.flat, panels):
        for run in runs:
            k = np.arange(run.energies.size)
            mark = "" if run.converged else "*"
            label = f"{LABELS.get(run.metric, run.metric)} ({run.n_iter}{mark})"
            style = dict(STYLES.get(run.metric, {}))
            if run.status != "complete":
                style["ls"], label = "--", f"{label}, {run.status}"
            ax.plot(k, np.where(run.energies > 0, run.energies, np.nan), label=label, **style)
        tol = runs[0].attrs.get("tol", np.nan)
        if np.isfinite(tol) and tol > 0:
            ax.axhline(tol, color="0.6", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration k")
        ax.set_ylabel("energy E(p_k)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    title = runfile.attrs.get("case_title")
    if title:
        fig.suptitle(str(title), fontsize=12)
    fig.tight_layout()
    return fig


def save_convergence_figure(source, path, dpi=100):
    """Draw :func:`convergence_figure` of ``source`` and save it to ``path`` (PNG, …)."""
    fig = convergence_figure(source, dpi=dpi)
    try:
        fig.savefig(os.fspath(path), dpi=dpi)
    finally:
        plt.close(fig)
    return path


def save_sweep_figure(rows, x, params, path, title=None):
    """Iterations against the sweep parameter ``x``: one axes per value of the other
    parameters, one curve per (panel, metric); unconverged runs are drawn hollow."""
    others = [p for p in params if p != x]
    groups = {}
    for r in rows:
        if r.get("file_status") == "failed" or r.get("metric") is None:
            continue
        key = tuple(r[p] for p in others)
        groups.setdefault(key, []).append(r)
    keys = list(groups) or [()]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), squeeze=False,
                             constrained_layout=True)
    for ax, key in zip(axes[0], keys):
        curves = {}
        for r in groups.get(key, []):
            curves.setdefault((r["panel"], r["metric"]), []).append(r)
        for (panel, metric), rs in sorted(curves.items(), key=lambda kv: str(kv[0])):
            rs = sorted(rs, key=lambda r: r[x])
            xs = np.array([r[x] for r in rs], dtype=float)
            its = np.array([r["iterations"] for r in rs], dtype=float)
            conv = np.array([bool(r["converged"]) for r in rs])
            style = STYLES.get(metric, {})
            label = LABELS.get(metric, metric) + (f" (panel {panel})" if len(
                {c[0] for c in curves}) > 1 else "")
            line, = ax.plot(xs, its, "-", label=label, **style)
            ax.plot(xs[conv], its[conv], "o", color=line.get_color(), ms=4)
            ax.plot(xs[~conv], its[~conv], "o", mfc="none", color=line.get_color(), ms=5)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(x)
        ax.set_ylabel("iterations to tolerance (hollow: cap reached)")
        ax.set_title(", ".join(f"{p} = {v}" for p, v in zip(others, key)) or "")
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
