"""The 2D line search and new state of Newton in the potential in one compiled call
(densflow.potential_fused, densflow.kernels.fused2d): against a fresh evaluation of the
energy, the Armijo rule written out, and the general path."""

import numpy as np
import pytest

import densflow as df
from conftest import V2, assert_same_run, make_energy, random_density
from densflow import gridproblem
from densflow.core.operators import weighted_laplacian
from densflow.kernels import fused2d as F2

WEIGHTS = [(1, 3e-4, 0), (1, 0, 1e-4), (1, 3e-4, 1e-4), (0.5, 1e-2, 1e-2)]


def _bump(grid, sigma=0.08):
    x1, x2 = grid.coordinates()
    b = np.exp(-((x1 - 0.5) ** 2 + (x2 - 0.5) ** 2) / (2 * sigma**2))
    b += 1e-3 * b.max()
    return b / b.sum()


def _line(E, state, s, hs, eta0=1.0, min_step=1e-14, c1=1e-4, check_sign=False):
    grid = E.grid
    n = grid.n
    terms = {type(t).__name__: (j, a, t) for j, (a, t) in enumerate(E.active_terms)}
    zeros = np.zeros(grid.size)
    j1, a1, h = terms["HMinus1"]
    j2, a2, kl = terms.get("KL", (None, 0.0, None))
    j3, a3, d = terms.get("Dirichlet", (None, 0.0, None))
    out = np.empty((7, grid.size))
    res = F2.potential_line_2d(
        state.p.ravel(), state.gradient.ravel(), s.ravel(), hs.ravel(),
        state.parts[j1].gradient.ravel(),
        state.parts[j3].gradient.ravel() if d is not None else zeros,
        state.parts[j2].parts.ravel() if kl is not None else zeros, h.mu.ravel(),
        kl.mu.ravel() if kl is not None else zeros, d.mu.ravel() if d is not None else zeros,
        a1, a2, a3, n, eta0, 0.995, check_sign, 0.5, c1, min_step, *out)
    return res, out, (j1, j2, j3)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_the_line_takes_an_armijo_step_and_leaves_the_energys_state(weights):
    grid = df.Grid(16, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 3)
    state = E.evaluate(p)
    rng = np.random.default_rng(4)
    hs = rng.standard_normal(grid.shape)  # a potential step, and its density step
    hs -= hs.mean()
    s = weighted_laplacian(hs, mu, grid.n)
    s = s * (0.3 / np.max(np.abs(s) / p))  # a cell changes by 30 % at most along it
    hs = hs * (0.3 / np.max(np.abs(weighted_laplacian(hs, mu, grid.n)) / p))
    if np.sum(s * state.gradient) < 0:
        s, hs = -s, -hs
    (outcome, slope, eta, v1, v2, v3), out, (j1, j2, j3) = _line(E, state, s, hs)
    assert outcome == F2.APPLIED
    assert slope == pytest.approx(np.sum(s * state.gradient), rel=1e-12)
    q = (p.ravel() - eta * s.ravel())
    new = E.evaluate(q.reshape(grid.shape))
    assert new.value - state.value <= -1e-4 * eta * slope  # Armijo
    # from the first trial (with KL: 0.995 of the largest step keeping p > 0), halving
    pos = s > 0
    first = min(1.0, 0.995 * np.min(p[pos] / s[pos])) if weights[1] else 1.0
    k = np.log2(first / eta)
    assert k == pytest.approx(round(k), abs=1e-9)
    if round(k) > 0:  # the trial before failed
        before = E.value(p - 2 * eta * s, check=False) if np.all(p - 2 * eta * s > 0) else np.inf
        assert before - state.value > -1e-4 * 2 * eta * slope
    qq, a_s, u1n, u3n, lrn, gkn, grad = out
    assert np.array_equal(qq, q)
    scale = np.abs(new.gradient).max()
    assert np.allclose(grad, new.gradient.ravel(), rtol=0, atol=1e-9 * scale)
    assert np.allclose(u1n, new.parts[j1].gradient.ravel(), rtol=0,
                       atol=1e-9 * np.abs(new.parts[j1].gradient).max())
    assert v1 == pytest.approx(new.parts[j1].value, rel=1e-8)
    if j2 is not None:
        assert v2 == pytest.approx(new.parts[j2].value, rel=1e-12, abs=1e-16)
        assert np.allclose(lrn, new.parts[j2].parts.ravel(), rtol=0, atol=1e-13)
        assert np.allclose(gkn, new.parts[j2].gradient.ravel(), rtol=0, atol=1e-13)
    if j3 is not None:
        assert v3 == pytest.approx(new.parts[j3].value, rel=1e-9)
        assert np.allclose(u3n, new.parts[j3].gradient.ravel(), rtol=0,
                           atol=1e-9 * np.abs(new.parts[j3].gradient).max())


def test_no_descent_and_no_accepted_trial_are_reported():
    grid = df.Grid(8, 2)
    E = make_energy(grid, grid.gibbs(V2), (1, 3e-4, 1e-4))
    state = E.evaluate(random_density(grid, 5))
    g = state.gradient - state.gradient.mean()
    (outcome, slope, *_), _, _ = _line(E, state, -g, -g)
    assert outcome == F2.NOT_FUSED and slope < 0
    (outcome, slope, eta, *_), _, _ = _line(E, state, 1e-3 * g, 1e-3 * g, eta0=1.0,
                                            min_step=2.0)
    assert outcome == F2.NO_STEP and slope > 0 and np.isnan(eta)


CASES = [(32, (1, 3e-4, 1e-4), "uniform"), (32, (1, 0, 1e-4), "random"),
         (64, (1, 3e-4, 0), "uniform"), (32, (1, 3e-4, 1e-4), "bump"),
         (32, (0.5, 1e-2, 1e-2), "random")]


@pytest.mark.parametrize("n,weights,start", CASES)
def test_the_fused_2d_step_takes_the_general_paths_steps(monkeypatch, n, weights, start):
    grid = df.Grid(n, 2)
    x1, x2 = grid.coordinates()
    mu = grid.gibbs(V2 if start != "bump" else
                    lambda x1, x2: 3 * np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2))
    E = make_energy(grid, mu, weights)
    p0 = {"uniform": grid.uniform(), "random": random_density(grid, 6),
          "bump": _bump(grid)}[start]
    calls = []
    line = F2.potential_line_2d
    monkeypatch.setattr(F2, "potential_line_2d", lambda *a: calls.append(1) or line(*a))
    assert gridproblem.prepare(E, p0, tol=1e-12).fused_step is not None
    fused = df.solve(E, p0, tol=1e-12)
    assert fused.info["method"] == "newton_potential" and len(calls) == fused.n_iter
    monkeypatch.setattr(gridproblem, "fused_step", lambda *a, **k: None)
    general = df.solve(E, p0, tol=1e-12)
    # (p to rounding, carried through the PCG's float32 FFT pair: measured 1.2e-10)
    assert_same_run(fused, general, energy_rtol=1e-8, energy_atol=1e-16, p_rtol=1e-9)
