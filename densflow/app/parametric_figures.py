r"""Figures of the parametric side.

* :func:`save_seeds_figure`: the generic figure of a parametric run file (``densflow
  plot``): per group, the recorded value and every monitor against the iteration, median
  and range over seeds; :func:`runs_by_group`, :func:`seed_matrix` and :func:`seed_band`
  are its parts, for the figures of case files.
* :func:`save_reparametrisation_figure`: natural-gradient descent on :math:`W_2^2` to a 1D
  Gaussian in two parametrisations, :math:`(m, s)` and :math:`(m, \log s)`. With
  :class:`~densflow.parametric.metrics.ExactWasserstein` both follow
  :math:`s' = -2(s - s_*)` and their :math:`(m, s)` paths coincide up to
  :math:`O(\eta)`; Euclidean descent follows :math:`s' = -2(s - s_*)` in one and
  :math:`s' = -2s^2(s - s_*)` in the other.
"""

import os
import warnings

import numpy as np

from ..parametric.losses import W2Gaussian
from ..parametric.models import Gaussian
from ..parametric.problem import Problem, fixed_step_path

__all__ = ["gaussian_descent_path", "reparametrisation_gap", "save_reparametrisation_figure", "save_seeds_figure",
           "runs_by_group", "seed_matrix", "seed_band"]


def gaussian_descent_path(parametrization, metric, eta, T=1.0, start=(-1.0, 0.5),
                          target=(1.0, 2.0)):
    r"""``(m, s)`` after each of ``round(T/eta)`` fixed steps ``eta`` of descent on
    :math:`W_2^2(N(m, s^2), N(\mu, \sigma^2))`, ``target = (μ, σ)``, from ``start = (m0, s0)``
    with ``parametrization`` ``"diag"`` or ``"logdiag"``; shape ``(n + 1, 2)``."""
    if parametrization not in ("diag", "logdiag"):
        raise ValueError(f"parametrization must be 'diag' or 'logdiag', got {parametrization!r}")
    model = Gaussian(1, parametrization)
    m0, s0 = start
    theta0 = np.array([m0, s0 if parametrization == "diag" else np.log(s0)], dtype=float)
    problem = Problem(model, W2Gaussian(target[0], target[1] ** 2), z=np.zeros((1, 1)))
    path, _ = fixed_step_path(problem, theta0, metric, eta, int(round(T / eta)))
    if parametrization == "logdiag":
        path[:, 1] = np.exp(path[:, 1])
    return path


def reparametrisation_gap(metric, eta, T=1.0):
    r"""The gap between the ``(m, s)`` paths of the two parametrisations after each step
    (the larger of :math:`|\Delta m|` and :math:`|\Delta s|`), shape ``(n + 1,)``."""
    return np.abs(gaussian_descent_path("diag", metric, eta, T)
                  - gaussian_descent_path("logdiag", metric, eta, T)).max(axis=1)


