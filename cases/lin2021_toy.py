"""Lin et al. (2021), Example 1 and Fig. 1: Wasserstein vs Euclidean proximal updates.

The model is a pair of delta measures, ρ_θ = α δ_a + (1 − α) δ_b with θ = (a, b),
a < 0 < b: a push-forward of z ~ N(0, 1), x = a if z < Φ⁻¹(α) else b. Its Jacobian
in θ is e_a or e_b, so the relaxed Wasserstein metric E[JᵀJ] is diag(α, 1 − α) — the
seed's Theorem 2 / Remark 1 — and the proximal distance is
W₂(ρ_θ, ρ_θk)² = α (a − a_k)² + (1 − α)(b − b_k)² against the Euclidean |θ − θ_k|².

For the loss F(θ) = W₁(ρ_θ, ρ_θ*) (same α) both proximal updates

    θ_{k+1} = argmin_θ F(θ) + D(θ, θ_k)² / (2h)

are computed numerically (scipy, Nelder–Mead) from a grid of θ_k, checked against
their closed forms (soft thresholding: the Wasserstein step moves a and b by h, the
Euclidean one by hα and h(1 − α)), and drawn over the level sets of F.

Run: ``python cases/lin2021_toy.py [-o plots/lin2021_toy.png]``.
"""

import argparse

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

ALPHA = 0.25
THETA_STAR = np.array([-0.6, 1.2])
H = 0.25


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


def figure(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 4.2), constrained_layout=True)
    theta_k = np.array([-1.6, 0.4])
    for theta, style, label in ((theta_k, "C0", r"$\rho_{\theta_k}$"),
                                (THETA_STAR, "k", r"$\rho_{\theta^*}$")):
        ax0.vlines(theta, 0, [ALPHA, 1 - ALPHA], colors=style, lw=3, alpha=0.7)
        ax0.plot(theta, [ALPHA, 1 - ALPHA], "o", color=style, label=label)
    ax0.axvline(0, color="0.7", lw=0.8)
    ax0.set_xlabel("x")
    ax0.set_ylabel("mass")
    ax0.set_title(rf"$\rho_\theta = \alpha\,\delta_a + (1-\alpha)\,\delta_b$, $\alpha = {ALPHA}$")
    ax0.legend()

    a = np.linspace(-2.0, -0.05, 121)
    b = np.linspace(0.05, 2.0, 121)
    A, B = np.meshgrid(a, b, indexing="xy")
    F = np.vectorize(lambda x, y: w1(np.array([x, y]), THETA_STAR))(A, B)
    cs = ax1.contour(A, B, F, levels=12, cmap="Greys", linewidths=0.8)
    ax1.clabel(cs, fontsize=6, fmt="%.2f")
    starts = [np.array([x, y]) for x in np.linspace(-1.8, -0.2, 5) for y in np.linspace(0.2, 1.9, 5)]
    for metric, color in (("euclidean", "tab:red"), ("wasserstein", "tab:blue")):
        steps = np.array([proximal_step(s, metric) - s for s in starts])
        xy = np.array(starts)
        ax1.quiver(xy[:, 0], xy[:, 1], steps[:, 0], steps[:, 1], color=color, angles="xy",
                   scale_units="xy", scale=1, width=0.004, label=f"{metric} proximal step")
    ax1.plot(*THETA_STAR, "k*", ms=12, label=r"$\theta^*$")
    ax1.set_xlabel("a")
    ax1.set_ylabel("b")
    ax1.set_title(rf"$F(\theta) = W_1(\rho_\theta, \rho_{{\theta^*}})$, h = {H}")
    ax1.legend(fontsize=8, loc="upper left")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description="Lin et al. (2021), Example 1 / Fig. 1")
    ap.add_argument("-o", "--output", default="lin2021_toy.png", help="figure (PNG)")
    args = ap.parse_args()
    G = rwp_metric()
    print(f"relaxed Wasserstein metric E[J^T J] from 2e5 samples: diag({G[0, 0]:.4f}, {G[1, 1]:.4f}),"
          f" off-diagonal {G[0, 1]:.1e}; exact diag({ALPHA}, {1 - ALPHA})")
    for metric in ("euclidean", "wasserstein"):
        start = np.array([-1.6, 0.4])
        step = proximal_step(start, metric) - start
        cos = step @ (THETA_STAR - start) / np.linalg.norm(step) / np.linalg.norm(THETA_STAR - start)
        print(f"{metric:11s} proximal step from {start}: {np.round(step, 4)}, "
              f"cosine with the direction to theta*: {cos:.3f}")
    print(f"wrote {figure(args.output)}")


if __name__ == "__main__":
    main()
