"""The figure ``plots/aggregation_diffusion.png`` (docs: Free energies): stationary states
of the aggregation–diffusion energy ``eps * KL(uniform) + Interaction(W)``, ``W`` the
attractive Gaussian of unit mass and width 0.2 of :mod:`free_energies`, found by
``densflow.solve`` with its defaults (on a free energy: Newton preconditioned by the
inverse Hessian diagonal along exponential curves), to the KKT residual 1e-6 or below;
the middle panel shows the tails on a log scale.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/aggregation_figure.py -o plots/aggregation_diffusion.png
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import densflow as df  # noqa: E402
from free_energies import problems  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), os.pardir, "plots", "aggregation_diffusion.png")


def main():
    ap = argparse.ArgumentParser(description="aggregation-diffusion stationary states")
    ap.add_argument("-o", "--output", default=OUT)
    out = ap.parse_args().output
    fig, (ax1, axl, ax2) = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.3, 1.3, 1]})
    grid = df.Grid(512, 1)
    h = grid.n // 2
    x = np.roll(grid.coordinates(), h)  # the torus shown from -1/2 to 1/2 (aggregate at 0)
    x = np.where(x >= 0.5, x - 1.0, x)
    for name, style in (("agg 0.1", "-"), ("agg 0.05", "--")):
        E, p0 = problems(grid)[name]
        r = df.solve(E, p0)
        print(f"1D {name}: {r.n_iter} iterations, KKT residual {r.info['kkt_residual']:.1e}: {r.message}")
        label = f"ε = {name.split()[1]} ({r.n_iter} Newton steps, KKT {r.info['kkt_residual']:.0e})"
        ax1.plot(x, grid.size * np.roll(r.p, h), style, color="k", label=label)
        axl.semilogy(x, grid.size * np.roll(r.p, h), style, color="k", label=label)
    ax1.plot(x, grid.size * np.roll(p0, h), ":", color="0.5", label="start")
    ax1.set_xlabel("x (periodic, shown on [-1/2, 1/2))")
    ax1.set_ylabel("density ρ = N p")
    ax1.set_title("1D, n = 512")
    ax1.set_ylim(0, 1.45 * ax1.get_ylim()[1])  # room for the legend
    ax1.legend(frameon=False, fontsize=7, loc="upper left")
    axl.set_xlabel("x")
    axl.set_ylabel("ρ (log scale)")
    axl.set_title("1D, the tails")
    grid = df.Grid(128, 2)
    E, p0 = problems(grid)["agg 0.1"]
    r = df.solve(E, p0)
    print(f"2D agg 0.1: {r.n_iter} iterations, KKT residual {r.info['kkt_residual']:.1e}: {r.message}")
    shown = np.roll(grid.size * r.p, (grid.n // 2, grid.n // 2), axis=(0, 1)).T
    im = ax2.imshow(shown, origin="lower", extent=(-0.5, 0.5, -0.5, 0.5), cmap="viridis")
    fig.colorbar(im, ax=ax2, label="ρ = N p")
    ax2.set_xlabel("x1")
    ax2.set_ylabel("x2")
    ax2.set_xlim(-0.25, 0.25)
    ax2.set_ylim(-0.25, 0.25)
    ax2.set_title(f"2D, 128², ε = 0.1 ({r.n_iter} Newton steps; centre)", fontsize=10)
    fig.suptitle("Aggregation–diffusion stationary states: ε KL(uniform) + attractive Gaussian interaction",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()