def save_reparametrisation_figure(filename, eta=0.01, T=1.0, steps=(0.02, 0.01, 0.005)):
    """Draw into ``filename``: left, the four ``(m, s)`` paths (two metrics × two
    parametrisations) with step ``eta`` over ``t ∈ [0, T]``, marked every 0.1 of time;
    right, the gap between the two parametrisations' paths against time for each of
    ``steps``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 5.6))
    every = max(int(round(0.1 / eta)), 1)
    styles = {("exact_wasserstein", "diag"): dict(color="0.55", lw=5, alpha=0.5),
              ("exact_wasserstein", "logdiag"): dict(color="k", ls="--", lw=1.2, marker="o",
                                                     ms=4, markevery=every),
              ("euclidean", "diag"): dict(color="tab:blue", lw=0, marker="x", ms=7,
                                          markevery=(every // 2, every)),
              ("euclidean", "logdiag"): dict(color="tab:blue", ls="--", lw=1.2, marker="s",
                                             ms=3.5, markevery=every)}
    names = {"exact_wasserstein": "exact Wasserstein", "euclidean": "Euclidean",
             "diag": "(m, s)", "logdiag": "(m, log s)"}
    notes = {("euclidean", "diag"): " (= exact W.: the W2 metric of (m, s) is I)"}
    for (metric, par), style in styles.items():
        p = gaussian_descent_path(par, metric, eta, T)
        ax.plot(p[:, 0], p[:, 1], label=f"{names[metric]}, {names[par]}"
                + notes.get((metric, par), ""), **style)
    ax.plot([-1.0], [0.5], "o", color="tab:red", ms=8, mfc="none", label="start N(-1, 0.5²)")
    ax.plot([1.0], [2.0], "*", color="tab:red", ms=12, label="target N(1, 2²)")
    ax.set_xlabel("mean m")
    ax.set_ylabel("standard deviation s")
    ax.set_title(f"(m, s) paths, step {eta:g}, t ∈ [0, {T:g}], marks every 0.1 of t", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    shades = ["-", "--", ":"]
    for metric, color in (("exact_wasserstein", "k"), ("euclidean", "tab:blue")):
        for step, ls in zip(steps, shades):
            gap = reparametrisation_gap(metric, step, T)
            t = step * np.arange(gap.size)
            ax2.plot(t[1:], gap[1:], color=color, ls=ls, lw=1.4,
                     label=f"{names[metric]}, step {step:g}: largest {gap.max():.2g}")
    ax2.set_yscale("log")
    ax2.set_xlabel("time t = step × iterations")
    ax2.set_ylabel("gap between the (m, s) and (m, log s) paths\nmax(|Δm|, |Δs|)")
    ax2.set_title("gap: O(step) for exact Wasserstein, O(1) for Euclidean\n"
                  "(the three Euclidean curves coincide)", fontsize=10)
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    fig.suptitle("Natural-gradient descent on $W_2^2$ to N(1, 2²) in two parametrisations",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(filename, dpi=90)
    plt.close(fig)
    return filename


def runs_by_group(runfile):
    """``{group: {experiment: [Run, ...]}}`` in the order of the run file."""
    groups = {}
    for run in runfile.runs:
        g = str(run.attrs.get("group", "runs"))
        e = str(run.attrs.get("experiment", run.name))
        groups.setdefault(g, {}).setdefault(e, []).append(run)
    return groups


def seed_matrix(series):
    """``(x, V)``: the union ``x`` of the abscissae of ``series`` (a list of ``(x_i, v_i)``,
    one per seed) and ``V[i, j]``, the value of seed ``i`` at ``x[j]`` (NaN where it has none,
    e.g. after a run stopped early)."""
    x = np.unique(np.concatenate([np.asarray(xi, dtype=float) for xi, _ in series]))
    V = np.full((len(series), x.size), np.nan)
    for i, (xi, vi) in enumerate(series):
        V[i, np.searchsorted(x, xi)] = vi
    return x, V


def seed_band(ax, x, V, label, color=None, ls="-", lw=1.5, quantiles=(0.0, 1.0), alpha=0.18,
              **style):
    """Draw the median over seeds (rows of ``V``) with the band between the ``quantiles``
    (default: min and max) when there are several seeds; return the line (``style``:
    more keywords of ``ax.plot``)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        med = np.nanmedian(V, axis=0)
        line, = ax.plot(x, med, color=color, ls=ls, lw=lw, label=label, **style)
        if V.shape[0] > 1:
            lo, hi = np.nanquantile(V, quantiles[0], axis=0), np.nanquantile(V, quantiles[1], axis=0)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, lw=0)
    return line


def save_seeds_figure(runfile, path, dpi=90):
    """The generic figure of a parametric run file: one column per group, one row for the
    recorded value and one per monitor, each experiment's median over seeds and range
    (min–max) against the iteration; log axes where every value is positive. A run that
    did not complete is drawn dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io.runfile import read_monitors

    monitors = read_monitors(runfile.path)
    groups = runs_by_group(runfile)
    rows = ["value"] + sorted({k for its, m in monitors.values() for k in m})
    fig, axes = plt.subplots(len(rows), len(groups), figsize=(6.4 * len(groups), 4.6 * len(rows)),
                             squeeze=False)
    for col, (g, exps) in enumerate(groups.items()):
        for row, key in enumerate(rows):
            ax = axes[row, col]
            positive = True
            for e, runs in exps.items():
                if key == "value":
                    series = [(np.arange(r.energies.size), r.energies) for r in runs]
                else:
                    series = [(monitors[r.name][0], monitors[r.name][1][key]) for r in runs
                              if key in monitors.get(r.name, ((), {}))[1]]
                if not series:
                    continue
                x, V = seed_matrix(series)
                positive &= bool(np.all(V[np.isfinite(V)] > 0))
                done = all(r.status == "complete" for r in runs)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    last = np.nanmedian([v[-1] for _, v in series])
                seed_band(ax, x, V, f"{e} ({len(series)} seeds, last {last:.3g})",
                          ls="-" if done else "--")
            if positive:
                ax.set_yscale("log")
            ax.set_title(g if row == 0 else f"{g}: monitor {key}", fontsize=10)
            ax.set_xlabel("iteration")
            ax.set_ylabel(("recorded value (loss)" if key == "value" else key)
                          + "\nmedian, band: min to max")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    title = runfile.attrs.get("case_title")
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(str(title), 60 * len(groups))), fontsize=10)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=dpi)
    plt.close(fig)
    return path
