"""Issue 29, item 5: the parametric side's input, as an attacker gives it.

Float32 torch modules get CG tolerances that follow their dtype; NaN gradients and
Jacobian products are reported as what they are; ``TorchModel`` shape errors are
``ValueError``s naming the argument; and every input the issue found accepted without
complaint is refused with a message naming the argument.
"""

import numpy as np
import pytest

import densflow as df
from densflow.optim.linesearch import FixedStep
from densflow.parametric import MMD, Gaussian, Problem, TrustRegion, W2Gaussian
from densflow.parametric import metrics as M
from densflow.parametric.metrics.cg import CGError, conjugate_gradient
from densflow.parametric.optimizers import Adam
from densflow.parametric.targets import GaussianTarget
from densflow.parametric.vi import vi_problem

torch = pytest.importorskip("torch")
from densflow.parametric.torch import GaussianModule, NaturalGradient, TorchModel, mlp  # noqa: E402


def test_float32_modules_get_a_tolerance_that_follows_their_dtype():
    X = np.random.default_rng(0).standard_normal((256, 2))
    results = {}
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        model = TorchModel(mlp(2, [4], 2, dtype=dtype), 2)
        res = df.solve(Problem(model, MMD(X), batch_size=256, rng=0), model.theta(),
                       metric=M.RWP(), max_iter=10)
        results[dtype] = res
        assert "error" not in res.info, res.message
        assert res.n_iter == 10
    assert TorchModel(mlp(2, [4], 2, dtype=torch.float32), 2).precision == pytest.approx(2.0 ** -23)
    assert M.RWP().effective_rtol(Gaussian(2)) == 1e-10  # float64: the default, unchanged
    rtol32 = M.RWP().effective_rtol(TorchModel(mlp(2, [4], 2, dtype=torch.float32), 2))
    assert rtol32 == pytest.approx(1e4 * 2.0 ** -23)
    # what a float32 direction is worth: it solves the (dense, float32) G to that tolerance
    torch.manual_seed(0)
    m32 = TorchModel(mlp(2, [4], 2, dtype=torch.float32), 2)
    theta = m32.theta()
    z = np.random.default_rng(1).standard_normal((256, 2))
    g = np.random.default_rng(2).standard_normal(m32.n_params)
    metric = M.RWP(damping=1e-2)  # moderate |d|: the dense G's own rounding stays small
    G = metric.matrix(m32, theta, z)
    d = metric.direction(m32, theta, g, z)
    assert np.linalg.norm(G @ d - g) <= 4 * rtol32 * np.linalg.norm(g)


def test_nan_gradients_and_products_are_named_not_called_singular():
    with pytest.raises(CGError, match=r"the gradient holds 1 NaN or inf entries"):
        conjugate_gradient(lambda v: v, np.array([1.0, np.nan]), name="rwp")
    with pytest.raises(CGError, match=r"G v is NaN or inf along a CG direction"):
        conjugate_gradient(lambda v: v * np.nan, np.array([1.0, 2.0]), name="rwp")


class _NaNLossAt:
    """MMD whose gradient turns NaN after ``k`` evaluations."""

    def __init__(self, X, k):
        self.inner, self.k, self.calls = MMD(X), k, 0

    def value_and_grad(self, model, theta, z):
        self.calls += 1
        value, grad = self.inner.value_and_grad(model, theta, z)
        return (value, grad * np.nan) if self.calls > self.k else (value, grad)


def test_a_nan_gradient_in_a_run_is_reported_as_one():
    X = np.random.default_rng(0).standard_normal((64, 2)) + 1
    model = Gaussian(2, "diag")
    res = df.solve(Problem(model, _NaNLossAt(X, 3), batch_size=32, rng=0),
                   model.pack(np.zeros(2), np.ones(2)), metric="rwp", max_iter=20)
    assert not res.converged and "NaN" in res.message and "singular" not in res.message


def test_natural_gradient_with_nan_parameters_says_nan():
    module = GaussianModule(2, "diag")
    opt = NaturalGradient(module.parameters(), "rwp", lr=0.1, module=module)
    with torch.no_grad():
        module.mean[0] = float("nan")
    z = torch.randn(16, 2, dtype=torch.float64)
    module(z).pow(2).sum().backward()
    with pytest.raises((CGError, FloatingPointError), match="NaN"):
        opt.step(z=z)


def test_torch_model_shape_errors_are_value_errors_naming_the_argument():
    model = TorchModel(mlp(2, [3], 2), 2)
    theta = model.theta()
    z = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 2\)"):
        model.sample(theta, np.zeros(2))  # used to return shape (2, 1)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 2\)"):
        model.sample(theta, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"theta must be a flat array of {theta.size}"):
        model.sample(theta[:-1], z)
    with pytest.raises(ValueError, match=rf"v must be a flat array of {theta.size}"):
        model.jvp(theta, z, np.zeros(3))
    with pytest.raises(ValueError, match=r"u must have shape \(4, 2\)"):
        model.vjp(theta, z, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="z must be finite"):
        model.sample(theta, np.full((4, 2), np.nan))


@pytest.mark.parametrize("make, match", [
    (lambda: Adam(0.1, eps=-1), "eps must be a finite number > 0"),
    (lambda: Adam(0.1, eps=np.nan), "eps must be a finite number > 0"),
    (lambda: Adam(True), "lr must be a finite number > 0"),
    (lambda: M.Adam(eps=-1), "eps must be a finite number > 0"),
    (lambda: FixedStep(True), "fixed step eta must be a finite number > 0"),
    (lambda: TrustRegion(True), "trust-region radius must be a finite number > 0"),
    (lambda: NaturalGradient(mlp(2, [3], 2).parameters(), "euclidean", lr=True),
     "lr must be a finite number > 0"),
    (lambda: GaussianModule(2, mean=[np.nan, 0]), "mean and scale must be finite"),
    (lambda: mlp(2, [0], 2), "hidden must be a list of layer widths"),
    (lambda: mlp(0, [3], 2), "latent_dim must be an integer >= 1"),
    (lambda: MMD(np.ones((5, 2), bool)), "target_samples must hold real numbers"),
    (lambda: MMD(np.ones((5, 2), complex)), "target_samples must hold real numbers"),
    (lambda: W2Gaussian([np.nan, 0], np.eye(2)), "target_mean must be a finite"),
    (lambda: W2Gaussian([0, 0], np.array([[np.inf, 0], [0, 1]])), "target_cov must be finite"),
    (lambda: TorchModel(mlp(2, [3], 2), lambda rng, b: np.full((b, 2), np.nan)),
     r"latent\(rng, 2\) returned NaN"),
    (lambda: vi_problem(GaussianTarget(np.zeros(2), np.eye(2)), 2, n_samples=0),
     "n_samples must be an integer >= 1"),
])
def test_inputs_accepted_without_complaint_are_refused(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_a_singular_start_for_the_exact_metric_is_reported_not_raised():
    problem = Problem(Gaussian(2, "diag"), W2Gaussian([0, 0], np.eye(2)), batch_size=8)
    res = df.solve(problem, [0, 0, 0, 0], metric="exact_wasserstein")
    assert not res.converged and res.n_iter == 0
    assert "regular covariance" in res.message and "singular" in res.message
    assert res.info["error"].startswith("LinAlgError")
