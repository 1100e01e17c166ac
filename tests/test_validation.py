import numpy as np
import pytest

import densflow as df
from conftest import V1, make_energy


@pytest.fixture
def setup():
    grid = df.Grid(32, 1)
    mu = grid.gibbs(V1)
    return grid, mu, make_energy(grid, mu, (1, 1e-3, 1e-4))


def test_density_wrong_shape(setup):
    grid, mu, E = setup
    with pytest.raises(ValueError, match=r"p0 must have the grid's shape \(32,\), got shape \(31,\)"):
        df.solve(E, np.full(31, 1 / 31))
    with pytest.raises(ValueError, match="shape"):
        E.value(np.full((32, 1), 1 / 32))


def test_density_not_finite(setup):
    grid, mu, E = setup
    p = grid.uniform()
    p[3] = np.nan
    with pytest.raises(ValueError, match="p0 must be finite, but 1 entries are NaN or inf"):
        df.solve(E, p)
    p[3] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        E.gradient(p)


def test_density_not_positive(setup):
    grid, mu, E = setup
    p = grid.uniform()
    p[0], p[1] = 0.0, 2 / 32
    with pytest.raises(ValueError, match="p0 must be strictly positive, but 1 entries are <= 0"):
        df.solve(E, p)


def test_density_not_normalised(setup):
    grid, mu, E = setup
    p = 2 * grid.uniform()
    with pytest.raises(ValueError, match=r"sums to 2\.0; normalise it with p0 = p0 / p0.sum\(\)"):
        df.solve(E, p)
    p = grid.uniform()
    p[0] += 1e-11  # within 1e-10 is accepted
    df.solve(E, p, max_iter=1)


def test_mu_must_be_positive_probability_vector():
    grid = df.Grid(16, 1)
    with pytest.raises(ValueError, match="mu must be strictly positive"):
        df.energies.KL(grid, np.r_[0.0, np.full(15, 1 / 15)])
    with pytest.raises(ValueError, match="mu must be a probability vector"):
        df.energies.HMinus1(grid, np.ones(16))
    with pytest.raises(ValueError, match="mu must have the grid's shape"):
        df.energies.Dirichlet(grid, np.full(8, 1 / 8))


def test_weights(setup):
    grid, mu, _ = setup
    K = df.energies.KL(grid, mu)
    with pytest.raises(ValueError, match="weight must be a finite number >= 0, got -1.0"):
        -1.0 * K
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        np.nan * K
    zero = 0.0 * K + 0 * df.energies.HMinus1(grid, mu)
    with pytest.raises(ValueError, match="all weights of the energy are zero"):
        df.solve(zero, grid.uniform())
    with pytest.raises(ValueError, match="all weights of the energy are zero"):
        df.metrics.Combined().bind(zero)


def test_level_not_compatible_with_n():
    grid = df.Grid(48, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 0))
    with pytest.raises(ValueError, match=r"level=5 needs n divisible by 2\*\*5=32, but n=48; levels that work for n=48: 1\.\.4"):
        df.solve(E, grid.uniform(), metric=df.metrics.Combined(level=5))
    odd = df.Grid(33, 1)
    with pytest.raises(ValueError, match="n=33 is odd"):
        df.solve(make_energy(odd, odd.gibbs(V1), (1, 0, 0)), odd.uniform(), metric="combined")


def test_unknown_metric_lists_known_ones(setup):
    grid, mu, E = setup
    with pytest.raises(ValueError, match="metric must be one of 'wasserstein', 'fisher_rao', 'mahalanobis', 'combined'"):
        df.solve(E, grid.uniform(), metric="newton")
    with pytest.raises(ValueError, match="wavelet must be orthogonal"):
        df.solve(E, grid.uniform(), metric=df.metrics.Combined(wavelet="bior2.2"))
    with pytest.raises(ValueError, match="wavelet must name a discrete PyWavelets wavelet"):
        df.solve(E, grid.uniform(), metric=df.metrics.Combined(wavelet="mexh"))


def test_grid_arguments():
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        df.Grid(1)
    with pytest.raises(ValueError, match="dim must be 1 or 2"):
        df.Grid(8, 3)
    with pytest.raises(TypeError, match="n must be an integer"):
        df.Grid(8.0)


def test_solver_arguments(setup):
    grid, mu, E = setup
    with pytest.raises(ValueError, match="tol must be a number >= 0 or None"):
        df.solve(E, grid.uniform(), tol=-1)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 0"):
        df.solve(E, grid.uniform(), max_iter=-3)
    with pytest.raises(ValueError, match="line search shrink must lie strictly between 0 and 1"):
        df.Armijo(shrink=1.5)


def test_grid_gibbs_and_shapes():
    g1 = df.Grid(8, 1)
    mu = g1.gibbs(lambda x: x)
    np.testing.assert_allclose(mu, np.exp(-np.arange(8) / 8) / np.exp(-np.arange(8) / 8).sum(), rtol=1e-14)
    g2 = df.Grid(8, 2)
    mu2 = g2.gibbs(lambda x1, x2: x1 + 2 * x2)
    assert mu2.shape == (8, 8) and mu2.sum() == pytest.approx(1, abs=1e-15)
    assert mu2[1, 0] / mu2[0, 0] == pytest.approx(np.exp(-1 / 8)) and mu2[0, 1] / mu2[0, 0] == pytest.approx(np.exp(-2 / 8))
