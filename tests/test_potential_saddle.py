"""The saddle-point direct solve of the 1D Newton step in the potential
(densflow.kernels.saddle, PotentialNewton(preconditioner="saddle"))."""

import numpy as np
import pytest

import densflow as df
import densflow.potential_newton as PN
from conftest import V1, make_energy, random_density
from densflow.kernels.saddle import saddle_solve
from densflow.potential_newton import PotentialNewton, PotentialNewtonStep, choose_preconditioner
from test_potential_newton import _dense_phi_step, dense_density_step, dense_operators


@pytest.mark.parametrize("n", [5, 6, 9, 16, 33])
@pytest.mark.parametrize("weights,nu", [((1, 1e-3, 1e-4), 0.0), ((1, 1e-3, 0), 0.0),
                                        ((0.5, 1e-2, 1e-2), 0.0), ((1, 1e-3, 1e-4), 3e-3),
                                        ((1, 0, 1e-4), 0.0)])
def test_saddle_solve_matches_a_dense_solve_of_the_potential_hessian(n, weights, nu):
    grid = df.Grid(n, 1)
    mu = grid.gibbs(V1)
    p = random_density(grid, 7, low=0.05, high=3.0)
    g = np.random.default_rng(n).standard_normal(n)
    a1, a2, a3 = weights
    L, _ = dense_operators(grid, mu)
    ref = _dense_phi_step(grid, mu, p, weights, L @ g, nu)
    delta = saddle_solve((a2 + nu) / p, mu, a1, a3, g)
    assert abs(delta.mean()) <= 1e-15 * np.abs(delta).max()
    assert np.max(np.abs(delta - ref)) <= 1e-9 * np.max(np.abs(ref))
    # a constant added to g changes nothing (the mass constraint needs no row)
    assert np.allclose(saddle_solve((a2 + nu) / p, mu, a1, a3, g + 5.0), delta,
                       rtol=0, atol=1e-12 * np.abs(delta).max())


def test_a_reused_workspace_solves_as_a_fresh_one():
    from densflow.kernels.saddle import Workspace

    grid = df.Grid(40, 1)
    mu = grid.gibbs(V1)
    work = Workspace(40)
    for seed in (1, 2):  # the second solve overwrites the first's factors
        p = random_density(grid, seed)
        g = np.random.default_rng(seed).standard_normal(40)
        fresh = saddle_solve(1e-3 / p, mu, 1.0, 1e-4, g)
        assert np.array_equal(saddle_solve(1e-3 / p, mu, 1.0, 1e-4, g, work), fresh)
        assert np.array_equal(work.solve(p, 1e-3, mu, 1.0, 1e-4, g), fresh)  # c from p
    with pytest.raises(ValueError, match="Workspace of 40 points"):
        saddle_solve(np.ones(41), np.ones(41), 1.0, 1e-4, np.ones(41), work)


def test_saddle_solve_refuses_what_it_cannot_solve():
    w = np.full(8, 1 / 8)
    with pytest.raises(ValueError, match="a1 > 0"):
        saddle_solve(np.ones(8), w, 0.0, 1e-4, np.ones(8))
    with pytest.raises(ValueError, match="n >= 5"):
        saddle_solve(np.ones(4), w[:4], 1.0, 1e-4, np.ones(4))


def test_saddle_direction_is_the_density_newton_step():
    grid = df.Grid(24, 1)
    mu = grid.gibbs(V1)
    weights = (1, 1e-3, 1e-4)
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 5)
    state = E.evaluate(p)
    L, _ = dense_operators(grid, mu)
    d_ref = -dense_density_step(grid, mu, p, weights, state.gradient)
    op = PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                             PotentialNewton(preconditioner="saddle"))
    s = op.direction(p, state.gradient)
    assert np.max(np.abs(-s - d_ref)) <= 1e-9 * np.max(np.abs(d_ref))
    assert op.stats["hessian_products"] == 1 and op.stats["cg_iterations"] == 0
    s_hint, hs = op.hint  # L^+ s for the line search: exact
    Lhs = L @ hs
    assert np.max(np.abs(Lhs - s)) <= 1e-10 * np.max(np.abs(s))


