"""Lin et al. (2021), Example 1 and Fig. 1: Wasserstein against Euclidean proximal steps.

The model is a pair of delta measures, ρ_θ = α δ_a + (1 − α) δ_b with θ = (a, b),
a < 0 < b: a push-forward of z ~ N(0, 1), x = a if z < Φ⁻¹(α) else b. Its Jacobian
in θ is e_a or e_b, so the relaxed Wasserstein metric E[JᵀJ] is diag(α, 1 − α) (the
paper's Theorem 2 / Remark 1; ``rwp_metric`` estimates it from samples) and the
proximal distance is W₂(ρ_θ, ρ_θk)² = α (a − a_k)² + (1 − α)(b − b_k)² against the
Euclidean |θ − θ_k|².

For the loss F(θ) = W₁(ρ_θ, ρ_θ*) (same α) the proximal iteration

    θ_{k+1} = argmin_θ F(θ) + D(θ, θ_k)² / (2h),     h = 0.25,

is run in both geometries (``densflow.parametric.flows.ProximalPoint``, each step by
Nelder–Mead; tests check it against the closed form, soft thresholding: the Wasserstein
step moves a and b by h, the Euclidean one by hα and h(1 − α)). Budget: at most 40
proximal steps, stopped when F ≤ 1e-8; the seeds are the starting points: seed 0 is
θ = (−1.6, 0.4), seeds 1–25 a 5 × 5 grid of the quadrant a < 0 < b.

Run: ``densflow run cases/lin2021_toy.py --figure lin2021_toy.png`` (about 30 s).
"""

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from densflow.app.parametric_case import Experiment, ParametricCase
from densflow.parametric.flows import ProximalPoint
from densflow.solving import FixedStep

ALPHA = 0.25
THETA_STAR = np.array([-0.6, 1.2])
H = 0.25
TOL, MAX_ITER = 1e-8, 40
STARTS = [np.array([-1.6, 0.4])] + [np.array([x, y]) for x in np.linspace(-1.8, -0.2, 5)
                                    for y in np.linspace(0.2, 1.9, 5)]
COLORS = {"Wasserstein": "tab:blue", "Euclidean": "tab:red"}


def w1(theta, other, alpha=ALPHA):
    """W₁ between α δ_a + (1 − α) δ_b measures in 1D, from their quantile functions:
    ∫₀¹ |Q_θ(u) − Q_other(u)| du with Q = a on [0, α), b on [α, 1) (a < b)."""
    (a, b), (c, d) = np.sort(theta), np.sort(other)
    return alpha * abs(a - c) + (1 - alpha) * abs(b - d)


def rwp_metric(alpha=ALPHA, n=200_000, seed=0):
    """E[JᵀJ] of the push-forward x = a·1[z < Φ⁻¹(α)] + b·1[z ≥ Φ⁻¹(α)], from samples."""
    z = np.random.default_rng(seed).standard_normal(n)
    left = z < norm.ppf(alpha)
    J = np.stack([left, ~left], axis=1).astype(float)  # dx/d(a, b), one row per sample
    return J.T @ J / n


def proximal_step(theta_k, metric, h=H, alpha=ALPHA, theta_star=THETA_STAR):
    """argmin_θ F(θ) + (θ − θ_k)ᵀ G (θ − θ_k) / (2h) with G = diag(α, 1 − α) or I."""
    G = np.diag([alpha, 1 - alpha]) if metric == "wasserstein" else np.eye(2)

    def objective(theta):
        d = theta - theta_k
        return w1(theta, theta_star, alpha) + d @ G @ d / (2 * h)

    res = minimize(objective, theta_k, method="Nelder-Mead",
                   options=dict(xatol=1e-10, fatol=1e-14, maxiter=4000))
    return res.x


def proximal_step_closed_form(theta_k, metric, h=H, alpha=ALPHA, theta_star=THETA_STAR):
    """Soft thresholding towards θ*: thresholds h, h (Wasserstein) or hα, h(1 − α)."""
    t = np.array([h, h]) if metric == "wasserstein" else h * np.array([alpha, 1 - alpha])
    d = theta_k - theta_star
    return theta_star + np.sign(d) * np.maximum(np.abs(d) - t, 0.0)


def loss(theta):
    """F(θ) = W₁(ρ_θ, ρ_θ*)."""
    return w1(theta, THETA_STAR)


def maker(metric):
    def make(seed):
        def prox(theta):
            return proximal_step(theta, metric)

        prox.__name__ = f"{metric}_proximal_step"
        problem = ProximalPoint(loss, prox, min_value=0.0,
                                description={"alpha": ALPHA, "h": H, "theta_star": THETA_STAR})
        return problem, STARTS[seed]
    return make


