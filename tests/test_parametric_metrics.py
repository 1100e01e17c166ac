"""Parametric metrics: RWP against the exact Wasserstein information matrix (seed
Theorem 2 / Remark 1), Fisher against closed forms and samples, CG behaviour."""

import numpy as np
import pytest

from densflow.parametric import MLP, Gaussian
from densflow.parametric.losses import W2Gaussian
from densflow.parametric.metrics import (RWP, O1SBE, CGError, Euclidean, ExactWasserstein, Fisher,
                                         O2DiagSBE, get)


def whitened(rng, B, d):
    """B latent points with batch mean exactly 0 and batch second moment exactly I."""
    z = rng.standard_normal((B, d))
    z -= z.mean(axis=0)
    C = z.T @ z / B
    return z @ np.linalg.inv(np.linalg.cholesky(C)).T


def test_whitened_helper():
    z = whitened(np.random.default_rng(0), 50, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-14)
    np.testing.assert_allclose(z.T @ z / 50, np.eye(3), atol=1e-13)


@pytest.mark.parametrize("par", ["diag", "logdiag", "mean"])
@pytest.mark.parametrize("dim", [1, 4])
def test_rwp_equals_exact_wasserstein_for_location_scale(par, dim):
    """Seed Theorem 2 + Remark 1: RWP's metric E[J^T J] is the Wasserstein information
    matrix for location-scale families. On a batch with the population moments
    (mean 0, second moment I) the identity is exact to rounding."""
    rng = np.random.default_rng(1)
    model = Gaussian(dim, par)
    theta = rng.uniform(0.5, 2.0, model.n_params)
    z = whitened(rng, 64, dim)
    G_rwp = RWP().matrix(model, theta, z)
    G_exact = ExactWasserstein().matrix(model, theta)
    np.testing.assert_allclose(G_rwp, G_exact, atol=1e-12)
    # exact metric is diagonal with the documented entries
    expected = {"mean": np.ones(dim), "diag": np.ones(2 * dim),
                "logdiag": np.concatenate([np.ones(dim), np.exp(2 * theta[dim:])])}[par]
    np.testing.assert_allclose(G_exact, np.diag(expected), atol=1e-12)
    # O2Diag-SBE fits delta_i by a_i + q_i y_i: exact here too; O1-SBE sees means only
    if par != "mean":
        np.testing.assert_allclose(O2DiagSBE(damping=0.0).matrix(model, theta, z), G_exact,
                                   atol=1e-11)
        G1 = O1SBE(damping=0.0).matrix(model, theta, z)
        np.testing.assert_allclose(G1[:dim, :dim], np.eye(dim), atol=1e-12)
        np.testing.assert_allclose(G1[dim:, dim:], 0.0, atol=1e-12)


def test_rwp_converges_to_exact_with_batch_size():
    """With plain N(0, I) batches the RWP matrix is a Monte-Carlo estimate of the
    exact one: entries are batch means of 1, z, z^2 (std <= sqrt(2/B))."""
    rng = np.random.default_rng(2)
    model = Gaussian(3, "diag")
    theta = np.array([0.0, 1.0, -1.0, 0.5, 1.0, 2.0])
    G_exact = ExactWasserstein().matrix(model, theta)
    errors = []
    for B in (100, 1600, 25600):
        G = RWP().matrix(model, theta, model.latent(rng, B))
        errors.append(np.abs(G - G_exact).max())
        assert errors[-1] <= 6 * np.sqrt(2.0 / B)
    print("RWP vs exact (diag, d=3), max entry error for B=100, 1600, 25600:",
          ", ".join(f"{e:.2e}" for e in errors))
    assert errors[-1] < errors[0] / 4


