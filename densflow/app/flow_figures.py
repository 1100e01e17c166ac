r"""Figures of recorded flows (``densflow plot`` on a flow run file).

* :func:`save_flow_figure`: one row per flow — the saved densities :math:`\rho = Np`
  (1D: curves coloured by time; 2D: up to four snapshots on one colour scale), the
  energy :math:`F` against time (dots at the saved densities) and the accepted step
  sizes against time;
* :func:`save_flow_movie`: an animated GIF (matplotlib's Pillow writer) of the saved
  densities, the flows side by side.

Both read only the run file, so they can be redrawn long after the run.
"""

import os
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import animation  # noqa: E402

from ..io.runfile import RunFile, read_flows  # noqa: E402

__all__ = ["save_flow_figure", "save_flow_movie", "flow_runs", "snapshot_indices"]

METRIC_LABELS = {"wasserstein": "Wasserstein", "fisher_rao": "Fisher–Rao",
                 "mahalanobis": "Mahalanobis"}
#: Snapshots drawn per 2D flow in the figure.
SNAPSHOTS_2D = 4


def flow_runs(source):
    """The flows (with their saved densities) of a run file path or :class:`RunFile`."""
    path = source.path if isinstance(source, RunFile) else os.fspath(source)
    if isinstance(source, RunFile) and all(f.densities is not None for f in source.flows):
        return source.flows
    return read_flows(path, densities=True)


