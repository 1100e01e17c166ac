"""densflow.parametric.torch: torch modules through every parametric metric (against the
numpy models with the same weights), jvp/vjp against finite differences, and the
NaturalGradient optimizer against densflow.solve's fixed-step iterates."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(  # noqa: E402
    "torch", reason="needs PyTorch: pip install \".[torch]\" (about 5 GB with CUDA), then pytest -m torch")
pytestmark = pytest.mark.torch

import densflow as df  # noqa: E402
from densflow.parametric import MLP, MMD, Gaussian, Problem, fixed_step_path  # noqa: E402
from densflow.parametric.metrics import (KWNG, O1SBE, RWP, Euclidean, ExactWasserstein,  # noqa: E402
                                         Fisher, O2DiagSBE, SiNG)
from densflow.parametric.torch import GaussianModule, NaturalGradient, TorchModel, mlp  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _pair(activation="tanh", seed=0):
    rng = np.random.default_rng(seed)
    np_model = MLP(2, [6, 5], 3, activation)
    theta = np_model.init(rng, bias_scale=0.3)
    module = mlp(2, [6, 5], 3, activation)
    tmodel = TorchModel(module, 2)
    tmodel.load(theta)
    return np_model, tmodel, theta


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_torch_mlp_matches_numpy_mlp_samples_jvp_vjp(activation):
    np_model, tmodel, theta = _pair(activation)
    assert tmodel.n_params == np_model.n_params and np.array_equal(tmodel.theta(), theta)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((9, 2))
    v, u = rng.standard_normal(theta.size), rng.standard_normal((9, 3))
    x = np_model.sample(theta, z)
    np.testing.assert_allclose(tmodel.sample(theta, z), x, rtol=0, atol=1e-12 * np.abs(x).max())
    jv = np_model.jvp(theta, z, v)
    np.testing.assert_allclose(tmodel.jvp(theta, z, v), jv, rtol=0, atol=1e-10 * np.abs(jv).max())
    ju = np_model.vjp(theta, z, u)
    np.testing.assert_allclose(tmodel.vjp(theta, z, u), ju, rtol=0, atol=1e-10 * np.abs(ju).max())


METRICS = {"euclidean": lambda: Euclidean(), "rwp": lambda: RWP(damping=1e-3),
           "o1sbe": lambda: O1SBE(), "o2diagsbe": lambda: O2DiagSBE(),
           "kwng": lambda: KWNG(eps=1e-3, seed=3), "sing": lambda: SiNG(eps=0.5, damping=1e-3, rtol=1e-13)}


@pytest.mark.parametrize("name", list(METRICS))
def test_every_sample_metric_gives_the_numpy_direction_on_the_torch_mlp(name):
    np_model, tmodel, theta = _pair()
    rng = np.random.default_rng(2)
    z = rng.standard_normal((40, 2))
    g = rng.standard_normal(theta.size)
    a = METRICS[name]().direction(np_model, theta, g, z)
    b = METRICS[name]().direction(tmodel, theta, g, z)
    assert np.linalg.norm(a - b) <= 1e-10 * np.linalg.norm(a)


@pytest.mark.parametrize("par", ["mean", "diag", "logdiag", "cholesky", "full"])
def test_gaussian_module_is_the_gaussian_model_and_takes_the_exact_metrics(par):
    rng = np.random.default_rng(4)
    model = Gaussian(3, par)
    L = np.tril(rng.standard_normal((3, 3))) * 0.3 + 1.5 * np.eye(3)
    scale = {"mean": None, "diag": [0.8, 1.2, 1.9], "logdiag": [-0.2, 0.1, 0.4], "cholesky": L,
             "full": L + 0.2 * rng.standard_normal((3, 3))}[par]
    theta = model.pack([0.1, -0.3, 0.5], scale)
    tmodel = TorchModel(GaussianModule(3, par, mean=[0.1, -0.3, 0.5], scale=scale), 3)
    np.testing.assert_array_equal(tmodel.theta(), theta)
    z, v, u = rng.standard_normal((7, 3)), rng.standard_normal(theta.size), rng.standard_normal((7, 3))
    np.testing.assert_allclose(tmodel.sample(theta, z), model.sample(theta, z), atol=1e-13)
    np.testing.assert_allclose(tmodel.jvp(theta, z, v), model.jvp(theta, z, v), atol=1e-13)
    np.testing.assert_allclose(tmodel.vjp(theta, z, u), model.vjp(theta, z, u), atol=1e-12)
    g = rng.standard_normal(theta.size)
    metrics = [RWP(damping=1e-3)] + ([ExactWasserstein(), Fisher()] if par != "full" else [])
    for metric in metrics:
        a = metric.direction(model, theta, g, z)
        b = metric.direction(tmodel, theta, g, z)
        assert np.linalg.norm(a - b) <= 1e-10 * np.linalg.norm(a), metric
    with pytest.raises(ValueError, match="Gaussian models only"):
        ExactWasserstein().direction(_pair()[1], _pair()[2], np.ones(_pair()[2].size), z[:, :2])


class _Odd(torch.nn.Module):
    """Not an MLP: a layer norm, a skip connection and a softplus gate."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 8, dtype=torch.float64)
        self.norm = torch.nn.LayerNorm(8, dtype=torch.float64)
        self.b = torch.nn.Linear(8, 2, dtype=torch.float64)
        self.gate = torch.nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))

    def forward(self, z):
        h = torch.tanh(self.norm(self.a(z)))
        return self.b(h) * torch.nn.functional.softplus(self.gate) + z[:, :2]


