"""Push-forward models: jvp/vjp against central finite differences and each other."""

import numpy as np
import pytest

from densflow.parametric import MLP, Gaussian


def _models():
    rng = np.random.default_rng(0)
    out = []
    for d in (1, 3):
        for par in ("mean", "diag", "logdiag", "cholesky", "full"):
            m = Gaussian(d, par)
            out.append((m, rng.standard_normal(m.n_params)))
    for act in ("tanh", "relu", "softplus"):
        m = MLP(2, [5, 4], 3, act)
        out.append((m, m.init(rng, bias_scale=0.3)))
    m = MLP(3, [], 2, "tanh")
    out.append((m, m.init(rng, bias_scale=0.3)))
    return out


MODELS = _models()
IDS = [repr(m) for m, _ in MODELS]


@pytest.mark.parametrize("model,theta", MODELS, ids=IDS)
def test_jvp_matches_central_differences(model, theta):
    rng = np.random.default_rng(1)
    z = model.latent(rng, 7)
    v = rng.standard_normal(model.n_params)
    h = 1e-5
    fd = (model.sample(theta + h * v, z) - model.sample(theta - h * v, z)) / (2 * h)
    jv = model.jvp(theta, z, v)
    assert jv.shape == (7, model.out_dim)
    assert np.linalg.norm(jv - fd) <= 1e-6 * np.linalg.norm(jv)


@pytest.mark.parametrize("model,theta", MODELS, ids=IDS)
def test_vjp_matches_central_differences(model, theta):
    rng = np.random.default_rng(2)
    z = model.latent(rng, 6)
    u = rng.standard_normal((6, model.out_dim))
    h = 1e-5
    fd = np.empty(model.n_params)
    for i in range(model.n_params):
        e = np.zeros(model.n_params)
        e[i] = h
        fd[i] = np.sum(u * (model.sample(theta + e, z) - model.sample(theta - e, z))) / (2 * h)
    g = model.vjp(theta, z, u)
    assert g.shape == theta.shape
    assert np.linalg.norm(g - fd) <= 1e-6 * np.linalg.norm(g)


@pytest.mark.parametrize("model,theta", MODELS, ids=IDS)
def test_adjoint_identity(model, theta):
    rng = np.random.default_rng(3)
    z = model.latent(rng, 9)
    u = rng.standard_normal((9, model.out_dim))
    v = rng.standard_normal(model.n_params)
    lhs = np.sum(u * model.jvp(theta, z, v))
    rhs = np.dot(model.vjp(theta, z, u), v)
    assert abs(lhs - rhs) <= 1e-12 * (abs(lhs) + np.linalg.norm(u) * np.linalg.norm(v))


def test_gaussian_layout_and_moments():
    g = Gaussian(2, "cholesky")
    L = np.array([[2.0, 0.0], [0.5, 1.5]])
    theta = g.pack([1.0, -1.0], L)
    np.testing.assert_array_equal(theta, [1.0, -1.0, 2.0, 0.5, 1.5])
    m, S = g.moments(theta)
    np.testing.assert_allclose(S, L @ L.T)
    z = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(g.sample(theta, z)[0], [1.0 + 2.0, -1.0 + 0.5 + 3.0])
    ld = Gaussian(2, "logdiag")
    _, S = ld.moments(ld.pack([0, 0], np.log([2.0, 3.0])))
    np.testing.assert_allclose(S, np.diag([4.0, 9.0]))
    x = np.array([[0.3, -0.2]])
    from scipy.stats import multivariate_normal
    np.testing.assert_allclose(g.logpdf(theta, x), multivariate_normal([1, -1], L @ L.T).logpdf(x))


def test_bad_arguments():
    with pytest.raises(ValueError, match="parametrization"):
        Gaussian(2, "square")
    with pytest.raises(ValueError, match="dim"):
        Gaussian(0)
    with pytest.raises(ValueError, match="activation"):
        MLP(2, [3], 1, "sigmoid")
    with pytest.raises(ValueError, match="theta"):
        Gaussian(2, "diag").check_theta(np.zeros(3))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 2\)"):
        Gaussian(2, "diag").check_z(np.zeros((4, 3)))
