r"""Push-forward models :math:`x = g_\theta(z)`, :math:`z \sim N(0, I)` (issue 6).

A model never forms a dense Jacobian. With a batch of latent points ``z`` of shape
``(B, k)`` it gives

* ``sample(theta, z)``: the samples :math:`x_b = g_\theta(z_b)`, shape ``(B, d)``;
* ``jvp(theta, z, v)``: :math:`J_b v` for every :math:`b`, shape ``(B, d)``, where
  :math:`J_b = \partial g_\theta(z_b)/\partial\theta`;
* ``vjp(theta, z, u)``: :math:`\sum_b J_b^\top u_b`, the shape of ``theta`` (a *sum*
  over the batch, so :math:`u\cdot\mathrm{jvp}(v) = \mathrm{vjp}(u)\cdot v`).

``theta`` is always a flat 1D float array; each model documents its layout.
"""

import numbers

import numpy as np

from ..core.validation import as_real_array

__all__ = ["Model", "Gaussian", "MLP", "PARAMETRIZATIONS", "ACTIVATIONS"]

PARAMETRIZATIONS = ("mean", "diag", "logdiag", "cholesky", "full")
ACTIVATIONS = ("tanh", "relu", "softplus")


def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Model:
    """Base class: checks of ``theta`` and ``z`` shared by the models."""

    #: Dimension of the latent variable ``z``.
    latent_dim = None
    #: Dimension of a sample ``x``.
    out_dim = None
    #: Unit roundoff of the model's arithmetic (float64 here; a float32 torch module's
    #: is 1.2e-7): the metrics' CG tolerances follow it.
    precision = float(np.finfo(float).eps)

    @property
    def n_params(self):
        """Number of entries of ``theta``."""
        raise NotImplementedError

    def check_theta(self, theta, name="theta"):
        """Return ``theta`` as a float array after checking its shape and finiteness."""
        arr = as_real_array(theta, name)
        if arr.shape != (self.n_params,):
            raise ValueError(f"{name} must be a flat array of {self.n_params} parameters, "
                             f"got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        return arr

    def check_z(self, z, name="z"):
        """Return ``z`` as a float array of shape ``(B, latent_dim)``."""
        arr = np.asarray(z, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != self.latent_dim or arr.shape[0] < 1:
            raise ValueError(f"{name} must have shape (B, {self.latent_dim}) with B >= 1, "
                             f"got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite: the latent batch holds "
                             f"{np.count_nonzero(~np.isfinite(arr))} NaN or inf entries")
        return arr

    def latent(self, rng, batch_size):
        """Draw ``batch_size`` latent points :math:`z \\sim N(0, I)` from ``rng``."""
        batch_size = _check_int(batch_size, "batch_size")
        return np.random.default_rng(rng).standard_normal((batch_size, self.latent_dim))


class Gaussian(Model):
    r"""Gaussian push-forward :math:`x = m + A(\theta) z` in ``dim`` dimensions.

    Parameters
    ----------
    dim : int
        Dimension :math:`d` of ``x`` and ``z``.
    parametrization : str
        The layout of ``theta`` (all blocks of length :math:`d` except ``L``):

        ``"mean"``
            :math:`\theta = m`, :math:`x = m + z` (unit covariance).
        ``"diag"``
            :math:`\theta = [m, s]`, :math:`x = m + \operatorname{diag}(s) z`,
            law :math:`N(m, \operatorname{diag}(s^2))`.
        ``"logdiag"``
            :math:`\theta = [m, \ell]`, :math:`x = m + \operatorname{diag}(e^{\ell}) z`.
        ``"cholesky"``
            :math:`\theta = [m, \operatorname{vech} L]`, :math:`x = m + L z`, with the
            :math:`d(d+1)/2` lower-triangular entries of :math:`L` in row-major order
            (``numpy.tril_indices(d)``); law :math:`N(m, LL^\top)`.
        ``"full"``
            :math:`\theta = [m, \operatorname{vec} S]`, :math:`x = m + Sz` with a full
            square :math:`S` (row-major), law :math:`N(m, SS^\top)`: the variational family
            of :func:`densflow.parametric.vi.gaussian_vi` (rotations :math:`S\to SQ` leave
            the law unchanged, so the exact information matrices are singular here).
    """

    def __init__(self, dim, parametrization="diag"):
        self.dim = _check_int(dim, "dim")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, "
                             f"got {parametrization!r}")
        self.parametrization = parametrization
        self.latent_dim = self.out_dim = self.dim
        self._tril = np.tril_indices(self.dim)

    def __repr__(self):
        return f"Gaussian(dim={self.dim}, parametrization={self.parametrization!r})"

    @property
    def n_params(self):
        d = self.dim
        return {"mean": d, "diag": 2 * d, "logdiag": 2 * d,
                "cholesky": d + d * (d + 1) // 2, "full": d + d * d}[self.parametrization]

    # layout ------------------------------------------------------------------------
    def pack(self, mean, scale=None):
        """``theta`` from a mean and the scale block (``s``, ``ℓ`` or the matrix ``L``)."""
        mean = np.asarray(mean, dtype=float).reshape(self.dim)
        if self.parametrization == "mean":
            return mean.copy()
        if self.parametrization == "cholesky":
            L = np.asarray(scale, dtype=float).reshape(self.dim, self.dim)
            return np.concatenate([mean, L[self._tril]])
        if self.parametrization == "full":
            return np.concatenate([mean, np.asarray(scale, dtype=float).reshape(self.dim * self.dim)])
        return np.concatenate([mean, np.asarray(scale, dtype=float).reshape(self.dim)])

    def factor(self, theta):
        """The matrix :math:`A(\\theta)` with :math:`x = m + A z`."""
        d, t = self.dim, np.asarray(theta, dtype=float)
        if self.parametrization == "mean":
            return np.eye(d)
        if self.parametrization == "diag":
            return np.diag(t[d:])
        if self.parametrization == "logdiag":
            return np.diag(np.exp(t[d:]))
        if self.parametrization == "full":
            return t[d:].reshape(d, d).copy()
        L = np.zeros((d, d))
        L[self._tril] = t[d:]
        return L

    def moments(self, theta):
        """Mean :math:`m` and covariance :math:`\\Sigma = A A^\\top` of the model's law."""
        t = np.asarray(theta, dtype=float)
        A = self.factor(t)
        return t[:self.dim].copy(), A @ A.T

    def tangent(self, theta, v):
        r"""``(dm, dA)``: the change of :math:`m` and :math:`A` along ``v``."""
        d, v = self.dim, np.asarray(v, dtype=float)
        if self.parametrization == "mean":
            return v.copy(), np.zeros((d, d))
        if self.parametrization == "diag":
            return v[:d].copy(), np.diag(v[d:])
        if self.parametrization == "logdiag":
            return v[:d].copy(), np.diag(np.exp(np.asarray(theta, dtype=float)[d:]) * v[d:])
        if self.parametrization == "full":
            return v[:d].copy(), v[d:].reshape(d, d).copy()
        dA = np.zeros((d, d))
        dA[self._tril] = v[d:]
        return v[:d].copy(), dA

    def cotangent(self, theta, gm, gA):
        r"""Pull back :math:`(\partial f/\partial m, \partial f/\partial A)` to ``theta``
        (the adjoint of :meth:`tangent`)."""
        d = self.dim
        gm = np.asarray(gm, dtype=float)
        if self.parametrization == "mean":
            return gm.copy()
        if self.parametrization == "diag":
            return np.concatenate([gm, np.diag(gA)])
        if self.parametrization == "logdiag":
            return np.concatenate([gm, np.exp(np.asarray(theta, dtype=float)[d:]) * np.diag(gA)])
        if self.parametrization == "full":
            return np.concatenate([gm, np.asarray(gA, dtype=float).reshape(d * d)])
        return np.concatenate([gm, np.asarray(gA)[self._tril]])

    def pullback_covariance(self, theta, gm, gS):
        r"""Gradient in ``theta`` of :math:`f(m, \Sigma)` from :math:`\partial f/\partial m`
        and the symmetric :math:`\partial f/\partial\Sigma`
        (:math:`d\Sigma = dA\,A^\top + A\,dA^\top` gives :math:`\partial f/\partial A = 2 G_\Sigma A`)."""
        gS = np.asarray(gS, dtype=float)
        gA = (gS + gS.T) @ self.factor(theta)
        if self.parametrization == "mean":
            gA = np.zeros_like(gA)
        return self.cotangent(theta, gm, gA)

    # samples and Jacobian products ---------------------------------------------------
    def sample(self, theta, z):
        """Samples :math:`x_b = m + A z_b`, shape ``(B, dim)``."""
        t = np.asarray(theta, dtype=float)
        return t[:self.dim] + z @ self.factor(t).T

    def jvp(self, theta, z, v):
        """:math:`J_b v = dm + dA\\, z_b` for every ``b``, shape ``(B, dim)``."""
        dm, dA = self.tangent(theta, v)
        return dm + z @ dA.T

    def vjp(self, theta, z, u):
        r""":math:`\sum_b J_b^\top u_b`: ``cotangent`` of :math:`(\sum_b u_b, \sum_b u_b z_b^\top)`."""
        u = np.asarray(u, dtype=float)
        return self.cotangent(theta, u.sum(axis=0), u.T @ z)

    def logpdf(self, theta, x):
        """Log-density of the model's law at the rows of ``x`` (needs a regular :math:`\\Sigma`)."""
        m, S = self.moments(theta)
        r = np.atleast_2d(x) - m
        sign, logdet = np.linalg.slogdet(S)
        sol = np.linalg.solve(S, r.T).T
        return -0.5 * (np.sum(r * sol, axis=1) + logdet + self.dim * np.log(2 * np.pi))


def _act(name, a):
    if name == "tanh":
        h = np.tanh(a)
        return h, 1.0 - h * h
    if name == "relu":
        return np.maximum(a, 0.0), (a > 0).astype(float)
    # softplus(a) = log(1 + e^a), derivative the logistic sigmoid
    return np.logaddexp(0.0, a), 0.5 * (1.0 + np.tanh(0.5 * a))


class MLP(Model):
    r"""Fully connected network :math:`g_\theta(z)` in numpy.

    :math:`h_0 = z`, :math:`a_k = W_k h_{k-1} + b_k`, :math:`h_k = \sigma(a_k)` for the
    hidden layers, and a linear last layer :math:`x = W_K h_{K-1} + b_K`.

    Parameters
    ----------
    latent_dim : int
        Dimension of ``z``.
    hidden : sequence of int
        Widths of the hidden layers (may be empty: an affine map).
    out_dim : int
        Dimension of ``x``.
    activation : {"tanh", "relu", "softplus"}
        :math:`\sigma`.

    Notes
    -----
    ``theta`` concatenates, layer by layer, ``W_k.ravel()`` (shape ``(n_k, n_{k-1})``,
    row-major) and then ``b_k``. ``jvp`` is forward-mode, ``vjp`` reverse-mode
    differentiation, both hand-written.
    """

    def __init__(self, latent_dim, hidden, out_dim, activation="tanh"):
        self.latent_dim = _check_int(latent_dim, "latent_dim")
        self.out_dim = _check_int(out_dim, "out_dim")
        self.hidden = tuple(_check_int(h, "each hidden width") for h in hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.activation = activation
        sizes = (self.latent_dim,) + self.hidden + (self.out_dim,)
        self._shapes, offset = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            w = slice(offset, offset + n_out * n_in)
            b = slice(w.stop, w.stop + n_out)
            self._shapes.append((n_out, n_in, w, b))
            offset = b.stop
        self._n = offset

    def __repr__(self):
        return (f"MLP(latent_dim={self.latent_dim}, hidden={list(self.hidden)}, "
                f"out_dim={self.out_dim}, activation={self.activation!r})")

    @property
    def n_params(self):
        return self._n

    def layers(self, theta):
        """List of ``(W_k, b_k)`` views into ``theta``."""
        t = np.asarray(theta, dtype=float)
        return [(t[w].reshape(n_out, n_in), t[b]) for n_out, n_in, w, b in self._shapes]

    def init(self, rng=None, bias_scale=0.0):
        r"""Initial ``theta``: :math:`W_k \sim N(0, 1/n_{k-1})`, :math:`b_k \sim N(0, \text{bias\_scale}^2)`."""
        rng = np.random.default_rng(rng)
        theta = np.empty(self._n)
        for n_out, n_in, w, b in self._shapes:
            theta[w] = rng.standard_normal(n_out * n_in) / np.sqrt(n_in)
            theta[b] = bias_scale * rng.standard_normal(n_out)
        return theta

    def _forward(self, theta, z):
        hs, ds = [np.asarray(z, dtype=float)], []
        layers = self.layers(theta)
        for k, (W, b) in enumerate(layers):
            a = hs[-1] @ W.T + b
            if k == len(layers) - 1:
                hs.append(a)
            else:
                h, dh = _act(self.activation, a)
                hs.append(h)
                ds.append(dh)
        return hs, ds

    def sample(self, theta, z):
        return self._forward(theta, z)[0][-1]

    def jvp(self, theta, z, v):
        hs, ds = self._forward(theta, z)
        tangent = np.zeros_like(hs[0])
        dlayers = self.layers(v)
        for k, ((W, _), (dW, db)) in enumerate(zip(self.layers(theta), dlayers)):
            da = tangent @ W.T + hs[k] @ dW.T + db
            tangent = da if k == len(dlayers) - 1 else ds[k] * da
        return tangent

    def vjp(self, theta, z, u):
        hs, ds = self._forward(theta, z)
        out = np.empty(self._n)
        ga = np.asarray(u, dtype=float)
        layers = self.layers(theta)
        for k in range(len(layers) - 1, -1, -1):
            W, _ = layers[k]
            _, _, w, b = self._shapes[k]
            out[w] = (ga.T @ hs[k]).ravel()
            out[b] = ga.sum(axis=0)
            if k > 0:
                ga = (ga @ W) * ds[k - 1]
        return out
