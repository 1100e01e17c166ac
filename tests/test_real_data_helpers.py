"""Helpers of the real-data cases that need no PyTorch, against closed forms and
independent computations: the Fréchet distance, importance sampling, the loaders
(scikit-learn's digits and breast-cancer data) and ``Monitored``."""

import numpy as np
import pytest

from densflow.parametric import Gaussian, Problem, W2Gaussian
from densflow.parametric.data import (FrechetReference, Monitored, frechet_distance,
                                      importance_moments, load_cancer_data, load_digits_data,
                                      seed_statistics, split)
from densflow.parametric.vi import w2_gaussian
from densflow.solving import FixedStep, solve


def _spd(rng, k):
    B = rng.standard_normal((k, k))
    return B @ B.T + 0.5 * np.eye(k)


def test_frechet_distance_against_closed_forms():
    rng = np.random.default_rng(0)
    m1, m2 = rng.standard_normal(5), rng.standard_normal(5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    # commuting (diagonal) covariances: |m1 - m2|^2 + sum (sqrt a - sqrt b)^2
    exact = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(exact, rel=1e-12)
    C1, C2 = _spd(rng, 6), _spd(rng, 6)
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    assert frechet_distance(m1, C1, m2, C2) == pytest.approx(w2_gaussian(m1, C1, m2, C2) ** 2, rel=1e-9)
    assert frechet_distance(m1, C1, m1, C1) == pytest.approx(0.0, abs=1e-9)
    F, G = rng.standard_normal((300, 4)), 2.0 + 0.5 * rng.standard_normal((200, 4))
    ref = FrechetReference(F)
    direct = frechet_distance(G.mean(0), np.cov(G.T), F.mean(0), np.cov(F.T))
    assert ref(G) == pytest.approx(direct, rel=1e-10)
    assert ref(F) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="columns"):
        ref(G[:, :3])
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(m1, C1, m2[:3], C2)
    with pytest.raises(ValueError, match="finite"):
        FrechetReference(np.full((3, 2), np.nan))


def test_importance_moments_of_a_gaussian_target():
    rng = np.random.default_rng(1)
    m, C = rng.standard_normal(3), _spd(rng, 3)
    P = np.linalg.inv(C)
    log_p = lambda x: -0.5 * np.einsum("bi,ij,bj->b", x - m, P, x - m)  # noqa: E731
    est_m, est_C, ess = importance_moments(log_p, m + 0.3, 1.5 * C, n_samples=100_000, rng=2)
    assert 0.2 * 100_000 < ess <= 100_000
    # errors within a few standard errors of a sample of size ESS
    se = np.sqrt(np.diag(C) / ess)
    assert np.all(np.abs(est_m - m) < 5 * se)
    assert np.max(np.abs(est_C - C) / np.sqrt(np.outer(np.diag(C), np.diag(C)))) < 10 / np.sqrt(ess)
    with pytest.raises(ValueError, match="df"):
        importance_moments(log_p, m, C, n_samples=10, df=0)


def test_loaders_split_and_seed_statistics():
    X, y = load_digits_data(-1.0, 1.0)
    assert X.shape == (1797, 64) and X.min() == -1.0 and X.max() == 1.0 and set(y) == set(range(10))
    X01, _ = load_digits_data(0.0, 1.0)
    np.testing.assert_allclose(X01, (X + 1) / 2, atol=1e-15)
    A, t = load_cancer_data()
    assert A.shape == (569, 31) and set(t) == {0.0, 1.0}
    np.testing.assert_allclose(A[:, :30].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(A[:, :30].std(0), 1.0, atol=1e-12)
    assert np.all(A[:, 30] == 1.0)
    train, test = split(1797, 0.25, seed=0)
    assert len(test) == 449 and len(np.intersect1d(train, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    assert seed_statistics([3.0, np.nan, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="low < high"):
        load_digits_data(1.0, 1.0)
    with pytest.raises(ValueError, match="test_fraction"):
        split(10, 1.5)


def test_monitored_problem_takes_the_problem_steps_and_records_the_monitor():
    model = Gaussian(2, "diag")
    theta0 = model.pack([1.0, -2.0], [2.0, 0.5])

    def problem():
        return Problem(model, W2Gaussian([0.0, 0.0], np.eye(2)), batch_size=8, rng=3)

    monitor = lambda th: float(np.sum(th ** 2))  # noqa: E731
    plain = solve(problem(), theta0, "rwp", tol=None, max_iter=6, line_search=FixedStep(0.3))
    seen = [theta0]
    mon = solve(Monitored(problem(), monitor, "norm"), theta0, "rwp", tol=None, max_iter=6,
                line_search=FixedStep(0.3), callback=lambda k, p, *a: seen.append(p.copy()) and False)
    np.testing.assert_array_equal(mon.p, plain.p)
    np.testing.assert_array_equal(mon.decrements, plain.decrements)
    np.testing.assert_allclose(mon.energies, [monitor(p) for p in seen], rtol=1e-15)
    # a line's decrease is the problem's (the loss), not the monitor's
    wrapped = Monitored(problem(), monitor, "norm")
    st = wrapped.evaluate(theta0)
    line = wrapped.line(st, st.gradient)
    inner = wrapped.problem.line(st.parts, st.gradient)
    assert line.delta(0.1) == inner.delta(0.1)
    assert line.state_at(0.1).value == monitor(theta0 - 0.1 * st.gradient)
    assert wrapped.describe()["monitor"] == "norm"
    with pytest.raises(TypeError, match="callable"):
        Monitored(problem(), 3, "x")
