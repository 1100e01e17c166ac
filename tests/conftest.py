import numpy as np
import pytest

import densflow as df

V1 = lambda x: np.sin(4 * np.pi * x)  # noqa: E731
V2 = lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2)  # noqa: E731


def make_energy(grid, mu, weights):
    a1, a2, a3 = weights
    return (a1 * df.energies.HMinus1(grid, mu) + a2 * df.energies.KL(grid, mu)
            + a3 * df.energies.Dirichlet(grid, mu))


def random_density(grid, seed, low=0.5, high=1.5):
    rng = np.random.default_rng(seed)
    p = rng.uniform(low, high, size=grid.shape)
    return p / p.sum()


def assert_same_run(fused, general, energy_rtol, energy_atol, p_rtol):
    """A run of a compiled whole step against the general path's: both converged in the
    same iterations with the same inner counts and step sizes, energies and densities
    the same to rounding."""
    assert fused.converged and general.converged and fused.n_iter == general.n_iter
    for key in ("cg_iterations", "hessian_products"):
        assert np.array_equal(getattr(fused, key), getattr(general, key)), key
    assert np.allclose(fused.steps, general.steps, rtol=1e-12, atol=0)
    assert np.allclose(fused.energies, general.energies, rtol=energy_rtol, atol=energy_atol)
    assert np.max(np.abs(fused.p - general.p)) <= p_rtol * np.max(general.p)


@pytest.fixture(params=[(1, 16), (2, 8)], ids=["1d", "2d"])
def small_problem(request):
    dim, n = request.param
    grid = df.Grid(n, dim)
    mu = grid.gibbs(V1 if dim == 1 else V2)
    return grid, mu