def test_jvp_and_vjp_of_any_module_match_finite_differences_and_each_other():
    torch.manual_seed(0)
    model = TorchModel(_Odd(), 3)
    theta = model.theta() + 0.1 * np.random.default_rng(0).standard_normal(model.n_params)
    rng = np.random.default_rng(5)
    z, v, u = rng.standard_normal((6, 3)), rng.standard_normal(model.n_params), rng.standard_normal((6, 2))
    h = 1e-6
    fd = (model.sample(theta + h * v, z) - model.sample(theta - h * v, z)) / (2 * h)
    jv = model.jvp(theta, z, v)
    assert np.linalg.norm(jv - fd) <= 1e-8 * np.linalg.norm(jv)
    assert np.sum(u * jv) == pytest.approx(model.vjp(theta, z, u) @ v, rel=1e-12)
    # the cached reverse-mode closure follows theta and z
    assert not np.allclose(model.vjp(theta + 0.5, z, u), model.vjp(theta, z, u))
    assert not np.allclose(model.vjp(theta, z + 0.5, u), model.vjp(theta, z, u))


def _torch_mmd(x, y, h):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * h * h))
    B = x.shape[0]
    Kxx = k(x, x)
    return (Kxx.sum() - Kxx.diagonal().sum()) / (B * (B - 1)) - 2 * k(x, y).mean()


def test_natural_gradient_optimizer_equals_solve_fixed_step_iterates():
    rng = np.random.default_rng(6)
    target = rng.standard_normal((50, 2)) * [1.0, 0.4] + [0.5, -0.2]
    np_model = MLP(2, [6, 5], 2, "tanh")
    gen = mlp(2, [6, 5], 2, "tanh")
    tmodel = TorchModel(gen, 2)
    theta0 = np_model.init(rng, bias_scale=0.2)
    tmodel.load(theta0)
    z = rng.standard_normal((32, 2))
    problem = Problem(tmodel, MMD(target, bandwidth=0.8), z=z)
    path, _ = fixed_step_path(problem, theta0, RWP(damping=0.05, rtol=1e-13), 0.3, 4)
    # the same on the numpy model: identical iterates
    path_np, _ = fixed_step_path(Problem(np_model, MMD(target, bandwidth=0.8), z=z), theta0,
                                 RWP(damping=0.05, rtol=1e-13), 0.3, 4)
    assert np.abs(path - path_np).max() <= 1e-10 * np.abs(path_np).max()
    opt = NaturalGradient(gen.parameters(), metric=RWP(damping=0.05, rtol=1e-13), lr=0.3, module=gen)
    zt, yt = torch.as_tensor(z), torch.as_tensor(target)
    for k in range(4):
        opt.zero_grad()
        loss = _torch_mmd(gen(zt), yt, 0.8)
        loss.backward()
        opt.step()                           # the batch the generator just saw
        np.testing.assert_allclose(tmodel.theta(), path[k + 1], rtol=0,
                                   atol=1e-10 * np.abs(path[k + 1]).max())


