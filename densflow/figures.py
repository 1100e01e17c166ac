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

__all__ = ["convergence_figure", "save_convergence_figure"]

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
