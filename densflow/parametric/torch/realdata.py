r"""PyTorch pieces of the real-data cases (digits, breast cancer): a digits classifier
whose features define a "digits FID", a cross-entropy loss for classifiers run by
:func:`densflow.solve`, a norm-clipped direction, and Algorithm 1 of Lin et al. (2021)
with torch networks and two GAN losses.

* :class:`DigitsClassifier`: an MLP on 64 pixels, trained with Adam; its penultimate
  activations are the features of :meth:`DigitsClassifier.fid`.
* :class:`LabelledInputs` and :class:`CrossEntropy`: a classifier as a
  :class:`~densflow.parametric.torch.TorchModel` whose latent points are data rows with
  their one-hot labels appended, and the loss that reads the labels from them.
* :class:`ClippedDirection`: a direction rule rescaled to norm at most ``max_norm``.
* :class:`TorchGAN`: one outer iteration of Algorithm 1 per step of :func:`densflow.solve`
  (non-saturating or WGAN-GP loss, with or without a proximal penalty).
"""

import numbers

import numpy as np
import torch
import torch.nn.functional as F

from ...core.state import State
from ..data import FrechetReference
from ..flows import _FlowProblem
from ..metrics import ParametricMetric
from ..metrics import get as metrics_get
from ._model import TorchModel

__all__ = ["sequential", "DigitsClassifier", "LabelledInputs", "CrossEntropy", "ClippedDirection",
           "TorchGAN", "proximal_penalty"]


def sequential(sizes, activation="relu", output=None, dtype=torch.float32):
    """``nn.Sequential`` of ``nn.Linear`` layers of ``sizes`` with ``activation``
    ("relu", "leaky_relu" (slope 0.2) or "tanh") between them and ``output`` ("tanh" or
    ``None``) after the last."""
    acts = {"relu": lambda: torch.nn.ReLU(), "leaky_relu": lambda: torch.nn.LeakyReLU(0.2),
            "tanh": lambda: torch.nn.Tanh()}
    if activation not in acts or output not in (None, "tanh"):
        raise ValueError(f"activation must be one of {tuple(acts)} and output None or 'tanh', "
                         f"got {activation!r}, {output!r}")
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(int(a), int(b), dtype=dtype))
        if k < len(sizes) - 2:
            layers.append(acts[activation]())
    if output == "tanh":
        layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


