"""Rough and nearly vanishing initial densities; explicit failure modes."""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy
from densflow.io.recorder import read_run_file

WEIGHTS = {1: [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)],
           2: [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]}
N = {1: 512, 2: 64}


def setup(dim):
    grid = df.Grid(N[dim], dim)
    return grid, grid.gibbs(V1 if dim == 1 else V2)


def rough(grid, seed):
    """i.i.d. cell values uniform in [0.5, 1.5], normalised."""
    p = np.random.default_rng(seed).uniform(0.5, 1.5, grid.shape)
    return p / p.sum()


def nearly_vanishing(grid):
    """A smooth bump with a floor of 1e-6 of its maximum over a third of the domain."""
    x = grid.coordinates()
    x1 = x if grid.dim == 1 else x[0]
    r2 = (x1 - 0.5) ** 2 if grid.dim == 1 else (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2
    bump = np.exp(-r2 / (2 * 0.15**2))
    bump[np.abs(x1 - 0.5) > 1 / 3] = 1e-6 * bump.max()
    bump = np.maximum(bump, 1e-6 * bump.max())
    return bump / bump.sum()


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_rough_initial_density_converges(dim, seed):
    grid, mu = setup(dim)
    p0 = rough(grid, seed)
    for weights in WEIGHTS[dim]:
        res = df.solve(make_energy(grid, mu, weights), p0, metric="combined", max_iter=200)
        assert res.converged and res.energies[-1] <= 1e-12, (weights, res.message)
        assert res.n_iter <= 200
        assert np.all(res.p > 0)


@pytest.mark.parametrize("dim", [1, 2])
def test_nearly_vanishing_density_converges_with_kl(dim):
    grid, mu = setup(dim)
    p0 = nearly_vanishing(grid)
    assert p0.min() / p0.max() == pytest.approx(1e-6)
    for weights in WEIGHTS[dim]:
        if weights[1] == 0:
            continue
        res = df.solve(make_energy(grid, mu, weights), p0, metric="combined", max_iter=200)
        assert res.converged and res.energies[-1] <= 1e-12, (weights, res.message)


def test_plain_armijo_stalls_where_the_safeguard_converges():
    # the failure the safeguard cures: no KL barrier, rough data
    grid, mu = setup(1)
    E = make_energy(grid, mu, (1, 0, 1e-4))
    plain = df.solve(E, rough(grid, 0), metric="combined", max_iter=200, safeguard=None, method="gradient")
    assert not plain.converged and plain.energies[-1] > 1e-6
    assert plain.p.min() < 1e-12
    safe = df.solve(E, rough(grid, 0), metric="combined", max_iter=200, method="gradient")
    assert safe.converged


def test_safeguard_changes_nothing_on_the_papers_runs():
    grid, mu = setup(1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    a = df.solve(E, grid.uniform(), metric="combined")
    b = df.solve(E, grid.uniform(), metric="combined", safeguard=None)
    assert np.array_equal(a.energies, b.energies)


def test_safeguarded_direction_conserves_mass_and_descends():
    grid, mu = setup(1)
    p = nearly_vanishing(grid)
    for weights in ((1, 1e-3, 0), (1, 0, 1e-4)):
        E = make_energy(grid, mu, weights)
        g = E.gradient(p)
        for metric in ("combined", "wasserstein", "fisher_rao", "mahalanobis"):
            op = df.metrics.Safeguard(df.metrics.get(metric).bind(E), E)
            s = op.direction(p, g)
            assert abs(s.sum()) <= 1e-12 * np.abs(s).sum()
            assert np.vdot(s, g) > 0


def test_bad_safeguard():
    grid, mu = setup(1)
    with pytest.raises(ValueError, match=r"safeguard must be a number in \(0, 1\] or None"):
        df.solve(make_energy(grid, mu, (1, 0, 0)), grid.uniform(), safeguard=2.0)


class _BreaksAt(df.metrics.Metric):
    """The combined metric, until a given iteration, then a NaN direction."""

    name = "breaks"

    def __init__(self, k):
        self.k = k

    def bind(self, energy):
        inner, k = df.metrics.Combined().bind(energy), self.k

        class Op:
            calls = 0

            def direction(self, p, g):
                Op.calls += 1
                return inner.direction(p, g) if Op.calls <= k else np.full_like(g, np.nan)
        return Op()


def test_non_finite_direction_stops_and_the_record_keeps_the_history(tmp_path):
    grid, mu = setup(1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    res = df.solve(E, grid.uniform(), metric=_BreaksAt(3), out=tmp_path / "r.h5", safeguard=None, method="gradient")
    assert not res.converged
    assert res.message.startswith("direction became non-finite at iteration 3 (E = ")
    assert res.n_iter == 3 and len(res.energies) == 4 and np.all(np.isfinite(res.energies))
    run = read_run_file(tmp_path / "r.h5").runs[0]
    np.testing.assert_array_equal(run.energies, res.energies)
    assert not run.converged
    assert "non-finite" in run.attrs["message"]
