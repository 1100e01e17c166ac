"""The compact Newton step in two compiled calls (densflow.compact_fused,
densflow.kernels.compact_step): against dense references and the general path."""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, assert_same_run, random_density
from dense import difference_matrices
from densflow import gridproblem
from densflow.kernels import compact_step as CS
from densflow.kernels import metric as MK
from densflow.metrics.massfix import mass_fix
from densflow.newton import Newton, NewtonStep
from densflow.newton_compact import _value_terms, fisher_rao_retraction


def kl_dirichlet(grid, a2, a3, seed=None):
    mu = grid.gibbs(V1 if grid.dim == 1 else V2)
    terms = a2 * df.energies.KL(grid, mu)
    if a3:
        mu3 = mu if seed is None else random_density(grid, seed)
        terms = terms + a3 * df.energies.Dirichlet(grid, mu3)
    return terms


def bump(grid, sigma=0.1):
    coords = grid.coordinates()
    coords = (coords,) if grid.dim == 1 else coords
    b = np.exp(-sum((c - 0.5) ** 2 for c in coords) / (2 * sigma**2))
    b += 1e-3 * b.max()
    return b / b.sum()


def dense_compact_step(grid, p, g, a2, a3):
    """The solution of (diag(a2/p) + a3 A) x = g - kappa 1, sum x = 0, densely."""
    N = grid.size
    A = sum(D.T @ D for D in difference_matrices(grid.n, grid.dim))
    K = np.zeros((N + 1, N + 1))
    K[:N, :N] = np.diag(a2 / p.ravel()) + a3 * A
    K[:N, N] = K[N, :N] = 1.0
    return np.linalg.solve(K, np.concatenate([g.ravel(), [0.0]]))[:N]


def direction(grid, p, g, a2, a3, retract=True, forcing=1e-12):
    N = grid.size
    x, s, e, inv_p = np.empty((4, N))
    out = CS.compact_direction(p.ravel().copy(), g.ravel().copy(), a2, a3, grid.n, grid.dim,
                               forcing, 0.0, 10 * N, 1.0, retract, 1e-2, x, s, e, inv_p)
    assert np.allclose(inv_p, 1 / p.ravel(), rtol=1e-15, atol=0)
    return out, x, s, e


@pytest.mark.parametrize("dim,n", [(1, 16), (2, 8)])
@pytest.mark.parametrize("a3", [0.0, 1e-2])
def test_the_direction_is_the_dense_newton_step_with_its_residue_spread(dim, n, a3):
    grid = df.Grid(n, dim)
    E = kl_dirichlet(grid, 1e-2, a3, seed=5)
    p = random_density(grid, 6, low=0.2, high=3.0)
    g = E.gradient(p)
    (outcome, its), x, s, e = direction(grid, p, g, 1e-2, a3)
    ref = dense_compact_step(grid, p, g, 1e-2, a3)
    assert np.max(np.abs(s - ref)) <= 1e-9 * np.max(np.abs(ref))
    assert abs(s.sum()) <= 1e-16 and its >= 1
    # the retraction's exponent, where the step changes a cell by 1 % or more
    ratio = np.max(np.abs(s) / p.ravel())
    assert outcome == (CS.RETRACT if ratio >= 1e-2 else CS.STRAIGHT)
    if outcome == CS.RETRACT:
        assert np.allclose(e, np.clip(-s / p.ravel(), -700, 50), rtol=1e-15, atol=0)
    (outcome, _), *_ = direction(grid, p, g, 1e-2, a3, retract=False)
    assert outcome == CS.STRAIGHT


def test_a_residue_is_spread_as_mass_fix_spreads_it_when_some_entry_is_tiny():
    x = np.array([1.0, -0.5, 1e-20, -0.5 + 3e-3, 0.0])
    s = np.empty(5)
    MK.spread_weighted(x, 1.0, s)
    total = x.sum()  # mass_fix's weighted spread, written out
    m = np.minimum(1.0, np.abs(x) / (abs(total) / x.size))
    assert np.allclose(s, x - total / m.sum() * m, rtol=0, atol=1e-17)
    assert np.array_equal(mass_fix(x.copy()), s)
    assert abs(s[2]) < 1e-19  # changed by about its own size at most, not by the even share
    assert abs(s.sum()) <= 1e-18 and s[4] == 0.0  # an empty entry takes nothing


@pytest.mark.parametrize("dim,n", [(1, 32), (2, 8)])
@pytest.mark.parametrize("weights,expect", [((1.0, 1e-4), "retracted"),
                                            ((1e-5, 1e-1), "straight")])