def test_rwp_upper_bounds_exact_for_cholesky():
    """Full-covariance model x = m + L z: RWP charges |dL z|^2 including the rotational
    part of dL that moves no mass, so G_RWP >= G_exact; at L = I the two agree on m and
    on the diagonal of L and RWP is twice the exact value on the off-diagonal entries."""
    rng = np.random.default_rng(3)
    d = 3
    model = Gaussian(d, "cholesky")
    z = whitened(rng, 64, d)
    rows, cols = np.tril_indices(d)
    theta = model.pack(np.ones(d), np.eye(d))
    G_rwp = RWP().matrix(model, theta, z)
    G_exact = ExactWasserstein().matrix(model, theta)
    np.testing.assert_allclose(G_rwp, np.eye(model.n_params), atol=1e-12)
    expected = np.concatenate([np.ones(d), np.where(rows == cols, 1.0, 0.5)])
    np.testing.assert_allclose(G_exact, np.diag(expected), atol=1e-12)
    # a general L: RWP - exact is PSD, and not zero
    L = np.tril(0.4 * rng.standard_normal((d, d))) + np.diag([1.0, 2.0, 0.7])
    theta = model.pack(rng.standard_normal(d), L)
    G_rwp = RWP().matrix(model, theta, z)
    G_exact = ExactWasserstein().matrix(model, theta)
    gap = np.linalg.eigvalsh(G_rwp - G_exact)
    W = np.linalg.cholesky(G_exact)
    ratio = np.linalg.eigvalsh(np.linalg.solve(W, np.linalg.solve(W, G_rwp).T))
    print(f"cholesky d=3: eig(G_rwp - G_exact) in [{gap.min():.2e}, {gap.max():.2e}]; "
          f"generalised eigenvalues of (G_rwp, G_exact) in [{ratio.min():.4f}, {ratio.max():.4f}]")
    assert gap.min() >= -1e-12
    assert gap.max() > 0.1
    assert ratio.min() == pytest.approx(1.0, abs=1e-10)  # agree on the directions d(Sigma) = sym
    # the mean block is exact and decoupled in both
    np.testing.assert_allclose(G_rwp[:d, :d], np.eye(d), atol=1e-12)
    np.testing.assert_allclose(G_exact[:d, :d], np.eye(d), atol=1e-12)


@pytest.mark.parametrize("par", ["mean", "diag", "logdiag", "cholesky"])
def test_exact_wasserstein_is_the_second_order_term_of_w2(par):
    """W2(theta, theta + t v)^2 = t^2 v.G v + O(t^3), with W2 from the closed form."""
    rng = np.random.default_rng(4)
    model = Gaussian(2, par)
    theta = (model.pack([0.3, -0.2], [[1.2, 0.0], [0.4, 0.8]]) if par == "cholesky"
             else rng.uniform(0.5, 1.5, model.n_params))
    v = rng.standard_normal(model.n_params)
    m, S = model.moments(theta)
    t = 1e-4
    w2, _ = W2Gaussian(m, S).value_and_grad(model, theta + t * v)
    quad = v @ ExactWasserstein().apply(model, theta, None, v)
    assert w2 / t ** 2 == pytest.approx(quad, rel=1e-3)


