"""Ying (2021), Fig. 1: 1D, n = 512, V = sin(4πx), four weight sets."""

import numpy as np

import densflow as df

PANELS = [((1, 1e-3, 0), ["wasserstein", "fisher_rao"]),
          ((1, 0, 1e-4), ["wasserstein", "mahalanobis"]),
          ((0, 1e-3, 1e-4), ["fisher_rao", "mahalanobis"]),
          ((1, 1e-3, 1e-4), ["wasserstein", "fisher_rao", "mahalanobis"])]

grid = df.Grid(512, dim=1)
mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))

if __name__ == "__main__":
    for (a1, a2, a3), singles in PANELS:
        E = (a1 * df.energies.HMinus1(grid, mu) + a2 * df.energies.KL(grid, mu)
             + a3 * df.energies.Dirichlet(grid, mu))
        for metric in ["combined"] + singles:
            res = df.solve(E, grid.uniform(), metric=metric, tol=1e-12, max_iter=1000)
            print(f"({a1:g}, {a2:g}, {a3:g}) {metric:12s} {res.n_iter:5d} iterations, "
                  f"E = {res.energies[-1]:.2e}, converged = {res.converged}")
