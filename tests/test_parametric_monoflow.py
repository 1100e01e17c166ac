"""MonoFlow particles, the ratio estimator and the distilled generator (issue 8)."""

import numpy as np
import pytest

from densflow.parametric.models import MLP
from densflow.parametric.monoflow import (H_FUNCTIONS, ProbabilityFlow, RatioEstimator,
                                          distill, h_prime)
from densflow.parametric.vi import kl_gaussian

C_TARGET = np.array([[1.0, 0.8], [0.8, 0.89]])


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(0)
    target = rng.multivariate_normal([0.0, 0.0], C_TARGET, 1000)
    q0 = rng.standard_normal((1000, 2)) + 1.0          # q = N((1, 1), I)
    return target, q0


@pytest.mark.parametrize("name", sorted(H_FUNCTIONS))
def test_h_prime_is_the_derivative_of_h_and_positive(name):
    h, _, _ = H_FUNCTIONS[name]
    d = np.linspace(-4, 4, 17)
    eps = 1e-6
    fd = (h(d + eps, 1.5) - h(d - eps, 1.5)) / (2 * eps)
    assert np.allclose(h_prime(name, d, 1.5), fd, rtol=1e-6, atol=1e-8)
    assert np.all(h_prime(name, d, 1.5) > 0)


@pytest.mark.parametrize("name, f2", [
    ("logit", lambda r: 1 / r**2),                        # KL(q||p): f = -log r
    ("exp", lambda r: 1 / r),                             # KL(p||q): f = r log r
    ("js", lambda r: 0.5 * (1 / r - 1 / (1 + r))),        # Jensen-Shannon
    ("hellinger", lambda r: 0.5 * r**-1.5),               # (sqrt r - 1)^2
    ("chi2", lambda r: 2 + 0 * r),                        # (r - 1)^2
])
def test_f_divergence_flows_have_h_prime_r2_f2(name, f2):
    r = np.logspace(-2, 2, 9)
    assert np.allclose(h_prime(name, np.log(r)), r**2 * f2(r), rtol=1e-12)


def test_ratio_estimator_gradient_matches_finite_differences(samples):
    target, q0 = samples
    est = RatioEstimator(n_features=50, rng=0).fit(target, q0)
    x = np.random.default_rng(1).standard_normal((5, 2))
    eps = 1e-6
    fd = np.stack([(est(x + eps * e) - est(x - eps * e)) / (2 * eps) for e in np.eye(2)], 1)
    assert np.allclose(est.grad(x), fd, atol=1e-7)


def test_ratio_estimator_recovers_a_linear_log_ratio():
    # p = N(a, I), q = N(b, I): log p/q = (a - b).x - (|a|^2 - |b|^2)/2
    rng = np.random.default_rng(2)
    a, b = np.array([0.5, 0.0]), np.array([-0.5, 0.5])
    est = RatioEstimator(n_features=20, reg=1e-2, rng=3).fit(
        rng.standard_normal((4000, 2)) + a, rng.standard_normal((4000, 2)) + b)
    x = rng.standard_normal((200, 2)) * 0.7
    exact = x @ (a - b) - 0.5 * (a @ a - b @ b)
    assert np.sqrt(np.mean((est(x) - exact) ** 2)) < 0.1
    assert np.abs(est.grad(x).mean(axis=0) - (a - b)).max() < 0.1


@pytest.mark.parametrize("h, n_steps", [("logit", 200), ("nonsaturated", 300)])
def test_monoflow_moves_q_to_the_gaussian_target(samples, h, n_steps):
    # h' = 1 (logit) and h' = sigma(-d) (about 1/2 near the target: more steps)
    target, q0 = samples
    flow = ProbabilityFlow(target, h=h, step=0.05, refit_every=5, rng=1)
    x, snaps = flow.run(q0, n_steps, snapshot_every=20)
    assert np.abs(x.mean(axis=0)).max() < 0.1          # measured 0.039, 0.050
    assert np.abs(np.cov(x.T) - C_TARGET).max() < 0.1   # measured 0.043, 0.052
    kl = [kl_gaussian(s.mean(0), np.cov(s.T), [0, 0], C_TARGET) for _, s in snaps]
    assert kl[0] > 2.5 and kl[-1] < 0.03
    # decreasing along the flow, up to the estimator's noise floor (~5e-3)
    assert all(k1 <= k0 + 5e-3 for k0, k1 in zip(kl, kl[1:]))


def test_distilled_affine_generator_reaches_the_target(samples):
    target, _ = samples
    model = MLP(2, [], 2)                               # x = W z + b
    theta0 = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])   # q = N((1, 1), I)
    theta = distill(model, theta0, target, h="logit", n_iters=300, batch_size=500, lr=0.02,
                    rng=3)
    W, b = theta[:4].reshape(2, 2), theta[4:]
    assert np.abs(b).max() < 0.1
    assert np.abs(W @ W.T - C_TARGET).max() < 0.1


def test_bad_input(samples):
    target, q0 = samples
    with pytest.raises(ValueError, match="h must be one of"):
        ProbabilityFlow(target, h="square")
    with pytest.raises(ValueError, match="step must be"):
        ProbabilityFlow(target, step=-1.0)
    with pytest.raises(ValueError, match="particles must be a finite"):
        ProbabilityFlow(target).run(np.ones((10, 3)), 1)
    with pytest.raises(ValueError, match="bandwidth must be"):
        RatioEstimator(bandwidth=0.0)
    with pytest.raises(ValueError, match="q_samples must be"):
        RatioEstimator().fit(target, np.ones(5))