def _kl(m0, S0, m1, S1):
    d = m0.size
    S1i = np.linalg.inv(S1)
    return 0.5 * (np.trace(S1i @ S0) + (m1 - m0) @ S1i @ (m1 - m0) - d
                  + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


@pytest.mark.parametrize("par", ["mean", "diag", "logdiag", "cholesky"])
def test_fisher_matches_closed_form(par):
    rng = np.random.default_rng(5)
    model = Gaussian(2, par)
    theta = (model.pack([0.3, -0.2], [[1.2, 0.0], [0.4, 0.8]]) if par == "cholesky"
             else rng.uniform(0.5, 1.5, model.n_params))
    G = Fisher().matrix(model, theta)
    if par == "diag":
        s2 = theta[2:] ** 2
        np.testing.assert_allclose(G, np.diag(np.concatenate([1 / s2, 2 / s2])), rtol=1e-12)
    if par == "logdiag":
        np.testing.assert_allclose(G, np.diag(np.concatenate([np.exp(-2 * theta[2:]), [2, 2]])),
                                   rtol=1e-12, atol=1e-14)
    # KL(p_theta || p_{theta + t v}) = t^2/2 v.G v + O(t^3)
    v = rng.standard_normal(model.n_params)
    t = 1e-4
    kl = _kl(*model.moments(theta), *model.moments(theta + t * v))
    assert 2 * kl / t ** 2 == pytest.approx(v @ G @ v, rel=1e-3)


def test_fisher_matches_empirical_score_covariance():
    """E[score score^T] from 40000 samples, scores by central differences of logpdf."""
    rng = np.random.default_rng(6)
    model = Gaussian(2, "cholesky")
    theta = model.pack([0.3, -0.2], [[1.2, 0.0], [0.4, 0.8]])
    x = model.sample(theta, model.latent(rng, 40000))
    h = 1e-6
    scores = np.column_stack([(model.logpdf(theta + h * e, x) - model.logpdf(theta - h * e, x))
                              / (2 * h) for e in np.eye(model.n_params)])
    G_emp = scores.T @ scores / len(x)
    G = Fisher().matrix(model, theta)
    rel = np.linalg.norm(G_emp - G) / np.linalg.norm(G)
    print(f"Fisher vs empirical score covariance (40000 samples): relative error {rel:.3f}")
    assert rel < 0.05


def test_direction_solves_the_metric_system():
    rng = np.random.default_rng(7)
    model = MLP(2, [8], 2, "tanh")
    theta = model.init(rng, bias_scale=0.1)
    z = model.latent(rng, 32)
    g = rng.standard_normal(model.n_params)
    for metric in (RWP(damping=1e-2), O1SBE(), O2DiagSBE(), Euclidean()):
        s = metric.direction(model, theta, g, z)
        G = metric.matrix(model, theta, z)
        np.testing.assert_allclose(G, G.T, atol=1e-12)
        assert np.linalg.norm(G @ s - g) <= 1e-9 * np.linalg.norm(g)
        assert s @ g > 0
    gm = Gaussian(2, "cholesky")
    th = gm.pack([0.0, 0.0], [[1.0, 0.0], [0.5, 2.0]])
    gg = rng.standard_normal(gm.n_params)
    for metric in (ExactWasserstein(), Fisher()):
        s = metric.direction(gm, th, gg)
        np.testing.assert_allclose(metric.matrix(gm, th) @ s, gg, rtol=1e-8, atol=1e-10)


def test_cg_errors_and_arguments():
    rng = np.random.default_rng(8)
    model = MLP(1, [10], 1, "tanh")  # 31 parameters, 4 samples: G_RWP has rank <= 4
    theta = model.init(rng)
    z = model.latent(rng, 4)
    with pytest.raises(CGError, match="damping"):
        RWP().direction(model, theta, rng.standard_normal(model.n_params), z)
    with pytest.raises(ValueError, match="Gaussian models only"):
        ExactWasserstein().direction(model, theta, np.ones(model.n_params), z)
    with pytest.raises(ValueError, match="damping"):
        RWP(damping=-1.0)
    with pytest.raises(ValueError, match="parametric metric"):
        get("wasserstein")
    assert isinstance(get("rwp"), RWP)


def _sbe_penalty(x, y, order):
    """The seed's SBE penalty sup_Phi E[Phi(x) - Phi(y)] - 1/2 E|grad Phi(y)|^2 over affine
    (order 1) or diagonal-quadratic (order 2) Phi, maximised in closed form: per
    coordinate 1/2 l^T M^{-1} l with l = (E(x - y), 1/2 E(x^2 - y^2)),
    M = E[(1, y)(1, y)^T] (seed eqs. (8)-(9))."""
    total = 0.0
    for i in range(x.shape[1]):
        xi, yi = x[:, i], y[:, i]
        if order == 1:
            total += 0.5 * np.mean(xi - yi) ** 2
            continue
        ell = np.array([np.mean(xi - yi), 0.5 * np.mean(xi ** 2 - yi ** 2)])
        M = np.array([[1.0, np.mean(yi)], [np.mean(yi), np.mean(yi ** 2)]])
        total += 0.5 * ell @ np.linalg.solve(M, ell)
    return total


@pytest.mark.parametrize("metric,order", [(O1SBE(damping=0.0), 1), (O2DiagSBE(damping=0.0), 2),
                                          (RWP(), 0)])
def test_sbe_metrics_are_the_second_order_terms_of_the_seed_penalties(metric, order):
    """1/2 v.G v = lim D(theta, theta + t v)^2 / t^2 with D^2 the seed's penalty on the
    same batch, evaluated by direct maximisation over the potential (an MLP model)."""
    rng = np.random.default_rng(9)
    model = MLP(2, [6], 3, "softplus")
    theta = model.init(rng, bias_scale=0.3)
    z = model.latent(rng, 40)
    v = rng.standard_normal(model.n_params)
    t = 1e-5
    x, y = model.sample(theta + t * v, z), model.sample(theta, z)
    penalty = (0.5 * np.mean(np.sum((x - y) ** 2, axis=1)) if order == 0
               else _sbe_penalty(x, y, order))
    quad = 0.5 * v @ metric.apply(model, theta, z, v)
    assert penalty / t ** 2 == pytest.approx(quad, rel=1e-4)