def test_trust_region_step_is_sings_eq_11_and_bad_input():
    rng = np.random.default_rng(7)
    gen = mlp(2, [5], 2)
    model = TorchModel(gen, 2)
    theta0 = model.theta()
    z = rng.standard_normal((24, 2))
    g = rng.standard_normal(model.n_params)
    sing = SiNG(eps=0.5, damping=1e-3)
    expected = theta0 + sing.step(model, theta0, g, z, radius=1e-3)
    opt = NaturalGradient(gen.parameters(), metric=SiNG(eps=0.5, damping=1e-3), radius=1e-3, module=gen)
    offset = 0
    for p in gen.parameters():
        p.grad = torch.as_tensor(g[offset:offset + p.numel()]).reshape(p.shape)
        offset += p.numel()
    opt.step(z=torch.as_tensor(z))
    np.testing.assert_allclose(model.theta(), expected, atol=1e-12)
    delta = model.theta() - theta0           # on the Sinkhorn ball: (1/2) delta^T SIM delta = r
    assert 0.5 * delta @ sing.apply(model, theta0, z, delta) == pytest.approx(1e-3, rel=1e-6)
    with pytest.raises(ValueError, match="needs the module"):
        NaturalGradient(gen.parameters(), metric="rwp", lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        NaturalGradient(gen.parameters(), metric="rwp", lr=-1.0, module=gen)
    with pytest.raises(ValueError, match="latent"):
        TorchModel(gen, 0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TorchModel(MLP(2, [3], 2), 2)
    with pytest.raises(ValueError, match="parameters of module"):
        NaturalGradient(mlp(2, [3], 2).parameters(), metric="rwp", module=mlp(2, [3], 2))
    fresh = mlp(2, [3], 2)
    with pytest.raises(ValueError, match="no batch"):
        NaturalGradient(fresh.parameters(), metric="rwp", module=fresh).step()


def test_float32_module_and_solve_on_a_torch_model():
    gen = mlp(2, [8], 2, dtype=torch.float32)
    model = TorchModel(gen, 2)
    assert model.dtype == torch.float32
    model64 = TorchModel(gen, 2, dtype=torch.float64)
    rng = np.random.default_rng(8)
    z = rng.standard_normal((16, 2))
    theta = model.theta()
    assert np.abs(model.sample(theta, z) - model64.sample(theta, z)).max() < 1e-5
    target = rng.standard_normal((40, 2)) + 1.0
    res = df.solve(Problem(model64, MMD(target), z=z), theta, metric=RWP(damping=1e-3),
                   tol=None, max_iter=10)
    assert res.n_iter == 10 and np.all(np.diff(res.energies) < 0)


def test_importing_the_torch_interface_leaks_no_warning():
    """torch.func.jvp's first call scripts a helper with torch.jit.script, deprecated with a
    DeprecationWarning in some releases of torch and a FutureWarning in others; importing
    densflow.parametric.torch warms it up without letting either through."""
    code = (
        "import warnings\n"
        "import torch\n"
        "_script = torch.jit.script\n"
        "def script(*args, **kwargs):\n"
        "    warnings.warn('`torch.jit.script` is deprecated. Please switch to `torch.compile` '\n"
        "                  'or `torch.export`.', FutureWarning, stacklevel=2)\n"
        "    return _script(*args, **kwargs)\n"
        "torch.jit.script = script\n"
        "import densflow.parametric.torch\n"
        "import densflow.parametric.torch.realdata\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
