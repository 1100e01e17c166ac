import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy, random_density

# panel weights and the single metrics the paper compares with in each (Figs. 1 and 2)
PANELS_1D = [((1, 1e-3, 0), ["wasserstein", "fisher_rao"]),
             ((1, 0, 1e-4), ["wasserstein", "mahalanobis"]),
             ((0, 1e-3, 1e-4), ["fisher_rao", "mahalanobis"]),
             ((1, 1e-3, 1e-4), ["wasserstein", "fisher_rao", "mahalanobis"])]
PANELS_2D = [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]


@pytest.mark.parametrize("weights,singles", PANELS_1D)
def test_figure1_combined_beats_single_metrics(weights, singles):
    grid = df.Grid(512, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, weights)
    res = df.solve(E, grid.uniform(), metric="combined", tol=1e-12, max_iter=1000, method="gradient")
    assert res.converged and res.energies[-1] <= 1e-12
    assert E.value(res.p) <= 1e-12
    assert res.n_iter <= 100
    for name in singles:
        single = df.solve(E, grid.uniform(), metric=name, tol=1e-12, max_iter=1000, method="gradient")
        assert (not single.converged) or single.n_iter > 10 * res.n_iter, name


@pytest.mark.parametrize("weights", PANELS_2D)
def test_figure2_combined_converges_in_100_iterations(weights):
    grid = df.Grid(64, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, weights)
    res = df.solve(E, grid.uniform(), metric="combined", tol=1e-12, max_iter=100, method="gradient")
    assert res.converged and res.energies[-1] <= 1e-12
    assert E.value(res.p) <= 1e-12  # evaluated afresh, not from the solver's updates
    assert res.n_iter <= 100


@pytest.mark.parametrize("metric", ["wasserstein", "fisher_rao", "mahalanobis", "combined"])
def test_history_obeys_armijo_and_conserves_mass(metric):
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    res = df.solve(E, random_density(grid, 0), metric=metric, max_iter=30, method="gradient")
    assert len(res.energies) == res.n_iter + 1
    assert len(res.steps) == res.n_iter
    assert np.all(res.steps > 0) and np.all(res.steps <= 1)
    # Armijo: E_{k+1} - E_k <= -1/2 eta_k (s.g)_k, with the decrement recorded per step
    dec = res.decrements[: res.n_iter]
    assert np.all(np.diff(res.energies) <= -0.5 * res.steps * dec + 1e-15)
    assert abs(res.p.sum() - 1) <= 1e-12 and np.all(res.p > 0)
    # the recorded final energy is the energy of the returned density
    assert res.energies[-1] == pytest.approx(E.value(res.p), rel=1e-9, abs=1e-16)


def test_gtol_stops_on_decrement():
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 0))
    res = df.solve(E, grid.uniform(), metric="combined", tol=None, gtol=1e-10)
    assert res.converged and "gtol" in res.message
    assert res.decrements[-1] <= 1e-10 and np.all(res.decrements[:-1] > 1e-10)


def test_max_iter_reached_is_not_convergence():
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    res = df.solve(make_energy(grid, mu, (1, 1e-3, 0)), grid.uniform(), metric="fisher_rao", max_iter=5, method="gradient")
    assert not res.converged and res.n_iter == 5 and "max_iter" in res.message


class _Explosive(df.metrics.Metric):
    """A metric whose direction leaves the positive orthant for every usable step."""

    name = "explosive"

    def bind(self, energy):
        class Op:
            def direction(self, p, g):
                s = 1e20 * (g - g.mean())
                return s - s.mean()
        return Op()


def test_line_search_failure_stops_with_message():
    grid = df.Grid(32, 1)
    mu = grid.gibbs(V1)
    res = df.solve(make_energy(grid, mu, (0, 1, 0)), random_density(grid, 1), metric=_Explosive(), method="gradient")
    assert not res.converged
    assert "line search failed at iteration 0" in res.message
    assert res.n_iter == 0 and len(res.energies) == 1


def test_start_at_minimum_stops_immediately():
    grid = df.Grid(32, 1)
    mu = grid.gibbs(V1)
    res = df.solve(make_energy(grid, mu, (1, 1e-3, 1e-4)), mu, metric="combined")
    assert res.converged and res.n_iter == 0


def test_combined_with_other_wavelets_and_levels():
    grid = df.Grid(256, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    for metric in (df.metrics.Combined("db2", 4), df.metrics.Combined("sym6"), df.metrics.Combined("db4", 8)):
        res = df.solve(E, grid.uniform(), metric=metric, max_iter=300)
        assert res.converged, (metric, res.message)
