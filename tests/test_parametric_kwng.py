"""KWNG (issue 7): the estimator against an independent dense build of the slides'
formula (finite-difference T and C), against the exact natural gradient of the
variance-parametrised Gaussian (consistency in N), ridge -> ridgeless, the fallback."""

import numpy as np
import pytest

from densflow.parametric import MLP, Gaussian
from densflow.parametric._kwng import VarianceGaussian
from densflow.parametric.losses import W2Gaussian
from densflow.parametric.metrics import KWNG, ExactWasserstein


def problem(d, seed=0):
    model = VarianceGaussian(d)
    rng = np.random.default_rng(seed)
    theta = np.concatenate([rng.uniform(-1, 1, d), rng.uniform(0.5, 2, d)])
    _, g = model.w2_value_and_grad(theta, np.zeros(d), np.ones(d))
    exact = np.linalg.solve(model.wasserstein_information(theta), g)
    return model, theta, g, exact


def test_variance_gaussian_oracles():
    """jvp/vjp against central differences; the information matrix is the "diag"
    Gaussian's ExactWasserstein pulled back through s = sqrt(delta); the W2 gradient
    is W2Gaussian's chain-ruled and matches finite differences."""
    d = 3
    model, theta, g, _ = problem(d, 1)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((7, d))
    v = rng.standard_normal(2 * d)
    h = 1e-6
    fd = (model.sample(theta + h * v, z) - model.sample(theta - h * v, z)) / (2 * h)
    np.testing.assert_allclose(model.jvp(theta, z, v), fd, rtol=1e-7, atol=1e-9)
    u = rng.standard_normal((7, d))
    assert np.isclose(np.sum(u * model.jvp(theta, z, v)), model.vjp(theta, z, u) @ v)
    s = np.sqrt(theta[d:])
    gauss = Gaussian(d, "diag")
    G_s = ExactWasserstein().matrix(gauss, np.concatenate([theta[:d], s]))
    P = np.diag(np.concatenate([np.ones(d), 1 / (2 * s)]))      # d(m, s)/d(m, delta)
    np.testing.assert_allclose(model.wasserstein_information(theta), P.T @ G_s @ P, rtol=1e-12)
    _, g_s = W2Gaussian(np.zeros(d), np.eye(d)).value_and_grad(gauss, np.concatenate([theta[:d], s]))
    np.testing.assert_allclose(g, P.T @ g_s, rtol=1e-10, atol=1e-12)
    f = lambda t: model.w2_value_and_grad(t, np.zeros(d), np.ones(d))[0]
    fdg = [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(2 * d)]
    np.testing.assert_allclose(g, fdg, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_matches_dense_slides_formula(ridge):
    """The estimator equals the slides' (1/eps)(I - T^T (TT^T + lam eps K + eps CC^T)^+ T) g
    built independently: T by central differences of tau(theta)_m = mean_n phi_m(g_theta(Z_n)),
    C and K by central differences of the kernel, pinv from numpy."""
    model = MLP(2, [5], 2)
    rng = np.random.default_rng(3)
    theta = model.init(rng, bias_scale=0.3)
    z = rng.standard_normal((40, 2))
    g = rng.standard_normal(model.n_params)
    eps, sigma, M = 1e-2, 0.8, 9
    est = KWNG(eps=eps, ridge=ridge, n_basis=M, bandwidth=sigma, seed=5)
    out = est.direction(model, theta, g, z)
    # replicate the basis draw
    r = np.random.default_rng(5)
    X = model.sample(theta, z)
    N, d = X.shape
    sel = r.choice(N, M, replace=False)
    idx = r.integers(0, d, M)
    Y = X[sel]
    k = lambda y, x: np.exp(-np.sum((x - y) ** 2, axis=-1) / (2 * sigma ** 2))
    h = 1e-5
    E = np.eye(d)

    def phi(m, x):          # d/dy_{i_m} k(y, x) at y = Y_m
        return (k(Y[m] + h * E[idx[m]], x) - k(Y[m] - h * E[idx[m]], x)) / (2 * h)

    def tau(t):
        x = model.sample(t, z)
        return np.array([phi(m, x).mean() for m in range(M)])

    T = np.column_stack([(tau(theta + h * e) - tau(theta - h * e)) / (2 * h)
                         for e in np.eye(model.n_params)])
    C = np.zeros((M, N * d))
    for m in range(M):
        grads = np.stack([(phi(m, X + h * E[i]) - phi(m, X - h * E[i])) / (2 * h) for i in range(d)], 1)
        C[m] = grads.ravel() / np.sqrt(N)
    K = np.array([[(phi(m, Y[mp] + h * E[idx[mp]]) - phi(m, Y[mp] - h * E[idx[mp]])) / (2 * h)
                   for mp in range(M)] for m in range(M)])
    A = T @ T.T + ridge * eps * K + eps * C @ C.T
    ref = (g - T.T @ np.linalg.pinv(A, rcond=1e-12, hermitian=True) @ T @ g) / eps
    np.testing.assert_allclose(out, ref, rtol=2e-5 * np.linalg.norm(ref) / np.abs(ref).min()
                               if ridge else 2e-5, atol=2e-5 * np.linalg.norm(ref))


def mean_error(d, N, ridge=0.0, reps=6):
    model, theta, g, exact = problem(d)
    errs = []
    est = KWNG(ridge=ridge, seed=11)
    for rep in range(reps):
        z = np.random.default_rng(100 + rep).standard_normal((N, d))
        errs.append(np.linalg.norm(est.direction(model, theta, g, z) - exact) / np.linalg.norm(exact))
    assert est.n_fallback == 0
    return float(np.mean(errs))


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("ridge", [0.0, 1e-6])
def test_consistency_error_falls_with_N(d, ridge):
    """Relative error to the exact natural gradient (G_W^{-1} g, closed form) falls
    with N; measured means (6 reps): d=1 0.14, 0.08, 0.05; d=2 0.16, 0.04, 0.02."""
    e = [mean_error(d, N, ridge) for N in (100, 1000, 3000)]
    assert e[0] > e[1] > e[2]
    assert e[2] < 0.08
    assert e[0] / e[2] > 2


def test_ridge_tends_to_ridgeless():
    """Same basis (same seed): the ridge estimator tends to the ridgeless one (computed
    by the different SVD route) as lambda -> 0, linearly in lambda (measured gaps
    0.10, 1.5e-2, 1.8e-4, 1.8e-6, 1.2e-8). M = 10 keeps CC^T well conditioned; with
    M = 35 the two routes keep different near-null directions of CC^T and differ by
    ~16 % whatever lambda (each direction contributes O(1): T = CB/sqrt(N))."""
    model = MLP(2, [6], 2)
    rng = np.random.default_rng(4)
    theta = model.init(rng, bias_scale=0.3)
    z = rng.standard_normal((300, 2))
    g = rng.standard_normal(model.n_params)
    ref = KWNG(eps=1e-3, ridge=0.0, n_basis=10, seed=7).direction(model, theta, g, z)
    gaps = [np.linalg.norm(KWNG(eps=1e-3, ridge=lam, n_basis=10, seed=7).direction(model, theta, g, z)
                           - ref) / np.linalg.norm(ref) for lam in (1e-1, 1e-3, 1e-5, 1e-7, 1e-9)]
    assert all(a > 5 * b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[0] > 1e-2 and gaps[-1] < 1e-7, gaps


def test_ridgeless_is_damped_inverse_of_projected_metric():
    """Ridgeless = (W^T W + eps I)^{-1} g: applying W^T W + eps I to it returns g,
    with W^T W <= E[J^T J] (RWP) as a projection of the velocity onto gradient fields."""
    model, theta, g, exact = problem(2)
    z = np.random.default_rng(0).standard_normal((500, 2))
    dd = KWNG(eps=1e-5, seed=1).direction(model, theta, g, z)
    assert dd @ g > 0
    # inner product with the exact natural gradient direction is close to its norm^2
    assert abs(dd @ exact / (exact @ exact) - 1) < 0.1


class _Bad(KWNG):
    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value

    def _estimate(self, model, theta, grad, z):
        return self.value(grad)


def test_fallback_counter():
    model, theta, g, _ = problem(1)
    z = np.random.default_rng(0).standard_normal((50, 1))
    bad = _Bad(lambda g: -g)
    np.testing.assert_array_equal(bad.direction(model, theta, g, z), g)
    bad.value = lambda g: np.zeros_like(g)
    np.testing.assert_array_equal(bad.direction(model, theta, g, z), g)
    bad.value = lambda g: 2 * g
    np.testing.assert_array_equal(bad.direction(model, theta, g, z), 2 * g)
    assert (bad.n_fallback, bad.n_calls) == (2, 3)
    real = KWNG(seed=0)
    for s in range(5):
        real.direction(model, theta, g, np.random.default_rng(s).standard_normal((50, 1)))
    assert (real.n_fallback, real.n_calls) == (0, 5)


def test_adaptive_damping_rule():
    """The authors' rule: r = 2 actual / predicted per step, rho = the window's largest r."""
    est = KWNG(eps=1e-2, adaptive=True, window=2, factor=0.5)
    est.update_damping(0.05, 1.0)
    assert est.eps == 1e-2                        # window not full
    assert est.update_damping(0.1, 1.0) == 2e-2   # rho = 0.2 < 1/4: more damping
    est.update_damping(-1.0, 1.0)
    assert est.update_damping(0.4, 1.0) == 1e-2   # rho = 0.8 > 3/4: less damping
    est.update_damping(0.3, 1.0)
    assert est.update_damping(0.2, 1.0) == 1e-2   # rho = 0.6: unchanged
    est.update_damping(-1.0, 1.0)
    assert est.update_damping(-2.0, 1.0) == 2e-2  # all r < 0: rho = 0
    assert KWNG(eps=1e-2).update_damping(0.0, 1.0) == 1e-2
    top = KWNG(eps=9e4, adaptive=True, window=1, factor=0.5)
    assert top.update_damping(0.0, 1.0) == 1e5    # clamped as in the authors' code
    assert top.update_damping(0.0, 1.0) == 1e5
    low = KWNG(eps=1e-10, adaptive=True, window=1, factor=0.5)
    assert low.update_damping(1.0, 1.0) == 1e-10


def test_diagonal_preconditioning_is_a_change_of_coordinates():
    """With eps -> 0 the damping term vanishes, so D (D W^T W D)^{-1} D g = (W^T W)^{-1} g
    when W^T W is invertible: the diagonal option changes only the damping."""
    model, theta, g, _ = problem(2)
    z = np.random.default_rng(3).standard_normal((2000, 2))
    a = KWNG(eps=1e-9, seed=2).direction(model, theta, g, z)
    b = KWNG(eps=1e-9, seed=2, diagonal=True).direction(model, theta, g, z)
    np.testing.assert_allclose(a, b, rtol=1e-4)


@pytest.mark.parametrize("kw", [dict(eps=0), dict(ridge=-1), dict(n_basis=0), dict(bandwidth="x"),
                                dict(window=0), dict(factor=1.0), dict(rcond=0)])
def test_bad_arguments(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        KWNG(**kw)


class _Recording(KWNG):
    def update_damping(self, actual, predicted):
        self.seen.append((actual, predicted))
        return super().update_damping(actual, predicted)


@pytest.mark.parametrize("eta, eps_end", [(1e-3, 2.5e-3), (1.0, 4e-2)])
def test_solve_drives_the_adaptive_damping(eta, eps_end):
    """``densflow.solve`` reports every accepted step: the actual decrease is the loss
    difference on the batch, the prediction eta * s.g; tiny steps (rho ~ 2) halve eps
    after each window of 2, an overshooting step (m = 2 -> about -2, rho ~ 0) doubles it."""
    import densflow
    from densflow.parametric import Problem, fixed_step_path
    from densflow.solving import FixedStep

    model, loss = Gaussian(1, "diag"), W2Gaussian(0.0, 1.0)
    problem = Problem(model, loss, z=np.random.default_rng(0).standard_normal((200, 1)))
    est = _Recording(eps=1e-2, adaptive=True, window=2, factor=0.5, seed=0)
    est.seen = []
    path, res = fixed_step_path(problem, [2.0, 1.0], est, eta, 4)
    assert res.n_iter == 4 and len(est.seen) == 4
    for k, (actual, predicted) in enumerate(est.seen):
        before = loss.value_and_grad(model, path[k])[0]
        after = loss.value_and_grad(model, path[k + 1])[0]
        assert np.isclose(actual, before - after, rtol=1e-12, atol=1e-15)
        assert np.isclose(predicted, eta * res.decrements[k], rtol=1e-12)
    assert np.isclose(est.eps, eps_end)
    plain = KWNG(eps=1e-2, seed=0)
    densflow.solve(problem, path[0], metric=plain, line_search=FixedStep(eta), max_iter=4, tol=None)
    assert plain.eps == 1e-2
