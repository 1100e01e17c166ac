"""KWNG (issues 7, 27): the authors' estimator against a dense, independent transcription
of their code's formulas (finite-difference T and C, a last-layer row scaled by 1e-4), the
Woodbury and direct forms against each other, the growth of the direction on a scaled
row; densflow's variant against the slides' formula; consistency in N against the exact
natural gradient of the variance-parametrised Gaussian; ridge -> ridgeless, the fallback,
the adaptive damping."""

import numpy as np
import pytest

from densflow.parametric import MLP, Gaussian
from densflow.parametric._kwng import VarianceGaussian
from densflow.parametric.losses import W2Gaussian
from densflow.parametric.metrics import KWNG, ExactWasserstein, KWNGVariant


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
def test_variant_matches_dense_slides_formula(ridge):
    """densflow's variant equals the slides' (1/eps)(I - T^T (TT^T + lam eps K + eps CC^T)^+ T) g
    built independently: T by central differences of tau(theta)_m = mean_n phi_m(g_theta(Z_n)),
    C and K by central differences of the kernel, pinv from numpy."""
    model = MLP(2, [5], 2)
    rng = np.random.default_rng(3)
    theta = model.init(rng, bias_scale=0.3)
    z = rng.standard_normal((40, 2))
    g = rng.standard_normal(model.n_params)
    eps, sigma, M = 1e-2, 0.8, 9
    est = KWNGVariant(eps=eps, ridge=ridge, n_basis=M, bandwidth=sigma, seed=5)
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


class ScaledMLP:
    """x = diag(U) MLP(z): the last layer's rows scaled by U (the ill-conditioned classifier
    of the case in miniature)."""

    def __init__(self, U, hidden=5):
        self.net, self.U = MLP(2, [hidden], len(U)), np.asarray(U, dtype=float)
        self.n_params = self.net.n_params

    def sample(self, theta, z):
        return self.net.sample(theta, z) * self.U

    def vjp(self, theta, z, u):
        return self.net.vjp(theta, z, np.asarray(u) * self.U)


def authors_direction(model, theta, z, g, eps, M, seed):
    """Dense transcription of the authors' code (kwng.py: compute_cond_matrix,
    compute_natural_gradient, make_system; gaussian.py: _dkdxdy with a mask): the basis
    rows and coordinates of ``KWNG(seed=seed)``'s draw; the kernel exp(-|x-y|^2/(2 s2))
    with s2 the mean squared distance from the basis to the batch; their closed forms
    dkdx[m,n] = -k (x-y)_{i_m}/s2 and dkdxdy[m,n,r] = k (delta_{i_m r}/s2
    - (x-y)_{i_m}(x-y)_r/s2^2) (x = basis_m, y = sample_n); T by central differences of
    aux(theta)_m = mean_n dkdx[m,n] (fourth-order central differences) with the basis and s2
    held fixed (their detach); their
    "K" = (1/N) sum_{n,r} dkdxdy[m,n,r] dkdxdy[k,n,r]; an SVD K = V S V^T;
    W = S^{-1/2} V^T T; D = 1/(|W column| + 1e-8); G = W diag(D) W^T + eps I;
    u = D (g - W^T G^{-1} W D g) / eps. Returns u and the direct form
    (W^T W + eps diag(1/D))^{-1} g."""
    r = np.random.default_rng(seed)
    X = model.sample(theta, z)
    N, d = X.shape
    sel = r.choice(N, M, replace=False)
    idx = r.integers(0, d, M)
    Y = X[sel]
    s2 = np.mean([[np.sum((Y[m] - X[n]) ** 2) for n in range(N)] for m in range(M)])

    def kernel_terms(x):
        diff = Y[:, None, :] - x[None, :, :]                       # (M, N, d): basis - sample
        k = np.exp(-0.5 * np.sum(diff ** 2, axis=-1) / s2)
        di = diff[np.arange(M), :, idx]                              # (M, N): (x - y)_{i_m}
        dkdx = -k * di / s2
        dkdxdy = k[:, :, None] * (np.eye(d)[idx][:, None, :] / s2 - di[:, :, None] * diff / s2 ** 2)
        return dkdx, dkdxdy

    def aux(t):
        return kernel_terms(model.sample(t, z))[0].mean(axis=1)

    h = 1e-3                                # fourth-order differences: error ~ h^4 + 1e-16/h
    T = np.column_stack([(8 * (aux(theta + h * e) - aux(theta - h * e))
                          - aux(theta + 2 * h * e) + aux(theta - 2 * h * e)) / (12 * h)
                         for e in np.eye(model.n_params)])
    dkdxdy = kernel_terms(X)[1]
    K = np.einsum("mni,kni->mk", dkdxdy, dkdxdy) / N
    _, S, Vt = np.linalg.svd(K)
    assert S.min() > 0                      # the authors drop only exact zeros
    W = (Vt / np.sqrt(S)[:, None]) @ T
    D = 1.0 / (np.sqrt(np.sum(W * W, axis=0)) + 1e-8)
    G = W @ np.diag(D) @ W.T + eps * np.eye(M)
    woodbury = D * (g - W.T @ np.linalg.solve(G, W @ (D * g))) / eps
    direct = np.linalg.solve(W.T @ W + eps * np.diag(1.0 / D), g)
    return woodbury, direct


