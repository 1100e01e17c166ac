r"""Small numpy GANs with Wasserstein proximal regularisation of the generator.

Algorithm 1 of Lin et al. (2021) (``seeds/lin2021-wasserstein-proximal-gans.txt``): per
outer iteration the discriminator takes one optimiser step, then the generator takes
:math:`\ell` optimiser steps on

.. math:: \frac1B\sum_b F_\omega(g_\theta(z_b)) + \frac{1}{2h}\tilde D(\theta, \theta_k)^2

with :math:`\theta_k` the generator at the start of the outer iteration and the same
latent batch :math:`z_b` in both terms. :math:`\delta_b = g_\theta(z_b) -
g_{\theta_k}(z_b)`, :math:`y_b = g_{\theta_k}(z_b)`:

* RWP: :math:`\tilde D^2 = \frac1B\sum_b |\delta_b|^2` (seed §4.3, relaxed Wasserstein);
* O1-SBE: :math:`\tilde D^2 = |\bar\delta|^2` (order-1 potentials);
* O2Diag-SBE: twice the supremum over diagonal quadratic potentials
  :math:`\Phi(x) = \tfrac12 x^\top Q x + a^\top x` of :math:`\mathbb E[\Phi(x) - \Phi(y)]
  - \tfrac12\mathbb E|\nabla\Phi(y)|^2` (eqs. (8)–(9)), which is, coordinate by
  coordinate, :math:`\ell_i^\top M_i^{-1}\ell_i` with :math:`\ell_i = (\mathbb E\delta_i,
  \tfrac12\mathbb E(x_i^2 - y_i^2))` and :math:`M_i` the moment matrix of :math:`(1, y_i)`:

  .. math::

      \tilde D^2 = \sum_i \Bigl[\bar\delta_i^2 + \frac{\bigl(\operatorname{Cov}(\delta_i, y_i)
          + \tfrac12\mathbb E\,\delta_i^2\bigr)^2}{\operatorname{Var}(y_i)}\Bigr]

  (batch means, biased variances). To second order in :math:`\delta` it is the
  least-squares form of :class:`densflow.parametric.metrics.O2DiagSBE`; coordinates
  with zero sample variance contribute the mean term only.

The GAN loss is the non-saturating one: the discriminator minimises
:math:`-\mathbb E\log\sigma(D(x)) - \mathbb E\log(1-\sigma(D(g(z))))`, the generator
:math:`F_\omega(x) = -\log\sigma(D_\omega(x))`. Optimisers are :class:`Adam`.
"""

import time

import numpy as np

from .models import MLP
from .optimizers import Adam

__all__ = ["Critic", "Adam", "ProximalPenalty", "train_gan"]


class Critic(MLP):
    """An :class:`MLP` discriminator ``D(x)`` (``latent_dim`` = data dimension,
    ``out_dim`` = 1) that also gives gradients with respect to its input."""

    def __init__(self, data_dim, hidden, activation="tanh"):
        super().__init__(data_dim, hidden, 1, activation)

    def input_vjp(self, theta, x, u):
        """:math:`\\partial_x (u \\cdot D(x))` per sample, shape ``(B, data_dim)``."""
        _, ds = self._forward(theta, x)
        ga = np.asarray(u, dtype=float).reshape(-1, 1)
        layers = self.layers(theta)
        for k in range(len(layers) - 1, -1, -1):
            ga = ga @ layers[k][0]
            if k > 0:
                ga = ga * ds[k - 1]
        return ga


class ProximalPenalty:
    """The penalty :math:`\\tilde D(\\theta, \\theta_k)^2/(2h)` on generator samples.

    Parameters
    ----------
    kind : {"rwp", "o1sbe", "o2diagsbe"}
    h : float
        Proximal step (> 0).
    steps : int
        Generator steps :math:`\\ell` per outer iteration.
    """

    KINDS = ("rwp", "o1sbe", "o2diagsbe")

    def __init__(self, kind, h=0.2, steps=5):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if not h > 0:
            raise ValueError(f"h must be > 0, got {h!r}")
        if int(steps) < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.kind, self.h, self.steps = kind, float(h), int(steps)

    def value_and_grad_samples(self, x, y):
        """Penalty and its gradient in the samples ``x`` (``y``: samples at θ_k)."""
        B = x.shape[0]
        delta = x - y
        dbar = delta.mean(axis=0)
        if self.kind == "rwp":
            d2, g = np.mean(np.sum(delta**2, axis=1)), 2 * delta / B
        elif self.kind == "o1sbe":
            d2, g = dbar @ dbar, np.broadcast_to(2 * dbar / B, x.shape)
        else:
            yc = y - y.mean(axis=0)
            var = np.mean(yc * yc, axis=0)
            c = np.mean(yc * delta, axis=0) + 0.5 * np.mean(delta**2, axis=0)
            slope = np.divide(c, var, out=np.zeros_like(c), where=var > 0)
            d2 = dbar @ dbar + slope @ c
            g = 2 * dbar / B + 2 * slope * (yc + delta) / B
        return d2 / (2 * self.h), g / (2 * self.h)


def train_gan(generator, theta, critic, phi, sample_data, rng, n_iter=1000, batch=128, lr=1e-3,
              penalty=None, eval_every=50, evaluate=None, betas=(0.5, 0.999), solve_options=None):
    """Train a GAN; return ``(theta, phi, history)``: :func:`densflow.solve` on
    :class:`densflow.parametric.flows.ProximalGAN` with ``FixedStep(lr)``, one iteration
    per discriminator step (``solve_options``: ``out=`` to record the run, ...).

    Parameters
    ----------
    generator : Model
        Push-forward ``g_θ`` (``sample``, ``vjp``).
    theta, phi : ndarray
        Initial generator and discriminator parameters.
    critic : Critic
    sample_data : callable
        ``sample_data(rng, B)`` returns ``(B, d)`` real samples.
    rng : numpy.random.Generator
    penalty : ProximalPenalty or None
        ``None``: plain Adam, one generator step per outer iteration.
    evaluate : callable or None
        ``evaluate(theta)`` returns a number (e.g. a divergence to the data), called
        every ``eval_every`` iterations and after the last; its time is not counted as
        training time.

    Returns
    -------
    theta, phi : ndarray
    history : dict
        ``iteration``, ``time`` (training seconds) and ``value`` arrays.
    """
    from ..solving import FixedStep, solve
    from .flows import ProximalGAN

    problem = ProximalGAN(generator, critic, phi, sample_data, rng, batch, penalty, lr, betas)
    hist = {"iteration": [], "time": [], "value": []}
    clock = {"t": 0.0, "last": None}

    def record(k, theta_k):
        if evaluate is not None and (k % eval_every == 0 or k == n_iter):
            hist["iteration"].append(k)
            hist["time"].append(clock["t"])
            hist["value"].append(float(evaluate(theta_k)))

    def callback(k, theta_k, value, step, decrement):
        clock["t"] += time.perf_counter() - clock["last"]
        record(k, theta_k)
        clock["last"] = time.perf_counter()
        return False

    record(0, np.asarray(theta, dtype=float))
    clock["last"] = time.perf_counter()
    result = solve(problem, theta, "euclidean", tol=None, max_iter=n_iter,
                   line_search=FixedStep(lr), callback=callback, **(solve_options or {}))
    return result.p, problem.phi, {key: np.asarray(v) for key, v in hist.items()}
