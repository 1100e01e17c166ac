"""Issue 29, item 3: extreme contrast in 1D is reported, never silent nonsense.

``mu ∝ exp(-A sin 2πx)`` spans ``max/min = e^{2A}``. The exact 1D ``L_mu^+`` (two
cumulative sums) loses digits in proportion to that contrast; beyond about 1e13 it has
none left, and the run must then say so (a numerical failure, as the 2D CG reports)
instead of claiming ``converged`` with a negative energy. A safeguarded run of an energy
without KL may step outside the positive orthant; it never returns such a density.
"""

import numpy as np
import pytest

import densflow as df
from densflow.core.operators import LinearSolveError, WeightedLaplacianSolver

N = 512


def contrast_mu(grid, amplitude):
    return grid.gibbs(lambda x: -amplitude * np.sin(2 * np.pi * x))


def energy(grid, mu, weights):
    a1, a2, a3 = weights
    E = a1 * df.energies.HMinus1(grid, mu)
    if a2:
        E = E + a2 * df.energies.KL(grid, mu)
    if a3:
        E = E + a3 * df.energies.Dirichlet(grid, mu)
    return E


def dense_relative_residual(mu, r, x):
    """``||L_mu x - (r - mean r)|| / ||r - mean r||`` with L_mu = D^T diag(mu) D built
    as a dense matrix (an independent stencil)."""
    n = mu.size
    D = n * (np.roll(np.eye(n), 1, axis=1) - np.eye(n))  # (D x)_i = n (x_{i+1} - x_i)
    L = D.T @ np.diag(mu) @ D
    rc = r - r.mean()
    return np.linalg.norm(L @ x - rc) / np.linalg.norm(rc)


def test_the_1d_solve_knows_when_it_has_lost_every_digit():
    grid = df.Grid(N, 1)
    for amplitude, works in ((1, True), (10, True), (50, False)):
        mu = contrast_mu(grid, amplitude)
        solver = WeightedLaplacianSolver(mu, N)
        r = grid.uniform() - mu
        if works:
            x = solver.solve(r)
            # its accuracy estimate is the residual a dense operator measures, in order
            measured = dense_relative_residual(mu, r, x)
            assert measured <= 10 * solver.accuracy and solver.accuracy <= 1e-5
        else:
            with pytest.raises(LinearSolveError, match=r"loses every digit: relative residual "
                                                       r"\d\.\de\+07 > 0.01 \(mu spans max/min = 2\.7e\+43"):
                solver.solve(r)
    # what the estimate stands for: at contrast 2.7e43 the solve's own output
    mu = contrast_mu(grid, 50)
    x = np.empty(N)
    from densflow.kernels.stencils import weighted_laplacian_pinv_1d
    weighted_laplacian_pinv_1d(grid.uniform() - mu, 1.0 / mu, N, x)
    assert dense_relative_residual(mu, grid.uniform() - mu, x) > 1.0


@pytest.mark.parametrize("metric, safeguard", [("fisher_rao", None), ("combined", 0.1)])
def test_the_issue_runs_report_a_numerical_failure(metric, safeguard):
    grid = df.Grid(N, 1)
    mu = contrast_mu(grid, 50)
    assert mu.max() / mu.min() == pytest.approx(np.exp(100), rel=1e-6)  # 2.7e43
    E = energy(grid, mu, (1, 0, 1e-4))
    res = df.solve(E, grid.uniform(), metric, safeguard=safeguard, max_iter=300)
    assert not res.converged
    assert res.message.startswith("numerical failure at iteration 0")
    assert "loses every digit" in res.message and res.info["error"].startswith("LinearSolveError")
    assert np.all(res.p > 0) and np.array_equal(res.p, grid.uniform())
    assert not np.any(res.energies < 0)


def test_a_run_never_returns_a_density_outside_the_positive_orthant():
    # contrast 4.9e8, no KL, the default safeguard: the steps may leave the positive
    # orthant, and the Newton run ends with entries below zero
    grid = df.Grid(N, 1)
    mu = contrast_mu(grid, 10)
    E = energy(grid, mu, (1, 0, 1e-4))
    res = df.solve(E, grid.uniform(), "wasserstein", max_iter=60, method="newton")
    assert np.all(res.p > 0)
    assert not res.converged
    assert "the density has" in res.message and "entries <= 0" in res.message
    j = res.info["returned_iteration"]
    assert 0 <= j < res.n_iter
    assert res.message.endswith(f"p is iterate {j}, the last admissible one")
    # the returned density is the iterate whose energy was recorded at j
    assert E.value(res.p) == pytest.approx(res.energies[j], rel=1e-9)


@pytest.mark.parametrize("amplitude", [5, 10, 20, 50])
def test_contrast_attack_invariants(amplitude):
    """A small version of the issue's 64 runs: whatever the contrast, the metric and the
    safeguard, no negative density is returned, no energy falls below the minimum (0)
    beyond rounding, and ``converged`` comes only with both."""
    grid = df.Grid(N, 1)
    mu = contrast_mu(grid, amplitude)
    for weights in ((1, 0, 1e-4), (1, 1e-3, 1e-4)):
        E = energy(grid, mu, weights)
        for metric in ("combined", "fisher_rao"):
            for safeguard in (0.1, None):
                res = df.solve(E, grid.uniform(), metric, safeguard=safeguard, max_iter=100)
                where = (amplitude, weights, metric, safeguard, res.message)
                assert np.all(res.p > 0), where
                finite = res.energies[np.isfinite(res.energies)]
                assert np.all(finite >= -1e-12 * max(1.0, finite[0] if finite.size else 1.0)), where
                if res.converged:
                    assert 0 <= E.value(res.p) <= 1e-12, where