def test_the_finish_takes_the_lower_end_an_armijo_step_and_the_energys_new_state(
        dim, n, weights, expect):
    grid = df.Grid(n, dim)
    a2, a3 = weights
    E = kl_dirichlet(grid, a2, a3, seed=9)
    p = random_density(grid, 10, low=0.05, high=3.0)
    state = E.evaluate(p)
    g = state.gradient
    (outcome, _), x, s, e = direction(grid, p, g, a2, a3)
    assert outcome == CS.RETRACT
    raw = s.reshape(grid.shape).copy()
    np.exp(e, out=e)
    N = grid.size
    q, a_s, u3n, lrn, gkn, grad = np.empty((6, N))
    _, m, _, b, _ = _value_terms(E)
    kl, dirichlet = (t for _, t in E.active_terms)
    line = df.Armijo()
    res = CS.compact_finish(p.ravel(), g.ravel(), s, e, True, 1 / p.ravel(),
                            state.parts[0].parts.ravel(),
                            state.parts[1].gradient.ravel(), kl.mu.ravel(),
                            dirichlet.mu.ravel(), a2, a3, grid.n, dim, m, b, 0.995,
                            line.eta0, line.shrink, line.c1, line.min_step, q, a_s, u3n, lrn,
                            gkn, grad)
    outcome, slope, eta, v2, v3 = res
    assert outcome == CS.APPLIED
    # the end chosen: the lower of the retracted point and the shortened straight one
    r = fisher_rao_retraction(p, raw)
    op = NewtonStep(E, df.metrics.get("combined").bind(E), Newton())
    t = op.first_step(p, raw, 1.0)
    ends = {"retracted": E.value(p - r, check=False),
            "straight": E.value(p - t * raw, check=False)}
    assert ends[expect] == min(ends.values())
    chosen = r if expect == "retracted" else raw
    assert np.allclose(s, chosen.ravel(), rtol=0, atol=1e-14 * np.abs(chosen).max())
    assert slope == pytest.approx(float(np.sum(chosen * g)), rel=1e-12)
    # Armijo from the boundary-shortened first trial, halving
    first = op.first_step(p, chosen, 1.0)
    k = np.log(eta / first) / np.log(0.5)
    assert k == pytest.approx(round(k), abs=1e-9) and round(k) >= 0
    new = E.evaluate(q.reshape(grid.shape))
    assert np.array_equal(q, (p.ravel() - eta * s))
    assert new.value - state.value <= -line.c1 * eta * slope
    # the new state against a fresh evaluation
    # (to the rounding of the Dirichlet part's update u3 - eta A s)
    scale = a2 * np.abs(gkn).max() + a3 * (np.abs(u3n).max() + eta * np.abs(a_s).max())
    assert np.allclose(grad, new.gradient.ravel(), rtol=0, atol=1e-13 * scale)
    assert v2 == pytest.approx(new.parts[0].value, rel=1e-12, abs=1e-15)
    assert v3 == pytest.approx(new.parts[1].value, rel=1e-9, abs=1e-15)
    assert np.allclose(lrn, new.parts[0].parts.ravel(), rtol=0, atol=1e-13)
    assert np.allclose(u3n, new.parts[1].gradient.ravel(), rtol=0,
                       atol=1e-10 * np.abs(new.parts[1].gradient).max())
    assert np.allclose(a_s, (sum(D.T @ D for D in difference_matrices(n, dim)) @ s), rtol=0,
                       atol=1e-10 * np.abs(a_s).max())


def test_no_descent_goes_the_general_way_and_no_accepted_trial_is_reported():
    grid = df.Grid(8, 2)
    E = kl_dirichlet(grid, 1e-2, 1e-3)
    p = random_density(grid, 1)
    g = E.gradient(p)
    N = grid.size
    s = np.zeros(N)  # no step at all: slope 0
    out = np.empty((6, N))
    _, m, _, b, _ = _value_terms(E)
    mu = E.mu.ravel()
    inv_p = 1 / p.ravel()
    outcome, slope, *_ = CS.compact_finish(p.ravel(), g.ravel(), s, s.copy(), False, inv_p,
                                           g.ravel(),
                                           g.ravel(), mu, mu, 1e-2, 1e-3, 8, 2, m, b, 0.995,
                                           1.0, 0.5, 0.5, 1e-14, *out)
    assert outcome == CS.NOT_FUSED and slope == 0.0
    s = g.ravel() - g.mean()  # descent, but no trial step: min_step above eta0
    outcome, slope, eta, *_ = CS.compact_finish(p.ravel(), g.ravel(), s, s.copy(), False,
                                                inv_p, g.ravel(), g.ravel(), mu, mu, 1e-2, 1e-3, 8, 2,
                                                m, b, 0.995, 1.0, 0.5, 0.5, 2.0, *out)
    assert outcome == CS.NO_STEP and slope > 0 and np.isnan(eta)


