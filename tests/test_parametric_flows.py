"""One loop for every parametric method (issue 16): recording, resuming and failures of
parametric runs, and the particle, Bures–Wasserstein, GAN and trust-region runs of
densflow.solve against hand-written loops."""

import numpy as np
import pytest

import densflow as df
from densflow.parametric import MLP, MMD, Gaussian, Problem, Sinkhorn
from densflow.parametric.flows import BuresWassersteinFlow, ParticleFlow, ProximalGAN
from densflow.parametric.gan import Critic
from densflow.parametric.metrics import RWP, SiNG
from densflow.parametric.monoflow import ProbabilityFlow, RatioEstimator, h_prime
from densflow.parametric.problem import TrustRegion
from densflow.parametric.vi import GaussianTarget
from densflow.io.recorder import read_run_file
from densflow.solving import Armijo, FixedStep


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    model = MLP(2, [6], 2)
    return Problem(model, MMD(rng.standard_normal((40, 2)), bandwidth=0.8), z=model.latent(rng, 24)), \
        model.init(seed + 1, bias_scale=0.2)


def test_recorded_parametric_run_reads_back_and_resumes_exactly(tmp_path):
    problem, theta0 = _problem()
    opts = dict(metric=RWP(damping=1e-3), tol=None, max_iter=25)
    ref = df.solve(problem, theta0, **opts)
    path = tmp_path / "run.h5"
    # interrupted after 15 iterations (an exception, as a kill would), then resumed from
    # its last snapshot, iteration 10

    def interrupt(k, *a):
        if k == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        df.solve(problem, theta0, out=path, callback=interrupt, **opts)
    res = df.solve(problem, theta0, out=path, resume=True, **opts)
    assert res.info["resumed_from"] == 10 and res.n_iter == 25
    np.testing.assert_array_equal(res.p, ref.p)
    np.testing.assert_array_equal(res.energies, ref.energies)
    run = read_run_file(path, snapshots=True).runs[0]
    assert run.attrs["kind"] == "parametric" and run.attrs["problem"] == "Problem"
    assert run.attrs["line_search"] == "armijo" and run.status == "complete"
    np.testing.assert_array_equal(run.energies, ref.energies)
    np.testing.assert_array_equal(run.snapshot_iterations, [0, 10, 20])
    np.testing.assert_array_equal(run.snapshots[0], theta0)
    np.testing.assert_array_equal(run.p_final, ref.p)
    # another metric is another run: refused
    with pytest.raises(ValueError, match="cannot resume"):
        df.solve(problem, theta0, out=path, resume=True, metric="euclidean", tol=None, max_iter=25)


def test_a_failed_inner_solve_is_reported_in_the_result_and_the_run_file(tmp_path):
    rng = np.random.default_rng(3)
    model = Gaussian(2, "diag")
    loss = Sinkhorn(rng.standard_normal((30, 2)), eps=0.5)
    problem = Problem(model, loss, z=model.latent(rng, 20))

    def starve(k, *a):                  # from iteration 2 on no Sinkhorn solve can converge
        if k == 2:
            loss.n_iter = 2

    res = df.solve(problem, np.array([3.0, 0.0, 1.0, 1.0]), metric="rwp", tol=None,
                   max_iter=5, out=tmp_path / "f.h5", callback=starve)
    assert res.n_iter == 2
    assert not res.converged and "numerical failure" in res.message and "error" in res.info
    run = read_run_file(tmp_path / "f.h5").runs[0]
    assert run.status == "failed" and "SinkhornError" in run.attrs["error"]


def test_particle_flow_in_solve_is_the_euler_loop():
    rng = np.random.default_rng(4)
    target = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], 300)
    x0 = rng.standard_normal((200, 2)) + 1.0
    res = ProbabilityFlow(target, h="nonsaturated", step=0.1, refit_every=3,
                          estimator=RatioEstimator(50, rng=7)).solve(x0, 8)
    # the same by hand: refit every 3 steps, x += eps h'(d) grad d
    est, x = RatioEstimator(50, rng=7), x0.copy()
    for k in range(8):
        if k % 3 == 0:
            est.fit(target, x)
        d = np.clip(est(x), -5, 5)
        x = x + 0.1 * h_prime("nonsaturated", d)[:, None] * est.grad(x)
    np.testing.assert_allclose(res.p, x, rtol=0, atol=1e-12)
    assert res.n_iter == 8 and res.energies.shape == (9,)
    with pytest.raises(TypeError, match="FixedStep"):
        df.solve(ParticleFlow(ProbabilityFlow(target)), x0, "euclidean", line_search=Armijo())
    with pytest.raises(ValueError, match="euclidean"):
        df.solve(ParticleFlow(ProbabilityFlow(target)), x0, "rwp", line_search=FixedStep(0.1))


