"""The accuracy figures quoted in README.rst for KWNG, SiNG, Gaussian VI and MonoFlow
(issues 7 and 8), measured against their oracles and printed as one table.

The tests assert bounds on the same quantities; this script prints the values.

Run: ``python benchmarks/parametric_accuracy.py`` (about a minute).
"""

import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tables import print_rst_table  # noqa: E402

import densflow as df  # noqa: E402
from densflow.parametric import MLP, Gaussian, Problem, fixed_step_path  # noqa: E402
from densflow.parametric._kwng import VarianceGaussian  # noqa: E402
from densflow.parametric._sing import SinkhornHessian  # noqa: E402
from densflow.parametric.losses import Sinkhorn  # noqa: E402
from densflow.parametric.metrics import (KWNGVariant, SiNG, gaussian_sim_1d,  # noqa: E402
                                         gaussian_sinkhorn_1d)
from densflow.parametric.monoflow import ProbabilityFlow, distill  # noqa: E402
from densflow.parametric.vi import (GaussianTarget, LogisticRegressionPosterior,  # noqa: E402
                                    ReverseKL, bures_wasserstein_flow, gaussian_vi, w2_gaussian)

C_TARGET = np.array([[1.0, 0.8], [0.8, 0.89]])
ROWS = []


def row(check, value):
    ROWS.append([check, value])
    print(f"{check}: {value}", file=sys.stderr)


def fmt(values):
    return ", ".join(f"{v:.2g}" for v in np.atleast_1d(values))


def kwng():
    model = MLP(2, [6], 2)
    rng = np.random.default_rng(4)
    theta = model.init(rng, bias_scale=0.3)
    z = rng.standard_normal((300, 2))
    g = rng.standard_normal(model.n_params)
    ref = KWNGVariant(eps=1e-3, n_basis=10, seed=7).direction(model, theta, g, z)
    gaps = [np.linalg.norm(KWNGVariant(eps=1e-3, ridge=lam, n_basis=10, seed=7).direction(model, theta, g, z)
                           - ref) / np.linalg.norm(ref) for lam in (1e-1, 1e-3, 1e-5, 1e-7, 1e-9)]
    row("KWNGVariant ridge -> ridgeless, lambda = 1e-1 ... 1e-9", fmt(gaps))


def sing():
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal((30, 2)), rng.standard_normal((30, 2))
    gaps = []
    for eps in (0.5, 2.0):
        loss = Sinkhorn(x, eps=eps, tol=1e-12, n_iter=100000)
        h = 1e-4
        fd = (loss.value_and_grad_samples(x + h * v)[1] - loss.value_and_grad_samples(x - h * v)[1]) / (2 * h)
        gaps.append(np.abs(SinkhornHessian(x, eps).apply(v) - fd).max() / np.abs(fd).max())
    row("SiNG Hessian vs central differences, eps = 0.5, 2", fmt(gaps))
    z = np.random.default_rng(1).standard_normal((40, 2))
    err = [np.abs(SiNG(eps=e, damping=0).matrix(Gaussian(2, "mean"), np.array([0.3, -1.0]), z)
                  - 2 * np.eye(2)).max() for e in (0.1, 1.0, 10.0)]
    row("SiNG location family: |SIM - 2I|, eps = 0.1, 1, 10", fmt(err))
    var, h, gaps = 1.3, 1e-4, []
    for eps in (0.1, 1.0, 5.0):
        f = lambda a: gaussian_sinkhorn_1d(0.0, a, 0.0, var, eps)  # noqa: E731
        fd = (f(var + h) - 2 * f(var) + f(var - h)) / h ** 2
        gaps.append(abs(gaussian_sim_1d(var, eps)[1, 1] - fd) / fd)
    row("SiNG 1D Gaussian closed form vs second differences, eps = 0.1, 1, 5", fmt(gaps))
    model, theta, exact = VarianceGaussian(1), np.array([0.2, 1.3]), gaussian_sim_1d(1.3, 1.0)[1, 1]
    rms = []
    for N in (25, 100, 400, 1600):
        e = [SiNG(eps=1.0, damping=0).matrix(model, theta, np.random.default_rng(r).standard_normal((N, 1)))[1, 1]
             / exact - 1 for r in range(6)]
        rms.append(np.sqrt(np.mean(np.square(e))))
    row("SiNG empirical SIM (v, v) RMS rel. error, N = 25, 100, 400, 1600", fmt(rms))
    model = Gaussian(2, "cholesky")
    rng = np.random.default_rng(4)
    theta = model.pack([0.1, -0.2], [[1.0, 0.0], [0.3, 0.8]])
    z = rng.standard_normal((60, 2))
    g = rng.standard_normal(model.n_params)
    loss = Sinkhorn(model.sample(theta, z), eps=0.5, tol=1e-12, n_iter=100000)
    gaps = []
    for r in (1e-4, 1e-6):
        step = SiNG(eps=0.5, damping=0.0, tol=1e-12).step(model, theta, g, z, radius=r)
        gaps.append(loss.value_and_grad_samples(model.sample(theta + step, z))[0] / r - 1)
    row("SiNG step: S_eps(moved, before)/r - 1, r = 1e-4, 1e-6", fmt(gaps))


