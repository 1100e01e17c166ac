"""Helpers of the real-data cases that need PyTorch (scikit-learn's digits and breast-cancer
data), against closed forms and independent computations: the digits classifier and its
FID, the cross-entropy of a labelled-input classifier, the clipped direction, the
proximal penalties in torch and Algorithm 1's steps. The helpers without PyTorch are
tested in ``test_real_data_helpers.py``."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip(  # noqa: E402
    "torch", reason="needs PyTorch: pip install \".[torch]\" (about 5 GB with CUDA), then pytest -m torch")
pytestmark = pytest.mark.torch

from densflow.parametric.data import frechet_distance, load_digits_data, split  # noqa: E402
from densflow.parametric.gan import ProximalPenalty  # noqa: E402
from densflow.parametric.metrics import KWNG, Euclidean  # noqa: E402
from densflow.parametric.torch import TorchModel  # noqa: E402
from densflow.parametric.torch.realdata import (ClippedDirection, CrossEntropy,  # noqa: E402
                                                DigitsClassifier, LabelledInputs, TorchGAN,
                                                proximal_penalty, sequential)
from densflow.solving import solve  # noqa: E402


# helpers ---------------------------------------------------------------------------------
def test_digits_classifier_accuracy_and_fid_recomputed():
    X, y = load_digits_data(-1.0, 1.0)
    train, test = split(len(X), 0.25, seed=0)
    clf = DigitsClassifier(hidden=(32, 16), seed=0).fit(X[train], y[train], steps=300)
    with torch.no_grad():
        logits = clf.net(torch.tensor(X[test], dtype=torch.float32)).numpy()
    acc = float(np.mean(logits.argmax(1) == y[test]))
    assert clf.accuracy(X[test], y[test]) == acc and acc > 0.85
    F = clf.features(X)
    with torch.no_grad():
        h = torch.relu(clf.net[2](torch.relu(clf.net[0](torch.tensor(X, dtype=torch.float32)))))
    np.testing.assert_allclose(F, h.numpy(), rtol=1e-6, atol=1e-6)
    fid = clf.fid(X)
    G = X[test] + 0.3
    Fg = clf.features(G)
    direct = frechet_distance(Fg.mean(0), np.cov(Fg.T), F.mean(0), np.cov(F.T))
    assert fid(G) == pytest.approx(direct, rel=1e-8)
    assert fid(X) == pytest.approx(0.0, abs=1e-6)


def _classifier(scale=None, seed=0):
    torch.manual_seed(seed)
    net = LabelledInputs(sequential([4, 6, 3], "relu", dtype=torch.float64), 4, scale)
    rows = np.random.default_rng(seed).standard_normal((20, 4))
    Z = np.hstack([rows, np.eye(3)[np.arange(20) % 3]])
    return net, TorchModel(net, lambda rng, b: Z[rng.integers(0, 20, b)]), Z


def test_cross_entropy_against_torch_autograd():
    scale = np.array([1e-3, 0.1, 10.0])
    net, model, Z = _classifier(scale)
    value, grad = CrossEntropy(4).value_and_grad(model, model.theta(), Z)
    out = net(torch.tensor(Z))
    ref = torch.nn.functional.cross_entropy(out, torch.tensor(np.arange(20) % 3))
    ref.backward()
    flat = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
    assert value == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, flat, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out.detach().numpy()[:, 2] / out.detach().numpy()[:, 0], 1e4 *
                               (net.net(torch.tensor(Z[:, :4]))[:, 2] / net.net(torch.tensor(Z[:, :4]))[:, 0])
                               .detach().numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match="one-hot"):
        CrossEntropy(5).value_and_grad(model, model.theta(), Z)
    with pytest.raises(ValueError, match="positive"):
        LabelledInputs(sequential([4, 3], dtype=torch.float64), 4, [1.0, -1.0, 1.0])


def test_clipped_direction_and_its_adaptive_damping():
    _, model, Z = _classifier()
    theta = model.theta()
    g = np.arange(model.n_params, dtype=float) / model.n_params
    clipped = ClippedDirection(Euclidean(), max_norm=0.5)
    d = clipped.direction(model, theta, g, Z)
    assert np.linalg.norm(d) == pytest.approx(0.5)
    np.testing.assert_allclose(d / np.linalg.norm(d), g / np.linalg.norm(g), rtol=1e-12)
    assert clipped.n_clipped == 1
    np.testing.assert_array_equal(ClippedDirection(Euclidean(), 100.0).direction(model, theta, g, Z), g)
    k = ClippedDirection(KWNG(eps=1e-3, adaptive=True, window=1, seed=0), 1.0)
    assert k.adaptive and k.name == "kwng"
    k.update_damping(0.0, 1.0)                     # no decrease: the damping grows
    assert k.metric.eps == pytest.approx(1e-3 / 0.85)
    with pytest.raises(ValueError, match="max_norm"):
        ClippedDirection(Euclidean(), 0.0)


@pytest.mark.parametrize("kind", ["rwp", "o1sbe", "o2diagsbe"])
def test_proximal_penalty_is_the_numpy_penalty(kind):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 3))
    h = 0.3
    value, grad = ProximalPenalty(kind, h=h).value_and_grad_samples(x, y)
    xt = torch.tensor(x, requires_grad=True)
    d2 = proximal_penalty(kind, xt, torch.tensor(y))
    d2.backward()
    assert d2.item() / (2 * h) == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(xt.grad.numpy() / (2 * h), grad, rtol=1e-10, atol=1e-14)


def test_torch_gan_takes_the_steps_of_algorithm_1():
    X = np.random.default_rng(5).uniform(-1, 1, (40, 4))
    torch.manual_seed(0)
    G, D = sequential([2, 8, 4], "relu", "tanh"), sequential([4, 8, 1], "leaky_relu")
    gan = TorchGAN(G, D, X, 2, loss="wgan-gp", penalty="rwp", h=0.1, steps=3, batch=8, n_critic=2)
    theta0 = gan.model.theta()
    d0 = [p.detach().clone() for p in D.parameters()]
    st = gan.evaluate(theta0)
    new = gan.advance(st, 1e-2)
    assert gan.g_opt.state[next(iter(G.parameters()))]["step"] == 3
    assert gan.d_opt.state[next(iter(D.parameters()))]["step"] == 2
    assert not np.array_equal(new.p, theta0) and not torch.equal(d0[0], next(iter(D.parameters())))
    # the recorded value: -mean D(G(z)) on the monitoring batch, recomputed
    with torch.no_grad():
        assert new.value == pytest.approx(-D(G(gan.z_monitor)).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match="loss"):
        TorchGAN(G, D, X, 2, loss="hinge")
    with pytest.raises(TypeError, match="FixedStep"):
        solve(gan, theta0, "euclidean", tol=None, max_iter=1)
