"""The two-delta example of Lin et al. (2021): metric and proximal updates."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).parents[1] / "cases" / "lin2021_toy.py"
spec = importlib.util.spec_from_file_location("lin2021_toy", PATH)
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)


def test_relaxed_wasserstein_metric_is_the_exact_one():
    n = 200_000
    G = toy.rwp_metric(n=n, seed=3)
    a = toy.ALPHA
    sd = np.sqrt(a * (1 - a) / n)  # binomial standard deviation of the fraction
    assert abs(G[0, 0] - a) <= 4 * sd and abs(G[1, 1] - (1 - a)) <= 4 * sd
    assert G[0, 1] == 0.0 and G[0, 0] + G[1, 1] == pytest.approx(1.0)


def test_w1_closed_form_against_the_cdf_integral():
    theta, other = np.array([-1.1, 0.3]), np.array([-0.2, 1.7])
    x = np.linspace(-3, 3, 600_001)
    cdf = lambda t: toy.ALPHA * (x >= t[0]) + (1 - toy.ALPHA) * (x >= t[1])  # noqa: E731
    integral = np.abs(cdf(theta) - cdf(other)).sum() * (x[1] - x[0])
    assert toy.w1(theta, other) == pytest.approx(integral, abs=1e-4)


@pytest.mark.parametrize("metric", ["euclidean", "wasserstein"])
def test_proximal_steps_match_soft_thresholding(metric):
    rng = np.random.default_rng(0)
    for _ in range(8):
        theta_k = np.array([rng.uniform(-2, -0.05), rng.uniform(0.05, 2)])
        numeric = toy.proximal_step(theta_k, metric)
        exact = toy.proximal_step_closed_form(theta_k, metric)
        np.testing.assert_allclose(numeric, exact, atol=1e-6)


def test_wasserstein_step_points_closer_to_the_minimum():
    start = np.array([-1.6, 0.4])
    cos = {}
    for metric in ("euclidean", "wasserstein"):
        step = toy.proximal_step_closed_form(start, metric) - start
        to_min = toy.THETA_STAR - start
        cos[metric] = step @ to_min / np.linalg.norm(step) / np.linalg.norm(to_min)
    assert cos["wasserstein"] > cos["euclidean"] + 0.1