def test_auto_takes_the_saddle_solve_above_direct_max_n():
    grid = df.Grid(PN.DIRECT_MAX_N * 2, 1)
    mu = grid.gibbs(V1)
    assert choose_preconditioner(make_energy(grid, mu, (1, 1e-3, 1e-4))) == "saddle"
    E = make_energy(grid, mu, (1, 0, 1e-4))
    assert choose_preconditioner(E) == "saddle"
    # without a KL term the energy is quadratic: the exact step lands on mu at once
    res = df.solve(E, grid.uniform(), tol=1e-12)
    assert res.converged and res.n_iter == 1 and E.value(res.p) <= 1e-16
    assert np.max(np.abs(res.p - mu)) <= 1e-6 * np.max(mu)
    small = df.Grid(PN.DIRECT_MAX_N, 1)
    assert choose_preconditioner(make_energy(small, small.gibbs(V1), (1, 1e-3, 1e-4))) == "direct"


@pytest.mark.parametrize("n", [4096, 16384])
def test_saddle_newton_keeps_the_outer_iterations_of_the_fourier_pcg(n):
    # high contrast, bump start: where the banded Cholesky of the potential Hessian fails
    grid = df.Grid(n, 1)
    x = grid.coordinates()
    mu = grid.gibbs(lambda x: 3 * np.sin(2 * np.pi * x) + 1.5 * np.cos(6 * np.pi * x))
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p0 = np.exp(-((x - 0.5) ** 2) / (2 * 0.05**2))
    p0 += 1e-3 * p0.max()
    p0 /= p0.sum()
    res = df.solve(E, p0, tol=1e-12)
    pcg = df.solve(E, p0, tol=1e-12, newton=PotentialNewton(preconditioner="fourier"))
    assert res.converged and E.value(res.p) <= 1e-12 and pcg.converged
    assert res.info["method"] == "newton_potential"
    assert res.n_iter <= pcg.n_iter <= 8
    assert np.sum(res.hessian_products) == res.n_iter  # one band solve a step
    assert np.sum(res.cg_iterations) == 0


def test_saddle_run_resumed_after_a_crash_is_bit_identical_and_recorded(tmp_path):
    from densflow.io.recorder import read_run_file
    from test_potential_newton_start import crash_and_resume

    grid = df.Grid(4096, 1)
    x = grid.coordinates()
    mu = grid.gibbs(lambda x: 3 * np.sin(2 * np.pi * x) + 1.5 * np.cos(6 * np.pi * x))
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p0 = np.exp(-((x - 0.5) ** 2) / (2 * 0.05**2)) + 1e-3
    p0 /= p0.sum()
    kw = dict(tol=1e-12)
    ref = df.solve(E, p0, **kw)
    res = crash_and_resume(E, p0, tmp_path, kw)
    assert ref.n_iter >= 4
    for key in ("energies", "p", "cg_iterations", "hessian_products", "inner_iterations"):
        assert np.array_equal(getattr(res, key), getattr(ref, key)), key
    run, = read_run_file(tmp_path / "p.h5").runs
    assert run.attrs["newton_preconditioner"] == "saddle"
    with pytest.raises(ValueError, match="newton_preconditioner"):
        df.solve(E, p0, out=tmp_path / "p.h5", resume=True,
                 newton=PotentialNewton(preconditioner="fourier"), **kw)


def test_a_failed_saddle_pivot_hands_the_step_to_the_fourier_pcg(monkeypatch):
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p = random_density(grid, 5)
    g = E.gradient(p)
    settings = dict(forcing_max=1e-12, cg_max_iter=10 * grid.size)
    make = (lambda kind: PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                                             PotentialNewton(preconditioner=kind, **settings)))
    direct = make("saddle").direction(p, g)
    monkeypatch.setattr(PN.SK, "saddle_sweep", lambda *a, **k: False)
    op = make("saddle")
    s = op.direction(p, g)
    assert op.stats["cg_iterations"] >= 1  # the PCG ran
    assert np.max(np.abs(s - direct)) <= 1e-8 * np.max(np.abs(direct))