class DigitsClassifier:
    """An MLP classifier of 8 × 8 digits (64 inputs, 10 classes), float32.

    Parameters
    ----------
    hidden : tuple of int
        Hidden widths; the last one is the feature dimension.
    seed : int
        Seed of the initialisation and of the training batches.
    """

    def __init__(self, hidden=(128, 64), seed=0):
        torch.manual_seed(seed)
        self.net = sequential([64, *hidden, 10], "relu")
        self.seed = seed

    def fit(self, X, y, steps=600, lr=1e-3, batch=128):
        """Adam on the cross-entropy of mini-batches of ``(X, y)``; returns ``self``."""
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        y = torch.as_tensor(np.asarray(y), dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        for _ in range(int(steps)):
            idx = torch.randint(0, X.shape[0], (batch,), generator=gen)
            loss = F.cross_entropy(self.net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def logits(self, X):
        """The classifier's outputs for the rows of ``X``, shape ``(n, 10)``."""
        return self.net(torch.as_tensor(np.asarray(X), dtype=torch.float32)).double().numpy()

    @torch.no_grad()
    def features(self, X):
        """The activations of the last hidden layer, shape ``(n, hidden[-1])``."""
        h = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        for layer in list(self.net)[:-1]:
            h = layer(h)
        return h.double().numpy()

    def accuracy(self, X, y):
        """The fraction of rows of ``X`` whose predicted class is ``y``."""
        return float(np.mean(np.argmax(self.logits(X), axis=1) == np.asarray(y)))

    def fid(self, reference):
        r"""A callable ``fid(pixels)``: the Fréchet distance between the Gaussians fitted to
        the features of ``pixels`` and of ``reference``
        (:class:`~densflow.parametric.data.FrechetReference`), the FID of Heusel et al.
        with this classifier in place of Inception-v3."""
        ref = FrechetReference(self.features(reference))
        return lambda pixels: ref(self.features(pixels))


class LabelledInputs(torch.nn.Module):
    r"""``net`` applied to the first ``n_inputs`` columns of its input (the other columns
    carry one-hot labels for :class:`CrossEntropy`), its outputs multiplied by the fixed
    diagonal ``scale``: :math:`z = [x, e_y] \mapsto U\,\mathrm{net}(x)`.

    ``scale`` (a buffer, not a parameter) gives the ill-conditioned parametrisation of
    Arbel et al. (2020): the logits rescaled by a diagonal :math:`U` with condition
    number :math:`\max U/\min U`.
    """

    def __init__(self, net, n_inputs, scale=None):
        super().__init__()
        self.net, self.n_inputs = net, int(n_inputs)
        dtype = next(net.parameters()).dtype
        out = next(m for m in reversed(list(net.modules())) if isinstance(m, torch.nn.Linear))
        scale = np.ones(out.out_features) if scale is None else np.asarray(scale, dtype=float)
        if scale.shape != (out.out_features,) or not np.all(scale > 0):
            raise ValueError(f"scale must hold {out.out_features} positive numbers")
        self.register_buffer("scale", torch.as_tensor(scale, dtype=dtype))

    def forward(self, z):
        return self.net(z[:, :self.n_inputs]) * self.scale


class CrossEntropy:
    r"""Mean cross-entropy of a classifier whose latent points carry their labels:
    ``z[:, :n_inputs]`` the inputs, ``z[:, n_inputs:]`` one-hot labels (see
    :class:`LabelledInputs`). With logits :math:`x_b = g_\theta(z_b)`,

    .. math:: L = -\frac1B\sum_b \log\operatorname{softmax}(x_b)_{y_b}, \qquad
              \nabla_{x_b} L = \frac1B(\operatorname{softmax}(x_b) - e_{y_b}),

    pulled back with ``model.vjp``.
    """

    name = "cross_entropy"

    def __init__(self, n_inputs):
        self.n_inputs = int(n_inputs)

    def value_and_grad(self, model, theta, z):
        """``(L, dL/dtheta)`` on the batch ``z`` (inputs and one-hot labels)."""
        z = np.asarray(z, dtype=float)
        onehot = z[:, self.n_inputs:]
        x = model.sample(theta, z)
        if onehot.shape != x.shape:
            raise ValueError(f"z must carry {x.shape[1]} one-hot label columns after the "
                             f"{self.n_inputs} inputs, got {onehot.shape[1]}")
        a = x - x.max(axis=1, keepdims=True)
        logsm = a - np.log(np.sum(np.exp(a), axis=1, keepdims=True))
        B = z.shape[0]
        value = -float(np.sum(onehot * logsm)) / B
        if not np.isfinite(value):
            return np.inf, np.full(model.n_params, np.nan)
        return value, model.vjp(theta, z, (np.exp(logsm) - onehot) / B)


class ClippedDirection(ParametricMetric):
    r"""The direction of ``metric`` rescaled to Euclidean norm at most ``max_norm``,
    :math:`s \leftarrow s\,\min(1, c/|s|)` (the clipping of the KWNG authors' optimizer
    wrapper); an adaptive damping (``KWNG(adaptive=True)``) sees the clipped step.
    :attr:`n_clipped` counts the clipped directions."""

    def __init__(self, metric, max_norm=1.0):
        super().__init__()
        if not (isinstance(max_norm, numbers.Real) and np.isfinite(max_norm) and max_norm > 0):
            raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
        self.metric, self.max_norm = metrics_get(metric), float(max_norm)
        self.name = self.metric.name
        self.n_clipped = 0

    def __repr__(self):
        return f"ClippedDirection({self.metric!r}, max_norm={self.max_norm:g})"

    @property
    def adaptive(self):
        return getattr(self.metric, "adaptive", False)

    def update_damping(self, actual, predicted):
        return self.metric.update_damping(actual, predicted)

    def check_model(self, model):
        self.metric.check_model(model)

    def direction(self, model, theta, grad, z=None):
        """The metric's direction, rescaled to norm ``max_norm`` if longer."""
        s = np.asarray(self.metric.direction(model, theta, grad, z), dtype=float)
        norm = float(np.linalg.norm(s))
        if norm > self.max_norm:
            self.n_clipped += 1
            return s * (self.max_norm / norm)
        return s


def proximal_penalty(kind, x, y):
    r""":math:`\tilde D(\theta, \theta_k)^2` of Lin et al. (2021) §4.3 on a batch, in torch:
    ``x`` the samples at :math:`\theta`, ``y`` at :math:`\theta_k` (same latent points),
    :math:`\delta = x - y`; the formulas of
    :class:`densflow.parametric.gan.ProximalPenalty`:

    * ``"rwp"``: :math:`\frac1B\sum_b|\delta_b|^2`;
    * ``"o1sbe"``: :math:`|\bar\delta|^2`;
    * ``"o2diagsbe"``: :math:`\sum_i \bar\delta_i^2 + \bigl(\operatorname{Cov}(\delta_i,
      y_i) + \tfrac12\mathbb E\,\delta_i^2\bigr)^2/\operatorname{Var}(y_i)` (twice the
      supremum over diagonal quadratic potentials; coordinates with zero variance keep
      the mean term only).
    """
    delta = x - y
    dbar = delta.mean(dim=0)
    if kind == "rwp":
        return (delta * delta).sum(dim=1).mean()
    if kind == "o1sbe":
        return (dbar * dbar).sum()
    if kind == "o2diagsbe":
        yc = y - y.mean(dim=0)
        var = (yc * yc).mean(dim=0)
        c = (yc * delta).mean(dim=0) + 0.5 * (delta * delta).mean(dim=0)
        slope = torch.where(var > 0, c / torch.where(var > 0, var, torch.ones_like(var)), torch.zeros_like(c))
        return (dbar * dbar).sum() + (slope * c).sum()
    raise ValueError(f"penalty must be 'rwp', 'o1sbe' or 'o2diagsbe', got {kind!r}")


class TorchGAN(_FlowProblem):
    r"""Algorithm 1 of Lin et al. (2021) with torch networks, as a problem of
    :func:`densflow.solve` (``metric="euclidean"``, ``FixedStep(lr)``; the state is the
    generator's flat parameters). One step is one outer iteration:

    1. ``n_critic`` discriminator steps of Adam on the discriminator loss;
    2. ``steps`` generator steps of Adam, each on a fresh latent batch :math:`z_b`, on
       :math:`F_\omega(\theta) + \tilde D(\theta, \theta_k)^2/(2h)`,
       :math:`\tilde D` compared with the generator :math:`\theta_k` of the start of
       the outer iteration on the same :math:`z_b` (:func:`proximal_penalty`); without a
       penalty, one step on :math:`F_\omega`.

    Losses: ``"ns"``, non-saturating, the discriminator minimising
    :math:`\mathbb E\,\mathrm{softplus}(-D(x)) + \mathbb E\,\mathrm{softplus}(D(g(z)))` and
    :math:`F_\omega = \mathbb E\,\mathrm{softplus}(-D(g(z)))`; ``"wgan-gp"``, the critic
    minimising :math:`\mathbb E D(g(z)) - \mathbb E D(x) + \lambda\,\mathbb E(|\nabla D(\hat x)|
    - 1)^2` on random interpolates :math:`\hat x`, and :math:`F_\omega = -\mathbb E D(g(z))`.
    Both optimisers use the step's learning rate. The recorded value is
    :math:`F_\omega` on a fixed monitoring batch (wrap the problem in
    :class:`~densflow.parametric.data.Monitored` to record e.g. an FID instead).

    Parameters
    ----------
    generator, discriminator : torch.nn.Module
        ``(B, latent_dim) -> (B, d)`` and ``(B, d) -> (B, 1)``.
    data : array_like, shape (n, d)
        The real samples.
    latent_dim : int
    loss : {"ns", "wgan-gp"}
    penalty : {None, "rwp", "o1sbe", "o2diagsbe"}
    h : float
        Proximal step size :math:`h`.
    steps : int
        Generator steps :math:`\ell` per outer iteration with a penalty.
    batch, n_critic, gp_weight, betas : int, int, float, (float, float)
    seed : int
        Seed of the batches (real rows, latent points, interpolation weights).
    """

    def __init__(self, generator, discriminator, data, latent_dim, loss="ns", penalty=None, h=0.2,
                 steps=5, batch=64, n_critic=1, gp_weight=10.0, betas=(0.5, 0.999), seed=0,
                 monitor_batch=64):
        if loss not in ("ns", "wgan-gp"):
            raise ValueError(f"loss must be 'ns' or 'wgan-gp', got {loss!r}")
        if penalty not in (None, "rwp", "o1sbe", "o2diagsbe"):
            raise ValueError(f"penalty must be None, 'rwp', 'o1sbe' or 'o2diagsbe', got {penalty!r}")
        if not (isinstance(h, numbers.Real) and h > 0):
            raise ValueError(f"h must be a number > 0, got {h!r}")
        for name, v in (("steps", steps), ("batch", batch), ("n_critic", n_critic)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.G, self.D = generator, discriminator
        self.model = TorchModel(generator, int(latent_dim))
        self.dtype = self.model.dtype
        self.data = torch.as_tensor(np.asarray(data, dtype=float), dtype=self.dtype)
        if self.data.ndim != 2 or self.data.shape[1] != self.model.out_dim:
            raise ValueError(f"data must have shape (n, {self.model.out_dim}), got {tuple(self.data.shape)}")
        self.latent_dim, self.loss, self.penalty = int(latent_dim), loss, penalty
        self.h, self.steps, self.batch, self.n_critic = float(h), int(steps), int(batch), int(n_critic)
        self.gp_weight, self.betas, self.seed = float(gp_weight), tuple(betas), seed
        self.gen = torch.Generator().manual_seed(int(seed))
        self.z_monitor = torch.randn(int(monitor_batch), self.latent_dim, dtype=self.dtype,
                                     generator=torch.Generator().manual_seed(2 ** 31 - 1))
        self.g_opt = self.d_opt = None
        self._lr = None

    def describe(self):
        """Text and numbers that identify the problem in a run file."""
        return {"generator": repr(self.model), "discriminator": type(self.D).__name__,
                "loss": self.loss, "penalty": str(self.penalty),
                "h": self.h, "steps": self.steps, "batch": self.batch, "n_critic": self.n_critic,
                "betas": np.array(self.betas), "seed": int(self.seed)}

    def check_start(self, theta0):
        """``theta0`` (the generator's flat parameters) checked and copied."""
        return self.model.check_theta(theta0, "theta0").copy()

    def _generator_loss(self, x):
        out = self.D(x)
        return F.softplus(-out).mean() if self.loss == "ns" else -out.mean()

    def evaluate(self, theta):
        """:math:`F_\\omega` on the monitoring batch and its gradient in ``theta``."""
        self.model.load(theta)
        params = list(self.G.parameters())
        self.D.requires_grad_(False)
        try:
            value = self._generator_loss(self.G(self.z_monitor))
            grads = torch.autograd.grad(value, params)
        finally:
            self.D.requires_grad_(True)
        flat = torch.cat([g.reshape(-1) for g in grads]).double().numpy()
        return State(np.asarray(theta, dtype=float), float(value.detach()), flat, parts=None)

    def _randn(self, *shape):
        return torch.randn(*shape, dtype=self.dtype, generator=self.gen)

    def _real(self):
        return self.data[torch.randint(0, self.data.shape[0], (self.batch,), generator=self.gen)]

    def _discriminator_step(self):
        real = self._real()
        with torch.no_grad():
            fake = self.G(self._randn(self.batch, self.latent_dim))
        if self.loss == "ns":
            loss = F.softplus(-self.D(real)).mean() + F.softplus(self.D(fake)).mean()
        else:
            a = torch.rand(self.batch, 1, dtype=self.dtype, generator=self.gen)
            xh = (a * real + (1 - a) * fake).requires_grad_(True)
            g, = torch.autograd.grad(self.D(xh).sum(), xh, create_graph=True)
            gp = ((g.norm(dim=1) - 1.0) ** 2).mean()
            loss = self.D(fake).mean() - self.D(real).mean() + self.gp_weight * gp
        self.d_opt.zero_grad()
        loss.backward()
        self.d_opt.step()

    def advance(self, state, lr):
        """One outer iteration of Algorithm 1 from ``state`` with learning rate ``lr``."""
        if self.g_opt is None or self._lr != lr:
            self.g_opt = torch.optim.Adam(self.G.parameters(), lr=lr, betas=self.betas)
            self.d_opt = torch.optim.Adam(self.D.parameters(), lr=lr, betas=self.betas)
            self._lr = lr
        self.model.load(state.p)
        for _ in range(self.n_critic):
            self._discriminator_step()
        theta_k = None
        if self.penalty is not None:
            theta_k = self.model._split(self.model._theta_tensor(state.p))
        self.D.requires_grad_(False)          # generator steps: no gradients of D's weights
        try:
            for _ in range(self.steps if self.penalty is not None else 1):
                z = self._randn(self.batch, self.latent_dim)
                x = self.G(z)
                loss = self._generator_loss(x)
                if theta_k is not None:
                    with torch.no_grad():
                        y = torch.func.functional_call(self.G, theta_k, (z,))
                    loss = loss + proximal_penalty(self.penalty, x, y) / (2 * self.h)
                self.g_opt.zero_grad()
                loss.backward()
                self.g_opt.step()
        finally:
            self.D.requires_grad_(True)
        return self.evaluate(self.model.theta())
