"""Losses of push-forward models: values against independent computations, gradients
against central finite differences."""

import numpy as np
import pytest

from densflow.parametric import MLP, Gaussian
from densflow.parametric.losses import MMD, W2Gaussian, Sinkhorn, SinkhornError


def _fd_theta(f, theta, h=1e-6):
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def _fd_samples(f, x, h=1e-5):
    g = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("dim", [1, 3])
@pytest.mark.parametrize("par", ["mean", "diag", "logdiag", "cholesky"])
def test_w2gaussian_gradient_matches_finite_differences(dim, par):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((dim, dim))
    loss = W2Gaussian(rng.standard_normal(dim), A @ A.T + 0.5 * np.eye(dim))
    model = Gaussian(dim, par)
    if par == "cholesky":
        L = np.tril(0.3 * rng.standard_normal((dim, dim))) + np.eye(dim)
        theta = model.pack(rng.standard_normal(dim), L)
    elif par == "mean":
        theta = rng.standard_normal(dim)
    else:
        scale = rng.uniform(0.5, 2.0, dim)
        theta = model.pack(rng.standard_normal(dim), np.log(scale) if par == "logdiag" else scale)
    value, grad = loss.value_and_grad(model, theta, None)
    fd = _fd_theta(lambda t: loss.value_and_grad(model, t, None)[0], theta)
    assert value > 0
    assert np.linalg.norm(grad - fd) <= 1e-7 * np.linalg.norm(grad)


def test_w2gaussian_value_closed_forms():
    # 1D: (m - mu)^2 + (s - sigma)^2
    loss = W2Gaussian(1.0, 4.0)
    v, g = loss.value_and_grad(Gaussian(1, "diag"), np.array([0.5, 3.0]), None)
    assert v == pytest.approx(0.25 + 1.0, rel=1e-14)
    np.testing.assert_allclose(g, [2 * (0.5 - 1.0), 2 * (3.0 - 2.0)], rtol=1e-14)
    # commuting covariances: |dm|^2 + ||Sigma^1/2 - S^1/2||_F^2
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    S, Sig = Q @ np.diag([1.0, 4.0, 9.0]) @ Q.T, Q @ np.diag([2.0, 1.0, 0.25]) @ Q.T
    model = Gaussian(3, "cholesky")
    theta = model.pack(np.zeros(3), np.linalg.cholesky(Sig))
    v, _ = W2Gaussian(np.ones(3), S).value_and_grad(model, theta, None)
    expected = 3.0 + (np.sqrt(2) - 1) ** 2 + (1 - 2) ** 2 + (0.5 - 3) ** 2
    assert v == pytest.approx(expected, rel=1e-12)


def test_mmd_value_matches_direct_sum_and_gradients():
    rng = np.random.default_rng(2)
    y, x = rng.standard_normal((12, 2)) + 0.5, rng.standard_normal((9, 2))
    loss = MMD(y, bandwidth=0.8)
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * 0.8 ** 2))  # noqa: E731
    B, M = len(x), len(y)
    direct = (sum(k(x[i], x[j]) for i in range(B) for j in range(B) if i != j) / (B * (B - 1))
              - 2 * sum(k(a, b) for a in x for b in y) / (B * M)
              + sum(k(y[i], y[j]) for i in range(M) for j in range(M) if i != j) / (M * (M - 1)))
    value, gx = loss.value_and_grad_samples(x)
    assert value == pytest.approx(direct, rel=1e-12)
    fd = _fd_samples(lambda s: loss.value_and_grad_samples(s)[0], x)
    assert np.linalg.norm(gx - fd) <= 1e-8 * np.linalg.norm(gx)
    # through an MLP's vjp
    model = MLP(2, [6], 2, "tanh")
    theta, z = model.init(rng, bias_scale=0.2), model.latent(rng, 9)
    _, g = loss.value_and_grad(model, theta, z)
    fd = _fd_theta(lambda t: loss.value_and_grad(model, t, z)[0], theta)
    assert np.linalg.norm(g - fd) <= 1e-7 * np.linalg.norm(g)


def _plain_sinkhorn_ot(x, y, eps, n_iter=5000):
    """OT_eps by plain (not log-domain) Sinkhorn scaling, as an independent check;
    the symmetric problem (``y is x``) by the geometric-mean update (plain alternation
    converges slowly there)."""
    C = np.sum((x[:, None] - y[None]) ** 2, axis=-1)
    K = np.exp(-C / eps)
    a, b = np.full(len(x), 1 / len(x)), np.full(len(y), 1 / len(y))
    u, v = np.ones(len(x)), np.ones(len(y))
    for _ in range(n_iter):
        if y is x:
            u = v = np.sqrt(u * a / (K @ u))
        else:
            u = a / (K @ v)
            v = b / (K.T @ u)
    P = u[:, None] * K * v[None]
    assert np.abs(P.sum(1) - a).max() < 1e-14
    return np.sum(P * C) + eps * np.sum(P * np.log(P / np.outer(a, b)))


def test_sinkhorn_value_matches_plain_sinkhorn():
    rng = np.random.default_rng(3)
    y, x = rng.standard_normal((10, 2)) + 1.0, rng.standard_normal((8, 2))
    eps = 1.0
    loss = Sinkhorn(y, eps=eps, tol=1e-13)
    value, _ = loss.value_and_grad_samples(x)
    expected = (_plain_sinkhorn_ot(x, y, eps) - 0.5 * _plain_sinkhorn_ot(x, x, eps)
                - 0.5 * _plain_sinkhorn_ot(y, y, eps))
    assert value == pytest.approx(expected, rel=1e-9)
    assert value > 0


