import numpy as np
import pytest

import densflow as df
from conftest import make_energy, random_density
from dense import combined_metric, difference_matrices, projected_direction

METRICS = ["wasserstein", "fisher_rao", "mahalanobis", "combined"]
WEIGHTS = [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4), (0, 0, 1), (1, 0, 0), (0, 1, 0)]


@pytest.mark.parametrize("dim,n", [(1, 64), (1, 512), (2, 16), (2, 64)])
@pytest.mark.parametrize("metric", METRICS)
def test_direction_conserves_mass_and_descends(dim, n, metric):
    grid = df.Grid(n, dim)
    mu = grid.gibbs((lambda x: np.sin(4 * np.pi * x)) if dim == 1
                    else (lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b)))
    for weights in WEIGHTS:
        E = make_energy(grid, mu, weights)
        op = df.metrics.get(metric).bind(E)
        for seed in range(2):
            p = random_density(grid, seed)
            g = E.gradient(p)
            s = op.direction(p, g)
            assert abs(s.sum()) <= 1e-12 * np.abs(s).sum()
            assert np.vdot(s, g) > 0


def _dense_single(metric, p, grid):
    n, dim = grid.n, grid.dim
    Ds = difference_matrices(n, dim)
    if metric == "wasserstein":
        return sum(D.T @ np.diag(p.ravel()) @ D for D in Ds)
    if metric == "fisher_rao":
        return np.diag(p.ravel())
    return np.linalg.pinv(sum(D.T @ D for D in Ds))


@pytest.mark.parametrize("metric", ["wasserstein", "fisher_rao", "mahalanobis"])
def test_single_metrics_match_dense_formulas(small_problem, metric):
    grid, mu = small_problem
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p = random_density(grid, 4)
    g = E.gradient(p)
    s = df.metrics.get(metric).bind(E).direction(p, g)
    ref = projected_direction(_dense_single(metric, p, grid), g)
    assert np.linalg.norm(s - ref) <= 1e-10 * np.linalg.norm(ref)


@pytest.mark.parametrize("dim,n,wavelet,level", [
    (1, 32, "db4", None), (1, 32, "db4", 5), (1, 64, "db2", 3), (1, 64, "haar", 6), (1, 48, "db3", 4),
    (2, 16, "db2", None), (2, 16, "db2", 4), (2, 16, "db4", 2), (2, 32, "haar", 5), (2, 24, "db2", 3),
])
@pytest.mark.parametrize("weights", [(1, 1e-3, 1e-4), (1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (0, 0, 1)])
def test_combined_matches_dense_formula(dim, n, wavelet, level, weights):
    grid = df.Grid(n, dim)
    mu = grid.gibbs((lambda x: np.sin(4 * np.pi * x)) if dim == 1
                    else (lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b)))
    E = make_energy(grid, mu, weights)
    metric = df.metrics.Combined(wavelet=wavelet, level=level)
    op = metric.bind(E)
    p = random_density(grid, 9)
    g = E.gradient(p)
    M = combined_metric(p, n, dim, weights, wavelet, op.basis.level)
    ref = projected_direction(M, g)
    s = op.direction(p, g)
    assert np.linalg.norm(s - ref) <= 1e-10 * np.linalg.norm(ref)
    np.testing.assert_allclose(op.apply(p, g).ravel(), M @ g.ravel(), rtol=0,
                               atol=1e-10 * np.abs(M @ g.ravel()).max())


def test_combined_reads_weights_from_energy(small_problem):
    grid, mu = small_problem
    H, K = df.energies.HMinus1(grid, mu), df.energies.KL(grid, mu)
    split = 0.5 * H + 0.5 * H + 1e-3 * K
    whole = 1.0 * H + 1e-3 * K
    p = random_density(grid, 2)
    g = whole.gradient(p)
    a = df.metrics.Combined().bind(split).direction(p, g)
    b = df.metrics.Combined().bind(whole).direction(p, g)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)
    c = df.metrics.Combined().bind(1.0 * H + 2e-3 * K).direction(p, g)
    assert np.linalg.norm(c - b) > 1e-6 * np.linalg.norm(b)