@pytest.mark.parametrize("scale", [1.0, 1e-4])
def test_matches_authors_formulas(scale):
    """KWNG() equals a dense transcription of the authors' code on a small model whose
    second output row is scaled by ``scale`` (a column of W and of g of size ~1e-4 for
    that row's 6 parameters), and the Woodbury and direct forms agree."""
    model = ScaledMLP([1.0, scale])
    rng = np.random.default_rng(3)
    theta = model.net.init(rng, bias_scale=0.3)
    z = rng.standard_normal((40, 2))
    g = model.vjp(theta, z, rng.standard_normal((40, 2)) / 40)   # a gradient through the model
    eps, M = 1e-3, 5
    woodbury, direct = authors_direction(model, theta, z, g, eps, M, seed=5)
    np.testing.assert_allclose(woodbury, direct, rtol=1e-8, atol=1e-9 * np.abs(direct).max())
    out = KWNG(eps=eps, n_basis=M, seed=5).direction(model, theta, g, z)
    np.testing.assert_allclose(out, woodbury, rtol=2e-5, atol=2e-5 * np.abs(woodbury).max())


def test_scaled_row_growth():
    """On an output row scaled by s (its columns of T and of the gradient ~ s), the
    authors' direction stays O(1) (the damping eps (|W col| + 1e-8) ~ s divides a gradient
    ~ s outside the features' span); densflow's variant with the raw-T diagonal applied as
    a change of coordinates (eps mean(T^2) ~ s^2) grows like 1/s: slopes of log |u_row|
    against log s over s = 1e-2..1e-4, same basis, bandwidth and batch (measured 0.001
    and -1.000)."""
    rng = np.random.default_rng(3)
    theta = MLP(2, [5], 2).init(rng, bias_scale=0.3)
    z = rng.standard_normal((60, 2))
    y = rng.standard_normal((60, 2)) / 60
    mark = np.zeros(theta.size)
    W, b = MLP(2, [5], 2).layers(mark)[-1]          # views into mark
    W[1], b[1] = 1.0, 1.0
    row = mark != 0                                  # the second output row's 6 parameters
    assert row.sum() == 6
    slopes = {}
    for label, make in [("authors", lambda: KWNG(eps=1e-5, n_basis=5, seed=1)),
                        ("variant", lambda: KWNGVariant(eps=1e-5, n_basis=5, bandwidth="mean",
                                                        diagonal="rms", seed=1))]:
        norms = []
        for s in (1e-2, 1e-3, 1e-4):
            model = ScaledMLP([1.0, s])
            g = model.vjp(theta, z, y)
            u = make().direction(model, theta, g, z)
            norms.append(np.linalg.norm(u[row]))
        slopes[label] = np.polyfit(np.log([1e-2, 1e-3, 1e-4]), np.log(norms), 1)[0]
    assert slopes["authors"] == pytest.approx(0.0, abs=0.1), slopes
    assert slopes["variant"] == pytest.approx(-1.0, abs=0.1), slopes