def vi():
    m, S, mu0, v0 = 2.0, 0.5, -1.0, 3.0
    t, mu, Sig = bures_wasserstein_flow(GaussianTarget([m], [[S]]), [mu0], [[v0]], 2.0, 0.01)
    row("BW flow vs OU, 1D: mean, variance", fmt([
        np.abs(mu[:, 0] - (m + (mu0 - m) * np.exp(-t / S))).max(),
        np.abs(Sig[:, 0, 0] - (S + (v0 - S) * np.exp(-2 * t / S))).max()]))
    m, P = np.array([0.5, -1.0]), np.linalg.inv(C_TARGET)
    t, mu, Sig = bures_wasserstein_flow(GaussianTarget(m, C_TARGET), [1.0, 1.0], np.eye(2), 1.0, 0.005)
    E = [scipy.linalg.expm(-P * tk) for tk in t]
    row("BW flow vs OU, 2D (matrix exponential)", fmt(max(
        max(np.abs(mu[k] - m - E[k] @ (np.array([1.0, 1.0]) - m)).max(),
            np.abs(Sig[k] - C_TARGET - E[k] @ (np.eye(2) - C_TARGET) @ E[k]).max()) for k in range(len(t)))))
    post = LogisticRegressionPosterior.synthetic(40, 2, 1.0, rng=0)
    _, muf, Sf = bures_wasserstein_flow(post, [1.0, 1.0], np.eye(2), 2.0, 0.001, use_hessian=False)
    gaps = []
    for step in (0.02, 0.01):
        n = int(round(2.0 / step))
        mv, Sv = gaussian_vi(post, [1.0, 1.0], np.eye(2), step, n, expectations="cubature")
        idx = np.arange(n + 1) * int(round(step / 0.001))
        gaps.append(max(np.abs(mv - muf[idx]).max(), np.abs(np.einsum("kij,klj->kil", Sv, Sv) - Sf[idx]).max()))
    row("Euclidean descent on (mu, S) vs BW flow, t <= 2, step 0.02, 0.01", fmt(gaps))
    _, muf, Sf = bures_wasserstein_flow(post, [0.0, 0.0], np.eye(2), 10.0, 0.02, order=8)
    mv, Sv = gaussian_vi(post, [0.0, 0.0], np.eye(2), 0.02, 500, expectations="cubature", order=8)
    row("fixed points: deterministic descent vs flow (mean, cov)",
        fmt([np.abs(mv[-1] - muf[-1]).max(), np.abs(Sv[-1] @ Sv[-1].T - Sf[-1]).max()]))
    mv, Sv = gaussian_vi(post, [0.0, 0.0], np.eye(2), 0.02, 1500, estimator="stl", n_samples=100, rng=1)
    cov = np.einsum("kij,klj->il", Sv[1000:], Sv[1000:]) / 501
    w2 = w2_gaussian(mv[1000:].mean(0), cov, muf[-1], Sf[-1])
    row("fixed points: STL (100 samples, averaged) vs flow, W2", fmt(w2))
    model = Gaussian(2, "cholesky")
    problem = Problem(model, ReverseKL(post, order=8), z=model.latent(0, 4))
    theta0 = model.pack([1.0, 1.0], np.eye(2))
    _, mub, Sb = bures_wasserstein_flow(post, [1.0, 1.0], np.eye(2), 1.0, 0.0025, order=8)
    gaps = []
    for h in (0.04, 0.02, 0.01):
        path, _ = fixed_step_path(problem, theta0, "exact_wasserstein", h, int(round(1.0 / h)))
        stride = int(round(h / 0.0025))
        gaps.append(max(max(np.abs(a - mub[stride * k]).max(), np.abs(C - Sb[stride * k]).max())
                        for k, (a, C) in enumerate(model.moments(p) for p in path)))
    row("ReverseKL + exact_wasserstein, constant h = 0.04, 0.02, 0.01 vs flow, t <= 1", fmt(gaps))
    res = df.solve(problem, model.pack([0.0, 0.0], np.eye(2)), metric="exact_wasserstein",
                   tol=None, gtol=1e-12, max_iter=100)
    a, C = model.moments(res.p)
    row("ReverseKL + exact_wasserstein, Armijo: iterations; distance to the flow's fixed point",
        f"{res.n_iter}; " + fmt(max(np.abs(a - muf[-1]).max(), np.abs(C - Sf[-1]).max())))


def monoflow():
    rng = np.random.default_rng(0)
    target = rng.multivariate_normal([0.0, 0.0], C_TARGET, 1000)
    q0 = rng.standard_normal((1000, 2)) + 1.0
    for h, n in (("logit", 200), ("nonsaturated", 300)):
        x, _ = ProbabilityFlow(target, h=h, step=0.05, refit_every=5, rng=1).run(q0, n, snapshot_every=20)
        row(f"MonoFlow {h} ({n} steps): mean error, covariance error",
            fmt([np.abs(x.mean(0)).max(), np.abs(np.cov(x.T) - C_TARGET).max()]))
    theta = distill(MLP(2, [], 2), np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), target, h="logit",
                    n_iters=300, batch_size=500, lr=0.02, rng=3)
    W, b = theta[:4].reshape(2, 2), theta[4:]
    row("distilled affine generator: mean error, covariance error",
        fmt([np.abs(b).max(), np.abs(W @ W.T - C_TARGET).max()]))


if __name__ == "__main__":
    kwng()
    sing()
    vi()
    monoflow()
    print_rst_table(["check", "measured"], ROWS)
