"""Newton in the potential: the loose 2D start (densflow.potential_start), the last step's
forcing, and the fused 1D step (densflow.potential_fused), against dense references."""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy, random_density
from dense import difference_matrices
from densflow import gridproblem
from densflow.potential_newton import PotentialNewton
from densflow.potential_start import START_FACTOR


def dense_energy(grid, mu, weights, p):
    """E(p) and L^+(p - mu) from dense matrices (pinv): the reference of the tests."""
    a1, a2, a3 = weights
    Ds = difference_matrices(grid.n, grid.dim)
    L = sum(D.T @ np.diag(mu.ravel()) @ D for D in Ds)
    A = sum(D.T @ D for D in Ds)
    r = (p - mu).ravel()
    u = np.linalg.pinv(L) @ r
    value = 0.5 * a1 * r @ u + 0.5 * a3 * r @ (A @ r)
    if a2:
        value += a2 * np.sum(p * np.log(p / mu))
    return value, u.reshape(grid.shape)


def crash_and_resume(E, p0, tmp_path, kw):
    """A recorded run that crashes at iteration 2 (before any snapshot but iteration
    0's), resumed: the resumed result."""
    def crash(k, *args):
        if k == 2:
            raise RuntimeError("simulated crash")

    path = tmp_path / "p.h5"
    with pytest.raises(RuntimeError):
        df.solve(E, p0, out=path, callback=crash, **kw)
    res = df.solve(E, p0, out=path, resume=True, **kw)
    assert res.info["resumed_from"] == 0
    return res


def bump(grid, floor=1e-3):
    x1, x2 = grid.coordinates()
    b = np.exp(-((x1 - 0.5) ** 2 + (x2 - 0.4) ** 2) / 0.02) + floor
    return b / b.sum()


@pytest.mark.parametrize("weights", [(1, 3e-4, 1e-4), (1, 0, 1e-4), (1, 3e-4, 0)])
@pytest.mark.parametrize("rtol", [1e-1, 1e-3])
def test_loose_start_is_exact_at_its_own_density(weights, rtol):
    grid = df.Grid(16, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, weights)
    p0 = bump(grid)
    bound = gridproblem.prepare(E, p0, tol=1e-12, method="newton_potential",
                                newton=PotentialNewton(start_rtol=rtol))
    state = bound.start(p0)
    q = state.p
    # a probability vector within the solve's residual of p0, at least half of it per cell
    assert abs(q.sum() - 1) <= 1e-15 and np.all(q >= START_FACTOR * p0)
    assert 0 < np.linalg.norm(q - p0) <= rtol * np.linalg.norm(p0 - mu)
    # at q the energy, its H^-1 part and the total gradient are the dense ones
    value, u = dense_energy(grid, mu, weights, q)
    assert abs(state.value - value) <= 1e-12 * value
    h1 = [st for (a, t), st in zip(E.active_terms, state.parts) if t.kind == "wasserstein"][0]
    assert np.max(np.abs(h1.gradient - u)) <= 1e-10 * np.max(np.abs(u))
    g = E.gradient(q)
    assert np.max(np.abs(state.gradient - g)) <= 1e-9 * np.max(np.abs(g))


@pytest.mark.parametrize("start_rtol", [0.0, 1e-3])
def test_solve_from_the_loose_start_reaches_tol_by_a_dense_check(start_rtol):
    grid = df.Grid(16, 2)
    mu = grid.gibbs(V2)
    weights = (1, 3e-4, 1e-4)
    E = make_energy(grid, mu, weights)
    p0 = bump(grid)
    res = df.solve(E, p0, tol=1e-12, newton=PotentialNewton(start_rtol=start_rtol))
    assert res.converged and res.info["method"] == "newton_potential"
    assert dense_energy(grid, mu, weights, res.p)[0] <= 1e-12  # true, not only reported
    # iterate 0's recorded energy: E(p0) itself, or E at the loose start's density
    e0 = dense_energy(grid, mu, weights, p0)[0]
    if start_rtol == 0:
        assert abs(res.energies[0] - e0) <= 1e-12 * e0
    else:
        assert 0 < abs(res.energies[0] - e0) <= 1e-2 * e0


def test_nearly_empty_cells_tighten_the_start():
    grid = df.Grid(32, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, (1, 3e-4, 1e-4))
    p0 = bump(grid, floor=1e-7)
    bound = gridproblem.prepare(E, p0, tol=1e-12, newton=PotentialNewton(start_rtol=0.5))
    q = bound.start(p0).p
    assert np.all(q >= START_FACTOR * p0)
    # the loose solve alone would have emptied cells: the rule tightened it
    from densflow.potential_start import loose_potential

    step = bound.direction.__self__
    inv = step.start_inverse()
    r = p0 - mu
    u = loose_potential(r - r.mean(), step.w, grid.n, 0.5, step._scale, inv,
                        step.fourier_pair(inv.dtype))
    assert np.any(mu + step._lw(u) < START_FACTOR * p0)
    assert np.linalg.norm(q - p0) < 1e-3 * np.linalg.norm(p0 - mu)


