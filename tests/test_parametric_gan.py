"""GAN pieces: critic input gradients, proximal penalties, a short training run."""

import numpy as np
import pytest

from densflow.parametric import metrics as pm
from densflow.parametric.gan import Critic, ProximalPenalty, train_gan
from densflow.parametric.losses import MMD
from densflow.parametric.models import MLP


def test_critic_input_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    critic = Critic(2, [8, 8])
    phi = critic.init(rng)
    x = rng.standard_normal((5, 2))
    u = rng.standard_normal(5)
    g = critic.input_vjp(phi, x, u)
    h = 1e-6
    fd = np.zeros_like(x)
    for b in range(5):
        for i in range(2):
            e = np.zeros_like(x)
            e[b, i] = h
            fd[b, i] = (u @ critic.sample(phi, x + e)[:, 0] - u @ critic.sample(phi, x - e)[:, 0]) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ProximalPenalty.KINDS)
def test_penalty_gradient_matches_finite_differences(kind):
    rng = np.random.default_rng(1)
    y = rng.standard_normal((16, 2))
    x = y + 0.1 * rng.standard_normal((16, 2))
    pen = ProximalPenalty(kind, h=0.3)
    _, g = pen.value_and_grad_samples(x, y)
    h = 1e-6
    for b, i in [(0, 0), (3, 1), (15, 0)]:
        e = np.zeros_like(x)
        e[b, i] = h
        fd = (pen.value_and_grad_samples(x + e, y)[0] - pen.value_and_grad_samples(x - e, y)[0]) / (2 * h)
        assert g[b, i] == pytest.approx(fd, rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("kind,metric", [("rwp", pm.RWP(damping=0.0)), ("o1sbe", pm.O1SBE(damping=0.0)),
                                         ("o2diagsbe", pm.O2DiagSBE(damping=0.0))])
def test_penalty_is_the_metric_to_second_order(kind, metric):
    # D(θ + εv, θ)^2 / ε^2 -> vᵀ G v: the proximal penalty and the natural-gradient metric agree
    rng = np.random.default_rng(2)
    model = MLP(2, [6], 2)
    theta = model.init(rng)
    z = rng.standard_normal((32, 2))
    v = rng.standard_normal(model.n_params)
    pen = ProximalPenalty(kind, h=0.5)  # value = D^2 / (2h) = D^2
    eps = 1e-5
    d2 = pen.value_and_grad_samples(model.sample(theta + eps * v, z), model.sample(theta, z))[0]
    assert d2 / eps**2 == pytest.approx(v @ metric.apply(model, theta, z, v), rel=1e-4)


def test_short_training_run_lowers_mmd():
    rng = np.random.default_rng(3)
    gen, critic = MLP(2, [16], 2), Critic(2, [16])
    center = np.array([2.0, -1.0])
    data = lambda r, B: center + 0.3 * r.standard_normal((B, 2))  # noqa: E731
    mmd = MMD(data(np.random.default_rng(9), 300), bandwidth=1.0)
    zs = np.random.default_rng(10).standard_normal((300, 2))
    evaluate = lambda th: mmd.value_and_grad_samples(gen.sample(th, zs))[0]  # noqa: E731
    for penalty in (None, ProximalPenalty("rwp", h=0.2, steps=3)):
        theta, _, hist = train_gan(gen, gen.init(rng), critic, critic.init(rng), data, rng,
                                   n_iter=300, batch=64, lr=5e-3, penalty=penalty, eval_every=100,
                                   evaluate=evaluate)
        assert list(hist["iteration"]) == [0, 100, 200, 300]
        assert hist["value"][-1] < 0.2 * hist["value"][0]
        assert np.all(np.diff(hist["time"]) > 0)


def test_penalty_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        ProximalPenalty("w2")
    with pytest.raises(ValueError, match="h must be > 0"):
        ProximalPenalty("rwp", h=0)


def test_o2diagsbe_penalty_is_the_supremum_over_diagonal_quadratic_potentials():
    # Lin et al. (2021), eqs. (8)-(9): per coordinate, the supremum over (a_i, q_i) of
    # a_i E[δ_i] + q_i E[(x_i² - y_i²)/2] - E[(q_i y_i + a_i)²]/2, solved here as a dense
    # 2×2 system from the raw moments; D̃² is twice the supremum (D̃² = |E δ|² for O1-SBE).
    rng = np.random.default_rng(4)
    B, d = 24, 3
    y = rng.standard_normal((B, d)) * [1.0, 0.3, 2.0] + [0.5, -1.0, 0.0]
    x = y + 0.4 * rng.standard_normal((B, d)) + 0.2 * y**2  # large, nonlinear displacement
    total = 0.0
    for i in range(d):
        ell = np.array([np.mean(x[:, i] - y[:, i]), 0.5 * np.mean(x[:, i]**2 - y[:, i]**2)])
        M = np.array([[1.0, np.mean(y[:, i])], [np.mean(y[:, i]), np.mean(y[:, i]**2)]])
        theta = np.linalg.solve(M, ell)
        a, q = theta
        sup = a * ell[0] + q * ell[1] - 0.5 * np.mean((q * y[:, i] + a)**2)
        total += 2 * sup
    h = 0.7
    value, _ = ProximalPenalty("o2diagsbe", h=h).value_and_grad_samples(x, y)
    assert value * 2 * h == pytest.approx(total, rel=1e-12)


def test_o2diagsbe_penalty_with_a_constant_coordinate_keeps_the_mean_term():
    rng = np.random.default_rng(5)
    y = rng.standard_normal((10, 2))
    y[:, 1] = 3.0
    x = y + rng.standard_normal((10, 2))
    value, g = ProximalPenalty("o2diagsbe", h=0.5).value_and_grad_samples(x, y)
    dbar = (x - y).mean(axis=0)
    c = np.mean((y[:, 0] - y[:, 0].mean()) * (x[:, 0] - y[:, 0])) + 0.5 * np.mean((x[:, 0] - y[:, 0])**2)
    assert value == pytest.approx(dbar @ dbar + c**2 / np.var(y[:, 0]), rel=1e-12)
    assert np.all(np.isfinite(g)) and np.allclose(g[:, 1], 2 * dbar[1] / 10)