def figure(runfile_path, png):
    """The two atoms, the first proximal step from every start and the path from seed 0
    over the level sets of F, and F against the proximal iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densflow.app.parametric_figures import runs_by_group, seed_band, seed_matrix
    from densflow.io.recorder import read_run_file

    runs = runs_by_group(read_run_file(runfile_path, snapshots=True))["proximal iteration"]
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 4.4), constrained_layout=True,
                                        gridspec_kw={"width_ratios": [0.8, 1.15, 1.0]})
    theta_k = STARTS[0]
    for theta, color, label in ((theta_k, "0.45", r"$\rho_{\theta_0}$, $\theta_0 = (-1.6, 0.4)$"),
                                (THETA_STAR, "k", r"$\rho_{\theta^*}$, $\theta^* = (-0.6, 1.2)$")):
        ax0.vlines(theta, 0, [ALPHA, 1 - ALPHA], colors=color, lw=3, alpha=0.7)
        ax0.plot(theta, [ALPHA, 1 - ALPHA], "o", color=color, label=label)
    ax0.axvline(0, color="0.8", lw=0.8)
    ax0.set_xlabel("x")
    ax0.set_ylabel("mass")
    ax0.set_ylim(0, 1)
    ax0.set_title(rf"$\rho_\theta = \alpha\,\delta_a + (1-\alpha)\,\delta_b$, $\alpha = {ALPHA}$",
                  fontsize=10)
    ax0.legend(fontsize=8, loc="upper left")

    a, b = np.linspace(-2.0, -0.02, 161), np.linspace(0.02, 2.0, 161)
    A, B = np.meshgrid(a, b, indexing="xy")
    F = ALPHA * np.abs(A - THETA_STAR[0]) + (1 - ALPHA) * np.abs(B - THETA_STAR[1])
    levels = [0.1, 0.2, 0.3, 0.4, 0.6, 0.8]
    cs = ax1.contour(A, B, F, levels=levels, colors="0.6", linewidths=0.8)
    ax1.clabel(cs, fontsize=8, fmt="F = %.1f", inline_spacing=4)
    for label, color in COLORS.items():
        paths = {int(r.attrs["seed"]): r.snapshots for r in runs[label]}
        grid = [p[:2] for s, p in sorted(paths.items()) if s > 0 and len(p) > 1]
        if grid:
            starts, first = np.array([p[0] for p in grid]), np.array([p[1] - p[0] for p in grid])
            ax1.quiver(starts[:, 0], starts[:, 1], first[:, 0], first[:, 1], color=color,
                       angles="xy", scale_units="xy", scale=1, width=0.005,
                       label=f"{label}: first step from each grid start")
        if 0 in paths:
            ax1.plot(*paths[0].T, "o-", color=color, ms=3, lw=1,
                     label=f"{label}: every step from $\\theta_0$ ({len(paths[0]) - 1})")
    ax1.plot(*THETA_STAR, "k*", ms=12, label=r"$\theta^*$")
    ax1.set_xlim(-2.0, 0.0)
    ax1.set_ylim(0.0, 2.05)
    ax1.set_aspect("equal")
    ax1.set_xlabel("a")
    ax1.set_ylabel("b")
    ax1.set_title(rf"proximal steps, h = {H}, over the level sets of $F = W_1(\rho_\theta, "
                  r"\rho_{\theta^*})$", fontsize=10)
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    for label, color in COLORS.items():
        # a run that stopped (F <= tol) stays at its last value: prox(θ*) = θ*
        n = max(r.energies.size for r in runs[label])
        series = [(np.arange(n), np.pad(r.energies, (0, n - r.energies.size), mode="edge"))
                  for r in runs[label]]
        x, V = seed_matrix(series)
        n_steps = [r.n_iter for r in runs[label]]
        seed_band(ax2, x, V, color=color,
                  label=f"{label}: {np.median(n_steps):.0f} steps (median; {min(n_steps)}–"
                        f"{max(n_steps)}) to F ≤ {TOL:g}")
    ax2.set_ylim(0, None)
    ax2.set_xlabel("proximal iteration k")
    ax2.set_ylabel(r"$F(\theta_k)$ (a stopped run kept at its last value)")
    ax2.set_title(f"{len(runs['Wasserstein'])} starts: median, band min to max", fontsize=10)
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


case = ParametricCase(
    name="lin2021_toy",
    title="Lin et al. (2021), Example 1: Wasserstein and Euclidean proximal iterations "
          "of W1 between two-atom measures",
    experiments=[
        Experiment(label, maker(label.lower()), metric="euclidean", line_search=FixedStep(1.0),
                   max_iter=MAX_ITER, tol=TOL, group="proximal iteration")
        for label in COLORS],
    seeds=range(len(STARTS)),
    snapshot_every=1,
    figure=figure,
)