@pytest.mark.parametrize("eps", [0.1, 1.0])
def test_sinkhorn_sample_gradient_matches_finite_differences(eps):
    rng = np.random.default_rng(4)
    y, x = rng.standard_normal((24, 2)) + 0.7, rng.standard_normal((16, 2))
    loss = Sinkhorn(y, eps=eps, tol=1e-13, n_iter=100000)
    _, gx = loss.value_and_grad_samples(x)
    fd = _fd_samples(lambda s: loss.value_and_grad_samples(s)[0], x)
    err = np.linalg.norm(gx - fd) / np.linalg.norm(gx)
    print(f"Sinkhorn eps={eps}: relative sample-gradient error vs FD {err:.2e}")
    assert err <= 1e-5


def test_sinkhorn_theta_gradient_and_errors():
    rng = np.random.default_rng(5)
    model = Gaussian(2, "cholesky")
    theta = model.pack([0.2, -0.1], [[1.0, 0.0], [0.3, 0.8]])
    z = model.latent(rng, 12)
    loss = Sinkhorn(rng.standard_normal((15, 2)), eps=0.5, tol=1e-13)
    _, g = loss.value_and_grad(model, theta, z)
    fd = _fd_theta(lambda t: loss.value_and_grad(model, t, z)[0], theta, h=1e-5)
    assert np.linalg.norm(g - fd) <= 1e-6 * np.linalg.norm(g)
    with pytest.raises(SinkhornError, match="did not converge"):
        Sinkhorn(rng.standard_normal((15, 2)), eps=0.01, tol=1e-14, n_iter=3).value_and_grad_samples(
            rng.standard_normal((5, 2)))
    with pytest.raises(ValueError, match="eps"):
        Sinkhorn(np.zeros((4, 1)), eps=0.0)
    with pytest.raises(ValueError, match="target_cov"):
        W2Gaussian([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="Gaussian model"):
        W2Gaussian(0.0, 1.0).value_and_grad(MLP(1, [2], 1), np.zeros(7), None)


def test_mmd_matches_a_dense_three_index_reference_in_higher_dimension():
    # the (B, M, d) formula the vectorised MMD replaced, written out here
    rng = np.random.default_rng(11)
    y, x = rng.standard_normal((40, 7)) * 3 + 50.0, rng.standard_normal((30, 7)) * 3 + 50.5
    h = 2.5
    k = lambda a, b: np.exp(-np.sum((a[:, None] - b[None]) ** 2, -1) / (2 * h * h))  # noqa: E731
    Kxx, Kxy, Kyy = k(x, x), k(x, y), k(y, y)
    B, M = len(x), len(y)
    ref = ((Kxx.sum() - np.trace(Kxx)) / (B * (B - 1)) - 2 * Kxy.sum() / (B * M)
           + (Kyy.sum() - np.trace(Kyy)) / (M * (M - 1)))
    dxx = x[:, None] - x[None]
    dxy = x[:, None] - y[None]
    gref = (-2 * np.einsum("ij,ijk->ik", Kxx, dxx) / (B * (B - 1))
            + 2 * np.einsum("ij,ijk->ik", Kxy, dxy) / (B * M)) / h ** 2
    value, grad = MMD(y, bandwidth=h).value_and_grad_samples(x)
    assert value == pytest.approx(ref, rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(grad, gref, rtol=1e-9, atol=1e-13 * np.abs(gref).max())


def _marginal_error(loss, x, y):
    # the plan rebuilt from scratch by plain iterations is not available at eps = 0.1;
    # instead check the returned plan's marginals directly
    value, plan = loss._ot(x, y)
    n, m = plan.shape
    return np.abs(plan.sum(1) - 1 / n).sum() + np.abs(plan.sum(0) - 1 / m).sum()


def test_sinkhorn_converges_at_small_eps_with_defaults():
    """Issue 16: eps = 0.1, N = 200 raised SinkhornError (10^4 plain iterations); with
    eps-scaling and the Newton polish it converges, the returned plan's marginals are
    within tol, and the gradient matches finite differences."""
    rng = np.random.default_rng(0)
    y, x = rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + 0.5
    loss = Sinkhorn(y, eps=0.1)
    assert "marginal error" in Sinkhorn.criterion
    value, gx = loss.value_and_grad_samples(x)
    assert _marginal_error(loss, x, y) <= 1e-9
    assert loss.last_iterations < 1000
    v = rng.standard_normal(x.shape)
    h = 1e-5
    fd = (loss.value_and_grad_samples(x + h * v)[0] - loss.value_and_grad_samples(x - h * v)[0]) / (2 * h)
    assert np.sum(gx * v) == pytest.approx(fd, rel=1e-6)
    # the same value with the plain iterations given enough of them (eps = 0.5: they converge)
    y2, x2 = y[:60], x[:60]
    a = Sinkhorn(y2, eps=0.5, tol=1e-12).value_and_grad_samples(x2)[0]
    b = Sinkhorn(y2, eps=0.5, tol=1e-12, scaling=None).value_and_grad_samples(x2)[0]
    assert a == pytest.approx(b, rel=1e-10)
    with pytest.raises(ValueError, match="scaling"):
        Sinkhorn(y, scaling=1.5)