def test_bures_wasserstein_flow_in_solve_matches_the_ornstein_uhlenbeck_solution(tmp_path):
    # target N(m, C): mu(t) = m + e^{-C^{-1} t}(mu0 - m), Sigma solves the Lyapunov ODE;
    # 1D: Sigma(t) = c + (s0 - c) e^{-2t/c}
    m, c = 0.7, 1.6
    problem = BuresWassersteinFlow(GaussianTarget([m], [[c]]), 1, order=4)
    res = df.solve(problem, problem.pack([-1.0], [[0.3]]), "euclidean", tol=None, max_iter=100,
                   line_search=FixedStep(0.02), out=tmp_path / "bw.h5")
    mu, S = problem.unpack(res.p)
    t = 2.0
    assert abs(mu[0] - (m + np.exp(-t / c) * (-1.0 - m))) < 1e-9
    assert abs(S[0, 0] - (c + (0.3 - c) * np.exp(-2 * t / c))) < 1e-9
    assert np.all(np.diff(res.energies) < 0)        # KL decreases along the flow
    assert read_run_file(tmp_path / "bw.h5").runs[0].attrs["problem_scheme"] == "rk4"
    stop = df.solve(problem, problem.pack([-1.0], [[0.3]]), "euclidean", tol=None, gtol=1e-10,
                    max_iter=10000, line_search=FixedStep(0.05))
    assert stop.converged and stop.decrements[-1] <= 1e-10


def test_trust_region_run_is_the_sing_update_loop():
    rng = np.random.default_rng(5)
    model = MLP(2, [5], 2)
    z = model.latent(rng, 20)
    loss = Sinkhorn(rng.standard_normal((30, 2)) + 1.0, eps=0.5)
    theta0 = model.init(2)
    sing = SiNG(eps=0.5, damping=1e-3)
    res = df.solve(Problem(model, loss, z=z), theta0, sing, tol=None, max_iter=3,
                   line_search=TrustRegion(1e-3))
    theta = theta0.copy()
    for _ in range(3):
        _, g = loss.value_and_grad(model, theta, z)
        theta = theta + SiNG(eps=0.5, damping=1e-3).step(model, theta, g, z, radius=1e-3)
    np.testing.assert_allclose(res.p, theta, rtol=0, atol=1e-10 * np.abs(theta).max())
    with pytest.raises(ValueError, match="radius"):
        TrustRegion(0.0)


def test_gan_algorithm_1_runs_recorded_through_solve(tmp_path):
    from densflow.parametric.gan import ProximalPenalty, train_gan

    def data(rng, B):
        return rng.standard_normal((B, 2)) * 0.3 + 1.0

    gen, critic = MLP(2, [8], 2), Critic(2, [8])
    rng = np.random.default_rng(6)
    theta0, phi0 = gen.init(rng), critic.init(rng)
    theta, phi, hist = train_gan(gen, theta0, critic, phi0, data, np.random.default_rng(1),
                                 n_iter=12, batch=32, penalty=ProximalPenalty("rwp", 0.2, 2),
                                 eval_every=4, evaluate=lambda th: float(np.sum(th ** 2)),
                                 solve_options={"out": tmp_path / "gan.h5"})
    assert list(hist["iteration"]) == [0, 4, 8, 12] and np.all(np.diff(hist["time"]) > 0)
    run = read_run_file(tmp_path / "gan.h5").runs[0]
    assert run.n_iter == 12 and run.attrs["problem"] == "ProximalGAN"
    np.testing.assert_array_equal(run.p_final, theta)
    # the same problem run twice from the same seeds gives the same generator
    again = df.solve(ProximalGAN(gen, critic, phi0, data, np.random.default_rng(1), 32,
                                 ProximalPenalty("rwp", 0.2, 2)), theta0, "euclidean",
                     tol=None, max_iter=12, line_search=FixedStep(1e-3))
    np.testing.assert_array_equal(again.p, theta)