def snapshot_indices(count, wanted):
    """``wanted`` indices spread evenly over ``range(count)``, first and last included."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(v)) for v in np.linspace(0, count - 1, wanted)})


def _log_time(run):
    """The smallest positive saved time when the saved times span more than two decades
    (time axes are then symmetric-logarithmic, linear below it), else ``None``."""
    positive = run.times[run.times > run.times[0]] - run.times[0] if run.times.size else run.times
    if positive.size < 2 or positive[-1] / positive[0] < 100:
        return None
    return float(positive[0])


def _time_axis(ax, run, threshold):
    ax.set_xlabel("t")
    if threshold is not None:
        ax.set_xscale("symlog", linthresh=threshold, linscale=1.0)
        ax.set_xlim(run.times[0], run.t)


def _row_title(run):
    state = ("complete" if run.status == "complete" and run.converged else
             f"{run.status}: {run.message}" if run.message else run.status)
    who = "" if run.label == "flow" else f"{run.label}: "
    return (f"{who}{METRIC_LABELS.get(run.metric, run.metric)} flow, {run.scheme}, "
            f"{run.n_steps} steps to t = {run.t:.4g} ({state})")


def _rho(run, i):
    return run.densities[i] * run.densities[i].size


def _draw_1d(fig, run):
    ax, ax_e, ax_h = fig.subplots(1, 3, width_ratios=[2.2, 1.2, 1.2])
    x = (np.arange(run.densities.shape[1]) + 0.0) / run.densities.shape[1]
    times = run.times
    span = (times[0], times[-1]) if times.size > 1 and times[-1] > times[0] else (0.0, 1.0)
    threshold = _log_time(run)
    cmap = plt.get_cmap("viridis")
    norm = (plt.Normalize(*span) if threshold is None else
            matplotlib.colors.SymLogNorm(threshold, linscale=1.0, vmin=span[0], vmax=span[1]))
    for i in range(times.size):
        ax.plot(x, _rho(run, i), color=cmap(norm(times[i])), lw=1.4)
    ax.set_xlabel("x")
    ax.set_ylabel(r"$\rho = N p$")
    ax.set_xlim(0, 1)
    ax.set_title("saved densities", fontsize=9)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="t", fraction=0.05, pad=0.02)
    _draw_histories(ax_e, ax_h, run)


def _draw_2d(fig, run):
    picks = snapshot_indices(run.times.size, SNAPSHOTS_2D)
    axes = fig.subplots(1, len(picks) + 2, width_ratios=[1] * len(picks) + [1.3, 1.3])
    for ax, i in zip(axes, picks):
        # each snapshot on its own colour scale: a peaked start would darken the rest
        im = ax.imshow(_rho(run, i).T, origin="lower", extent=(0, 1, 0, 1), cmap="magma",
                       interpolation="nearest")
        ax.set_title(f"ρ = Np at t = {run.times[i]:.3g}", fontsize=9)
        ax.set_xticks([0, 1])
        ax.set_yticks([0, 1])
        ax.set_xlabel("x1", labelpad=-6)
        fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.06, pad=0.12)
    axes[0].set_ylabel("x2", labelpad=-6)
    _draw_histories(axes[-2], axes[-1], run)


def _draw_histories(ax_e, ax_h, run):
    threshold = _log_time(run)
    ax_e.plot(run.step_times, run.energies, color="k", lw=1.2)
    at = np.searchsorted(run.step_times, run.times)
    at = np.clip(at, 0, run.energies.size - 1)
    ax_e.plot(run.times, run.energies[at], "o", color="tab:red", ms=3.5, label="saved densities")
    _time_axis(ax_e, run, threshold)
    ax_e.set_ylabel("F(p(t))")
    ax_e.set_title("energy", fontsize=9)
    ax_e.legend(fontsize=7, loc="best")
    if run.steps.size:
        ax_h.semilogy(run.step_times[1:], run.steps, ".-", color="tab:blue", ms=3, lw=0.8)
    _time_axis(ax_h, run, threshold)
    ax_h.set_ylabel("step size")
    adaptive = bool(run.attrs.get("adaptive", 1))
    what = f"rtol {float(run.attrs.get('rtol', np.nan)):g}" if adaptive else "fixed dt"
    ax_h.set_title(f"step sizes ({what})", fontsize=9)


def save_flow_figure(source, path, title=None, dpi=100):
    """Draw the flows of a run file into ``path`` (PNG); returns ``path``."""
    runs = flow_runs(source)
    if not runs:
        raise ValueError("the run file holds no flows")
    rows = len(runs)
    fig = plt.figure(figsize=(12.5, 3.3 * rows + 0.5), layout="constrained")
    subs = np.atleast_1d(fig.subfigures(rows, 1))
    for sub, run in zip(subs, runs):
        if run.densities is None or run.densities.shape[0] == 0:
            sub.suptitle(_row_title(run) + " — no saved densities", fontsize=10)
            continue
        (_draw_1d if run.densities.ndim == 2 else _draw_2d)(sub, run)
        sub.suptitle(_row_title(run), fontsize=10)
    if title is None and isinstance(source, RunFile):
        title = source.attrs.get("case_title")
    if title:
        fig.suptitle(str(title), fontsize=12)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_flow_movie(source, path, fps=8, dpi=70, max_frames=60, title=None):
    """Animate the saved densities of the flows of a run file into the GIF ``path``
    (flows side by side; frame ``i`` of the movie shows each flow's saved density ``i``,
    at most ``max_frames`` of them spread evenly); returns ``path``."""
    runs = [r for r in flow_runs(source) if r.densities is not None and r.densities.shape[0]]
    if not runs:
        raise ValueError("the run file holds no saved densities to animate")
    count = max(r.times.size for r in runs)
    picks = snapshot_indices(count, max_frames)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    draws = []
    for ax, run in zip(axes, runs):
        rho = run.densities * run.densities[0].size
        if rho.ndim == 2:
            x = np.arange(rho.shape[1]) / rho.shape[1]
            ax.plot(x, rho[0], color="0.7", lw=1, label=f"t = {run.times[0]:.3g}")
            (line,) = ax.plot(x, rho[0], color="tab:blue", lw=1.6)
            ax.set_xlim(0, 1)
            ax.set_ylim(min(0.0, float(rho.min())), 1.05 * float(rho.max()))
            ax.set_xlabel("x")
            ax.set_ylabel(r"$\rho = N p$")
            ax.legend(fontsize=7, loc="upper right")
            draws.append((run, ax, lambda i, rho=rho, line=line: line.set_ydata(rho[i])))
        else:
            # one colour scale for the whole movie, square-root: later frames stay visible
            norm = matplotlib.colors.PowerNorm(0.5, vmin=0.0, vmax=float(rho.max()))
            im = ax.imshow(rho[0].T, origin="lower", extent=(0, 1, 0, 1), cmap="magma",
                           norm=norm, interpolation="nearest")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=r"$\rho = Np$ (square-root scale)")
            ax.set_xticks([0, 1])
            ax.set_yticks([0, 1])
            draws.append((run, ax, lambda i, rho=rho, im=im: im.set_data(rho[i].T)))
    if title is None and isinstance(source, RunFile):
        title = source.attrs.get("case_title")
    if title:
        fig.suptitle(textwrap.fill(str(title), 48 * len(runs)), fontsize=9)

    def frame(j):
        for run, ax, draw in draws:
            i = min(picks[j], run.times.size - 1)
            draw(i)
            who = "" if run.label == "flow" else f"{run.label}: "
            ax.set_title(f"{who}t = {run.times[i]:.4g}", fontsize=9)
        return []

    movie = animation.FuncAnimation(fig, frame, frames=len(picks), blit=False)
    movie.save(path, writer=animation.PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return path
