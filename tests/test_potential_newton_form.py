"""The form of the direct 1D solve of Newton in the potential
(PotentialNewton(direct_form=...): the saddle-point system or the phi-space band)."""

import h5py
import numpy as np
import pytest

import densflow as df
from conftest import V1, make_energy, random_density
from densflow.potential_newton import PotentialNewton, PotentialNewtonStep
from test_potential_newton import dense_density_step, dense_operators

KL_WEIGHTS = [(1, 1e-3, 0), (1, 1e-3, 1e-4), (0.5, 1e-2, 1e-2)]
FORMS = ("saddle", "band")


def _step(E, **settings):
    return PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                               PotentialNewton(preconditioner="direct", **settings))


@pytest.mark.parametrize("weights", KL_WEIGHTS)
@pytest.mark.parametrize("form", FORMS)
def test_both_forms_give_the_dense_newton_step(weights, form):
    grid = df.Grid(48, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 4)
    g = E.gradient(p)
    op = _step(E, direct_form=form)
    assert op.form == form and op.saddle == (form == "saddle")
    s = op.direction(p, g)
    ref = dense_density_step(grid, mu, p, weights, g)
    assert np.max(np.abs(s - ref)) <= 1e-9 * np.max(np.abs(ref))
    assert op.stats["hessian_products"] == 1 and op.stats["cg_iterations"] == 0
    s_hint, hs = op.hint  # L^+ s, for the line search
    L, _ = dense_operators(grid, mu)
    assert np.max(np.abs(L @ hs - s)) <= 1e-10 * np.max(np.abs(s))


@pytest.mark.parametrize("weights,form", [((1, 1e-3, 1e-4), "saddle"), ((1, 1e-3, 0), "saddle"),
                                          ((1, 0, 1e-4), "saddle"), ((0, 1e-3, 1e-4), "auto")])
def test_auto_takes_the_saddle_form(weights, form):
    grid = df.Grid(64, 1)
    E = make_energy(grid, grid.gibbs(V1), weights)
    if weights[0] == 0:  # no H^-1 term: not Newton in the potential, no direct solve
        assert df.solve(E, grid.uniform(), tol=1e-12).info["method"] == "newton"
        return
    assert _step(E).form == form
    assert PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                               PotentialNewton(preconditioner="fourier")).saddle is False


@pytest.mark.parametrize("weights", KL_WEIGHTS)
def test_both_forms_reach_the_same_minimiser(weights):
    grid = df.Grid(256, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, weights)
    p0 = random_density(grid, 9)
    runs = [df.solve(E, p0, tol=1e-12, newton=PotentialNewton(direct_form=f)) for f in FORMS]
    for res in runs:
        assert res.converged and E.value(res.p) <= 1e-12
        assert np.sum(res.hessian_products) == res.n_iter  # one direct solve a step
        assert np.sum(res.cg_iterations) == 0
    # the same iterates up to rounding (measured: 4e-15 apart, 1e-7 to 1e-12 from mu)
    assert runs[0].n_iter == runs[1].n_iter
    assert np.max(np.abs(runs[0].p - runs[1].p)) <= 1e-11 * np.max(mu)
    assert np.max(np.abs(runs[0].p - mu)) <= 1e-3 * np.max(mu)


def test_saddle_form_without_kl_matches_the_band():
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 0, 1e-4))
    p = random_density(grid, 3)
    g = E.gradient(p)
    a, b = (_step(E, direct_form=f).direction(p, g) for f in FORMS)
    assert np.max(np.abs(a - b)) <= 1e-9 * np.max(np.abs(b))


@pytest.mark.parametrize("value", ["cholesky", "", None, 1, "Saddle"])
def test_a_bad_direct_form_is_refused_by_name(value):
    with pytest.raises(ValueError, match="direct_form"):
        PotentialNewton(direct_form=value)


def test_the_form_is_recorded_and_a_file_without_it_is_refused(tmp_path):
    from densflow.io.recorder import read_run_file

    grid = df.Grid(128, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p0 = random_density(grid, 2)
    path = tmp_path / "p.h5"
    res = df.solve(E, p0, tol=1e-12, out=path)
    run, = read_run_file(path).runs
    assert run.attrs["newton_preconditioner"] == "direct"
    assert run.attrs["newton_direct_form"] == "saddle"  # as resolved
    again = df.solve(E, p0, tol=1e-12, out=path, resume=True)
    assert np.array_equal(again.p, res.p)
    with pytest.raises(ValueError, match="newton_direct_form"):
        df.solve(E, p0, tol=1e-12, out=path, resume=True,
                 newton=PotentialNewton(direct_form="band"))
    # a file written before the form was recorded: no attribute, no setup key
    with h5py.File(path, "r+") as f:
        g = f[next(iter(f))]
        del g.attrs["newton_direct_form"]
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in g.attrs["setup_keys"]]
        g.attrs["setup_keys"] = np.array([k for k in keys if k != "newton_direct_form"],
                                         dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=r"newton_direct_form = None, this run has 'saddle'"):
        df.solve(E, p0, tol=1e-12, out=path, resume=True)
    # the band, asked for, is the form recorded
    E2 = make_energy(grid, mu, (1, 0, 1e-4))
    df.solve(E2, p0, tol=1e-12, out=tmp_path / "b.h5", newton=PotentialNewton(direct_form="band"))
    run, = read_run_file(tmp_path / "b.h5").runs
    assert run.attrs["newton_direct_form"] == "band"


@pytest.mark.parametrize("n,settings", [(256, dict(direct_form="saddle")),
                                        (256, dict(direct_form="band")),
                                        (4096, dict())])  # (above DIRECT_MAX_N: "saddle")
def test_the_fused_step_takes_the_general_paths_steps_in_either_form(monkeypatch, n, settings):
    from densflow import gridproblem

    grid = df.Grid(n, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 1e-4))
    p0 = random_density(grid, 3)
    newton = PotentialNewton(**settings)
    assert gridproblem.prepare(E, p0, tol=1e-12, newton=newton).fused_step is not None
    fused = df.solve(E, p0, tol=1e-12, newton=newton)
    monkeypatch.setattr(gridproblem, "fused_step", lambda *a, **k: None)
    general = df.solve(E, p0, tol=1e-12, newton=newton)
    assert fused.converged and general.converged and fused.n_iter == general.n_iter
    assert np.all(fused.hessian_products == 1) and np.all(general.hessian_products == 1)
    assert np.allclose(fused.steps, general.steps, rtol=1e-12, atol=0)
    # up to the order of the sums (measured: 1.1e-11 of max p at n = 4096)
    assert np.max(np.abs(fused.p - general.p)) <= 1e-10 * np.max(general.p)