@pytest.mark.parametrize("recorded", [False, True])
def test_a_failure_at_theta0_is_reported_not_raised(tmp_path, recorded):
    # Sinkhorn cannot converge in 2 iterations: the very first evaluation fails
    rng = np.random.default_rng(3)
    model = Gaussian(2, "diag")
    loss = Sinkhorn(rng.standard_normal((30, 2)), eps=0.5)
    loss.n_iter = 2
    problem = Problem(model, loss, z=model.latent(rng, 20))
    theta0 = np.array([3.0, 0.0, 1.0, 1.0])
    out = tmp_path / "f0.h5" if recorded else None
    res = df.solve(problem, theta0, metric="rwp", tol=None, max_iter=5, out=out)
    assert res.n_iter == 0 and not res.converged
    assert res.message.startswith("numerical failure at iteration 0 (E = nan)")
    assert "SinkhornError" in res.info["error"]
    assert res.energies.shape == (1,) and np.isnan(res.energies[0])
    np.testing.assert_array_equal(res.p, theta0)
    if recorded:
        run = read_run_file(out).runs[0]
        assert run.status == "failed" and "SinkhornError" in run.attrs["error"]
        assert run.message == res.message and run.n_iter == 0
    # a CG failure at the first direction: the value at theta0 is known
    loss.n_iter = 3000
    res = df.solve(problem, theta0, metric=RWP(damping=1e-3, max_iter=1, rtol=1e-14), tol=None,
                   max_iter=5)
    assert res.n_iter == 0 and "CGError" in res.info["error"]
    assert res.energies[0] == pytest.approx(problem.evaluate(theta0).value, rel=1e-12)


def test_proximal_point_problem_is_the_proximal_iteration(tmp_path):
    # F = |theta|^2 / 2, Euclidean prox with step tau: theta / (1 + tau); relaxed with h:
    # theta_k = (1 - h tau / (1 + tau))^k theta_0
    from densflow.parametric.flows import ProximalPoint

    tau, theta0 = 0.5, np.array([2.0, -1.0, 0.5])
    problem = ProximalPoint(lambda t: 0.5 * t @ t, lambda t: t / (1 + tau), min_value=0.0,
                            description={"tau": tau})
    for h in (1.0, 0.5):
        res = df.solve(problem, theta0, "euclidean", tol=None, max_iter=6, line_search=FixedStep(h),
                       out=tmp_path / f"prox{h}.h5")
        factor = 1 - h * tau / (1 + tau)
        np.testing.assert_allclose(res.p, factor ** 6 * theta0, rtol=1e-14)
        np.testing.assert_allclose(res.energies, 0.5 * factor ** (2 * np.arange(7)) * (theta0 @ theta0),
                                   rtol=1e-13)
        # the decrement is the squared length of the proximal step
        np.testing.assert_allclose(res.decrements,
                                   (tau / (1 + tau)) ** 2 * factor ** (2 * np.arange(6)) * (theta0 @ theta0),
                                   rtol=1e-13)
        run = read_run_file(tmp_path / f"prox{h}.h5").runs[0]
        assert run.attrs["problem"] == "ProximalPoint" and run.attrs["problem_tau"] == tau
    res = df.solve(problem, theta0, "euclidean", tol=1e-6, max_iter=100, line_search=FixedStep(1.0))
    # F_k = F_0 (2/3)^(2k) <= 1e-6 first at k = ceil(log(1e-6 / 2.625) / (2 log(2/3)))
    assert res.converged and res.n_iter == int(np.ceil(np.log(1e-6 / 2.625) / (2 * np.log(2 / 3))))
    with pytest.raises(TypeError, match="callables"):
        ProximalPoint(None, lambda t: t)
    with pytest.raises(TypeError, match="FixedStep"):
        df.solve(problem, theta0, "euclidean", line_search=Armijo())