ESTIMATORS = {"authors": lambda: KWNG(seed=11), "authors, D = I": lambda: KWNG(diagonal=False, seed=11),
              "variant ridgeless": lambda: KWNGVariant(seed=11),
              "variant ridge 1e-6": lambda: KWNGVariant(ridge=1e-6, seed=11)}


def mean_error(d, N, form, reps=6):
    model, theta, g, exact = problem(d)
    errs = []
    est = ESTIMATORS[form]()
    for rep in range(reps):
        z = np.random.default_rng(100 + rep).standard_normal((N, d))
        errs.append(np.linalg.norm(est.direction(model, theta, g, z) - exact) / np.linalg.norm(exact))
    assert est.n_fallback == 0
    return float(np.mean(errs))


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("form", list(ESTIMATORS))
def test_consistency_error_falls_with_N(d, form):
    """Relative error to the exact natural gradient (G_W^{-1} g, closed form) falls
    with N = 100, 1000, 3000 (means of 6 reps), measured: authors d=1 0.13, 0.081, 0.043,
    d=2 0.15, 0.037, 0.022 (D = I the same to 1e-5); variant ridgeless d=1 0.13, 0.083,
    0.045, d=2 0.15, 0.037, 0.023; variant ridge 1e-6 d=1 0.13, 0.088, 0.053, d=2 0.16,
    0.038, 0.026."""
    e = [mean_error(d, N, form) for N in (100, 1000, 3000)]
    assert e[0] > e[1] > e[2]
    assert e[2] < 0.08
    assert e[0] / e[2] > 2


def test_ridge_tends_to_ridgeless():
    """densflow's variant, same basis (same seed): the ridge estimator tends to the ridgeless one (computed
    by the different SVD route) as lambda -> 0, linearly in lambda (measured gaps
    0.10, 1.5e-2, 1.8e-4, 1.8e-6, 1.2e-8). M = 10 keeps CC^T well conditioned; with
    M = 35 the two routes keep different near-null directions of CC^T and differ by
    ~16 % whatever lambda (each direction contributes O(1): T = CB/sqrt(N))."""
    model = MLP(2, [6], 2)
    rng = np.random.default_rng(4)
    theta = model.init(rng, bias_scale=0.3)
    z = rng.standard_normal((300, 2))
    g = rng.standard_normal(model.n_params)
    ref = KWNGVariant(eps=1e-3, ridge=0.0, n_basis=10, seed=7).direction(model, theta, g, z)
    gaps = [np.linalg.norm(KWNGVariant(eps=1e-3, ridge=lam, n_basis=10, seed=7).direction(model, theta, g, z)
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


@pytest.mark.parametrize("make", [lambda **kw: KWNG(diagonal=True, **kw),
                                  lambda **kw: KWNGVariant(diagonal="rms", bandwidth="mean", **kw)])
def test_diagonal_changes_only_the_damping(make):
    """With eps -> 0 the damping term vanishes, so (W^T W + eps D^-1)^{-1} g (the authors')
    and D (D W^T W D + eps)^{-1} D g (the variant's) both tend to (W^T W)^{-1} g when W^T W
    is invertible: the diagonal changes only the damping."""
    model, theta, g, _ = problem(2)
    z = np.random.default_rng(3).standard_normal((2000, 2))
    a = KWNG(eps=1e-9, diagonal=False, seed=2).direction(model, theta, g, z)
    b = make(eps=1e-9, seed=2).direction(model, theta, g, z)
    np.testing.assert_allclose(a, b, rtol=1e-4)


@pytest.mark.parametrize("kw", [dict(eps=0), dict(n_basis=0), dict(bandwidth="x"),
                                dict(bandwidth="median"), dict(diagonal="rms"),
                                dict(window=0), dict(factor=1.0), dict(rcond=0)])
def test_bad_arguments(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        KWNG(**kw)


@pytest.mark.parametrize("kw", [dict(ridge=-1), dict(diagonal=True), dict(bandwidth=-1.0)])
def test_bad_variant_arguments(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        KWNGVariant(**kw)


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