def test_loose_start_resumed_at_iteration_0_is_bit_identical(tmp_path):
    grid = df.Grid(32, 2)
    E = make_energy(grid, grid.gibbs(V2), (1, 3e-4, 1e-4))
    p0 = bump(grid)
    kw = dict(tol=1e-14, max_iter=6)
    ref = df.solve(E, p0, **kw)

    res = crash_and_resume(E, p0, tmp_path, kw)
    for key in ("energies", "p", "cg_iterations", "hessian_products", "inner_iterations"):
        assert np.array_equal(getattr(res, key), getattr(ref, key)), key


def test_last_step_forcing_stops_at_tol():
    # the last Newton solve goes only as far as tol needs: fewer products, E <= tol still
    grid = df.Grid(64, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, (1, 3e-4, 1e-4))
    loose = df.solve(E, grid.uniform(), tol=1e-12)
    tight = df.solve(E, grid.uniform(), tol=1e-12, newton=PotentialNewton(forcing_last=1e-2))
    assert loose.converged and tight.converged and loose.n_iter == tight.n_iter
    assert loose.hessian_products[-1] < tight.hessian_products[-1]
    assert E.value(loose.p) <= 1e-12 and E.value(tight.p) < E.value(loose.p)


def _general(monkeypatch):
    monkeypatch.setattr(gridproblem, "fused_step", lambda *a, **k: None)


@pytest.mark.parametrize("weights", [(1, 1e-3, 0), (1, 0, 1e-4), (1, 1e-3, 1e-4)])
def test_fused_1d_step_takes_the_general_paths_steps(monkeypatch, weights):
    grid = df.Grid(256, 1)
    E = make_energy(grid, grid.gibbs(V1), weights)
    p0 = random_density(grid, 3)
    bound = gridproblem.prepare(E, p0, tol=1e-12)
    assert bound.fused_step is not None
    fused = df.solve(E, p0, tol=1e-12)
    _general(monkeypatch)
    assert gridproblem.prepare(E, p0, tol=1e-12).fused_step is None
    general = df.solve(E, p0, tol=1e-12)
    assert fused.converged and general.converged and fused.n_iter == general.n_iter
    for key in ("hessian_products", "cg_iterations", "inner_iterations"):
        assert np.array_equal(getattr(fused, key), getattr(general, key)), key
    assert np.all(fused.hessian_products == 1)
    # the same steps up to the order of the sums (the banded solve's conditioning
    # amplifies their rounding: 1.4e-12 of max p after one full step from p0)
    assert np.allclose(fused.steps, general.steps, rtol=1e-12, atol=0)
    assert np.allclose(fused.energies, general.energies, rtol=1e-8, atol=1e-17)
    assert np.max(np.abs(fused.p - general.p)) <= 1e-11 * np.max(general.p)


def test_fused_1d_step_keeps_revival_fallback_and_resume(tmp_path):
    grid = df.Grid(128, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 1e-4))
    p0 = random_density(grid, 2)
    p0[5] = 1e-14  # nearly empty: the first step is the metric's revival step
    p0 /= p0.sum()
    res = df.solve(E, p0, tol=1e-12)
    # revival steps (the metric's, no Hessian) first, then fused Newton steps
    k = int(np.argmax(res.hessian_products))
    assert res.converged and k > 0 and np.all(res.hessian_products[:k] == 0)
    assert np.all(res.hessian_products[k:] == 1)
    # a crash before the first snapshot after 0, resumed: the same run
    kw = dict(tol=1e-12)

    again = crash_and_resume(E, p0, tmp_path, kw)
    for key in ("energies", "p", "decrements", "hessian_products"):
        assert np.array_equal(getattr(again, key), getattr(res, key)), key


def test_compact_newton_binds_the_metric_lazily_and_steps_as_an_eager_bind(monkeypatch):
    grid = df.Grid(32, 2)
    E = make_energy(grid, grid.gibbs(V2), (0, 3e-4, 1e-4))
    p0 = random_density(grid, 4)
    monkeypatch.setattr(gridproblem.LazyBound, "binds", 0)
    lazy = df.solve(E, p0, tol=1e-12)
    assert lazy.converged and lazy.info["method"] == "newton"
    assert gridproblem.LazyBound.binds == 0  # compact steps only: the metric never bound
    real = gridproblem._lazy_applies
    monkeypatch.setattr(gridproblem, "_lazy_applies", lambda *a: False)
    eager = df.solve(E, p0, tol=1e-12)
    for key in ("energies", "p", "decrements", "cg_iterations"):
        assert np.array_equal(getattr(lazy, key), getattr(eager, key)), key
    # not lazy where the metric preconditions every step, or on other methods
    metric = df.metrics.get("combined")
    assert real(metric, E, None, "newton")
    assert not real(metric, E, df.newton.Newton(preconditioner="metric"), "newton")
    assert not real(metric, E, None, "gradient")
    assert not real(metric, make_energy(grid, grid.gibbs(V2), (0, 0, 1e-4)), None, "newton")


@pytest.mark.parametrize("name, value", [("start_rtol", -1e-3), ("start_rtol", 1.0),
                                         ("start_rtol", True), ("forcing_last", 0.0),
                                         ("forcing_last", 1.0), ("forcing_last", "0.1")])
def test_start_and_last_forcing_settings_refuse_bad_values(name, value):
    with pytest.raises(ValueError, match=f"PotentialNewton {name} must lie in"):
        PotentialNewton(**{name: value})