CASES = [(1, 256, (1e-3, 1e-4), "random", None), (1, 128, (1e-3, 0.0), "bump", None),
         (2, 32, (3e-4, 1e-4), "uniform", None), (2, 32, (1e-3, 0.1), "bump", None),
         (2, 64, (3e-4, 1e-4), "random", None),
         (2, 32, (1e-3, 1e-3), "random", 7)]  # two reference measures: no known minimum


@pytest.mark.parametrize("dim,n,weights,start,seed", CASES)
def test_the_fused_step_takes_the_general_paths_steps(monkeypatch, dim, n, weights, start,
                                                      seed):
    grid = df.Grid(n, dim)
    E = kl_dirichlet(grid, *weights, seed=seed)
    p0 = {"uniform": grid.uniform(), "bump": bump(grid),
          "random": random_density(grid, 3)}[start]
    kw = dict(tol=1e-12, max_iter=40)
    calls = []
    finish = CS.compact_finish
    monkeypatch.setattr(CS, "compact_finish", lambda *a: calls.append(1) or finish(*a))
    assert gridproblem.prepare(E, p0, tol=1e-12).fused_step is not None
    fused = df.solve(E, p0, **kw)
    # every step fused (and the last direction, when the run stops on the decrement)
    assert fused.n_iter <= len(calls) <= fused.n_iter + 1
    monkeypatch.setattr(gridproblem, "fused_compact_step", lambda *a, **k: None)
    general = df.solve(E, p0, **kw)
    assert_same_run(fused, general, energy_rtol=1e-9, energy_atol=1e-15, p_rtol=1e-10)


def test_revival_and_a_failed_line_search_go_the_general_way(monkeypatch):
    grid = df.Grid(32, 2)
    E = kl_dirichlet(grid, 1e-3, 1e-4)
    p0 = random_density(grid, 4)
    p0.ravel()[7] = 1e-14  # nearly empty: the metric's revival step first
    p0 /= p0.sum()
    # no step passes this test, Newton's nor the fallback's: the same failure reported
    strict = df.Armijo(c1=0.9, min_step=0.3)
    runs = {}
    for name in ("fused", "general"):
        if name == "general":
            monkeypatch.setattr(gridproblem, "fused_compact_step", lambda *a, **k: None)
        runs[name] = [df.solve(E, p0, tol=1e-12, max_iter=30),
                      df.solve(E, grid.uniform(), tol=1e-12, max_iter=5, line_search=strict)]
    for fused, general in zip(runs["fused"], runs["general"]):
        assert fused.n_iter == general.n_iter
        assert np.array_equal(fused.cg_iterations, general.cg_iterations)
        assert np.allclose(fused.steps, general.steps, rtol=1e-12, atol=0)
        assert np.max(np.abs(fused.p - general.p)) <= 1e-10 * np.max(general.p)
    revived, failing = runs["fused"]
    assert revived.converged and revived.cg_iterations[0] == 0  # the metric's step
    assert failing.n_iter == 0 and "line search failed" in failing.message
    assert failing.message == runs["general"][1].message


def test_it_applies_only_where_the_general_path_is_the_compact_newton():
    grid = df.Grid(16, 2)
    p0 = grid.uniform()
    mu = grid.gibbs(V2)
    two_kl = 1e-3 * df.energies.KL(grid, mu) + 1e-3 * df.energies.KL(grid, grid.uniform())
    others = [two_kl, 1e-4 * df.energies.Dirichlet(grid, mu) + df.energies.HMinus1(grid, mu)]
    for E in others:
        assert gridproblem.prepare(E, p0, tol=1e-12).fused_step is None or \
            gridproblem.prepare(E, p0, tol=1e-12).method != "newton"
    E = kl_dirichlet(grid, 1e-3, 1e-4)
    assert gridproblem.prepare(E, p0, tol=1e-12,
                               newton=Newton(preconditioner="metric")).fused_step is None
    assert gridproblem.prepare(E, p0, tol=1e-12, method="gradient").fused_step is None
    assert gridproblem.prepare(E, p0, tol=1e-12).fused_step is not None
