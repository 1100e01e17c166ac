import numpy as np
import pytest

import densflow as df
import densflow.energies.terms
from conftest import make_energy, random_density
from dense import difference_matrices

WEIGHTS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)]


def central_differences(f, p, h):
    out = np.empty(p.size)
    for j in range(p.size):
        e = np.zeros(p.size)
        e[j] = h
        e = e.reshape(p.shape)
        out[j] = (f(p + e) - f(p - e)) / (2 * h)
    return out.reshape(p.shape)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_gradient_matches_central_differences(small_problem, weights):
    grid, mu = small_problem
    E = make_energy(grid, mu, weights)
    for seed in range(3):
        p = random_density(grid, seed)
        g = E.gradient(p)
        h = 1e-6 * p.max()
        fd = central_differences(lambda q: E.value(q, check=False), p, h)
        assert np.linalg.norm(fd - g) <= 1e-6 * np.linalg.norm(g)


def test_gradient_along_mass_preserving_directions_public_api(small_problem):
    grid, mu = small_problem
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    rng = np.random.default_rng(7)
    p = random_density(grid, 3)
    g = E.gradient(p)
    for _ in range(5):
        v = rng.standard_normal(grid.shape)
        v -= v.mean()
        h = 1e-6 * p.min() / np.abs(v).max()
        fd = (E.value(p + h * v) - E.value(p - h * v)) / (2 * h)
        assert abs(fd - np.vdot(g, v)) <= 1e-6 * np.linalg.norm(g) * np.linalg.norm(v)


def test_energies_against_dense_formulas(small_problem):
    grid, mu = small_problem
    n, dim = grid.n, grid.dim
    Ds = difference_matrices(n, dim)
    L = sum(D.T @ np.diag(mu.ravel()) @ D for D in Ds)
    A = sum(D.T @ D for D in Ds)
    p = random_density(grid, 11)
    r = (p - mu).ravel()
    e1 = 0.5 * r @ np.linalg.pinv(L) @ r
    e2 = np.sum(p * np.log(p / mu))
    e3 = 0.5 * r @ A @ r
    assert df.energies.HMinus1(grid, mu).value(p) == pytest.approx(e1, rel=1e-10)
    assert df.energies.KL(grid, mu).value(p) == pytest.approx(e2, rel=1e-12)
    assert df.energies.Dirichlet(grid, mu).value(p) == pytest.approx(e3, rel=1e-12)
    E = make_energy(grid, mu, (2.0, 0.5, 0.25))
    assert E.value(p) == pytest.approx(2 * e1 + 0.5 * e2 + 0.25 * e3, rel=1e-10)
    np.testing.assert_allclose(df.energies.HMinus1(grid, mu).gradient(p).ravel(),
                               np.linalg.pinv(L) @ r, rtol=0, atol=1e-10 * np.abs(np.linalg.pinv(L) @ r).max())


def test_value_is_zero_at_mu(small_problem):
    grid, mu = small_problem
    for weights in WEIGHTS:
        E = make_energy(grid, mu, weights)
        assert E.min_value == 0.0
        assert abs(E.value(mu)) <= 1e-16
        assert np.abs(E.gradient(mu) - (weights[1] if weights[1] else 0)).max() <= 1e-12


def test_weights_by_kind_and_algebra(small_problem):
    grid, mu = small_problem
    H, K, D = (df.energies.HMinus1(grid, mu), df.energies.KL(grid, mu), df.energies.Dirichlet(grid, mu))
    E = 2 * (H + 0.5 * K) + sum([0.25 * D, 0.5 * D])
    assert E.weights == {"wasserstein": 2.0, "fisher_rao": 1.0, "mahalanobis": 0.75}
    p = random_density(grid, 1)
    assert E.value(p) == pytest.approx(2 * H.value(p) + K.value(p) + 0.75 * D.value(p), rel=1e-13)


def test_min_value_unknown_for_different_references(small_problem):
    grid, mu = small_problem
    E = df.energies.KL(grid, mu) + df.energies.KL(grid, grid.uniform())
    assert E.min_value is None


@pytest.mark.parametrize("line_rtol,tol", [(1e-13, 1e-11), (None, 1e-6)])
def test_line_restriction_is_exact(small_problem, monkeypatch, line_rtol, tol):
    # exact up to the tolerance of the 2D solve L^+ s (1D is exact at any setting)
    if line_rtol is not None:
        monkeypatch.setattr(densflow.energies.terms, "LINE_RTOL", line_rtol)
    grid, mu = small_problem
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p = random_density(grid, 5)
    rng = np.random.default_rng(2)
    s = rng.standard_normal(grid.shape) * 0.1 * p
    s -= s.mean()
    state = E.evaluate(p)
    line = E.line(state, s)
    for eta in (1.0, 0.3, 1e-3):
        q = p - eta * s
        exact = E.value(q, check=False) - E.value(p)
        assert line.delta(eta) == pytest.approx(exact, rel=max(1e-9, tol), abs=1e-15)
        new = line.state_at(eta)
        assert new.value == pytest.approx(E.value(q, check=False), rel=tol)
        np.testing.assert_allclose(new.gradient, E.gradient(q, check=False), rtol=0,
                                   atol=tol * np.abs(new.gradient).max())
    assert line.delta(1e6) == np.inf  # leaves the positive orthant


@pytest.mark.parametrize("weights", [(1, 1e-3, 1e-4), (1, 0, 1e-4), (0, 1e-3, 0), (1, 0, 0)])
@pytest.mark.parametrize("positive", [True, False])
def test_compiled_backtracking_equals_the_trial_loop(small_problem, weights, positive):
    # EnergyLine.backtrack (one numba call) against Armijo's loop over line.delta
    grid, mu = small_problem
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 7)
    state = E.evaluate(p)
    s = df.metrics.get("combined").bind(E).direction(p, state.gradient) * 40.0  # far steps
    slope = float(np.vdot(s, state.gradient))
    line = E.line(state, s, positive=positive)
    for c1 in (0.5, 1e-4, 0.999):
        search = df.Armijo(c1=c1)
        eta, delta, trials = line.backtrack(slope, 1.0, search.shrink, c1, search.min_step)
        loop_eta, k = 1.0, 1
        while not line.delta(loop_eta) <= -c1 * loop_eta * slope:
            loop_eta, k = loop_eta * search.shrink, k + 1
        assert (eta, trials) == (loop_eta, k) and trials > 1
        assert delta == pytest.approx(line.delta(eta), rel=1e-12, abs=1e-18)
    # several KL terms take the general loop
    two = 0.5 * df.energies.KL(grid, mu) + 0.5 * df.energies.KL(grid, mu)
    st2 = two.evaluate(p)
    assert two.line(st2, s).backtrack(slope, 1.0, 0.5, 0.5, 1e-14) is None
