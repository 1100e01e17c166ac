r""":class:`TorchModel`: a ``torch.nn.Module`` in densflow's model interface."""

import numbers
import warnings

import numpy as np
import torch
from torch.func import functional_call, jvp, vjp

from ..models import ACTIVATIONS, Gaussian, Model

__all__ = ["TorchModel", "GaussianModule", "mlp"]

with warnings.catch_warnings():
    # torch.func.jvp's first call scripts a helper with the deprecated torch.jit.script
    # (torch's own use); warm it up once here, quietly. The warning is a
    # DeprecationWarning in some releases of torch and a FutureWarning in others.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=Warning)
    jvp(lambda t: 2.0 * t, (torch.zeros(1),), (torch.ones(1),))

_DTYPES = {None: None, "float64": torch.float64, "float32": torch.float32,
           torch.float64: torch.float64, torch.float32: torch.float32}


class TorchModel(Model):
    r"""A PyTorch module :math:`z \mapsto g_\theta(z)` as a densflow model.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a batch of latent points, a tensor of shape ``(B, latent_dim)``, to samples
        of shape ``(B, ...)`` (flattened to ``(B, out_dim)``).
    latent : int or callable
        The latent dimension (latent points :math:`z \sim N(0, I)`), or a sampler
        ``latent(rng, batch_size)`` returning an array ``(batch_size, latent_dim)`` (a
        data set's rows for a classifier, uniform noise, ...).
    params : iterable of torch.nn.Parameter or None
        The parameters that form ``theta`` (default: every parameter of ``module`` that
        requires a gradient), a subset of ``module.parameters()`` in its order; the
        others stay fixed.
    dtype : torch.dtype, "float64", "float32" or None
        Precision of every evaluation (parameters, buffers and inputs are cast); ``None``
        (default) is the dtype of the module's parameters. Use ``torch.float64`` for
        agreement with the numpy models to rounding level.

    Notes
    -----
    ``theta`` is a float64 numpy vector: the parameters concatenated in module order,
    each flattened row-major (``torch.nn.utils.parameters_to_vector``'s layout). For an
    ``nn.Sequential`` of ``nn.Linear`` layers this is exactly the layout of
    :class:`densflow.parametric.MLP` (weight ``(out, in)``, then bias).

    ``jvp`` is forward-mode (``torch.func.jvp``), ``vjp`` reverse-mode
    (``torch.func.vjp``); the reverse-mode closure of the last ``(theta, z)`` is kept, so
    the repeated products of a conjugate-gradient solve at one iterate pay for one
    forward pass. The module's own parameters are not touched (:meth:`load` writes
    ``theta`` into them); evaluations use ``torch.func.functional_call``.
    """

    def __init__(self, module, latent, params=None, dtype=None):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be torch.float64, torch.float32, 'float64', 'float32' "
                             f"or None, got {dtype!r}")
        self.module = module
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if params is not None:
            wanted = {id(p) for p in params}
            named = [(n, p) for n, p in module.named_parameters() if id(p) in wanted]
            if len(named) != len(wanted):
                raise ValueError("params must be parameters of module")
        if not named:
            raise ValueError("module has no trainable parameters")
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self._n = int(sum(self.sizes))
        self.dtype = _DTYPES[dtype] or named[0][1].dtype
        if callable(latent) and not isinstance(latent, numbers.Integral):
            self._sampler = latent
            probe = np.asarray(latent(np.random.default_rng(0), 2), dtype=float)
            if probe.ndim != 2 or probe.shape[0] != 2:
                raise ValueError(f"latent(rng, 2) must return an array of shape (2, k), "
                                 f"got shape {probe.shape}")
            if not np.all(np.isfinite(probe)):
                raise ValueError("latent(rng, 2) returned NaN or inf entries; the latent "
                                 "sampler must return finite points")
            self.latent_dim = probe.shape[1]
        else:
            if isinstance(latent, bool) or not isinstance(latent, numbers.Integral) or latent < 1:
                raise ValueError(f"latent must be an integer >= 1 (the dimension of z ~ N(0, I)) "
                                 f"or a sampler latent(rng, batch_size), got {latent!r}")
            self._sampler = None
            self.latent_dim = int(latent)
        out = self._call(self._theta_tensor(self.theta()), self._z(np.zeros((2, self.latent_dim))))
        self.out_dim = int(np.prod(out.shape[1:])) if out.ndim > 1 else 1
        self._key = self._vjp_fn = None
        #: The equivalent :class:`~densflow.parametric.Gaussian` of a :class:`GaussianModule`
        #: (all of whose parameters form ``theta``): the exact Gaussian metrics use it.
        self.gaussian = (module.gaussian if isinstance(module, GaussianModule)
                         and len(self.names) == len(list(module.parameters())) else None)

    def __repr__(self):
        return (f"TorchModel({type(self.module).__name__}, latent_dim={self.latent_dim}, "
                f"out_dim={self.out_dim}, n_params={self._n}, dtype={self.dtype})")

    @property
    def n_params(self):
        return self._n

    @property
    def precision(self):
        """Unit roundoff of the evaluations' dtype (float32: 1.2e-7)."""
        return float(torch.finfo(self.dtype).eps)

    # parameters --------------------------------------------------------------------
    def _params(self):
        lookup = dict(self.module.named_parameters())
        return [lookup[n] for n in self.names]

    def theta(self):
        """The module's current parameters as a flat float64 numpy vector."""
        with torch.no_grad():
            return np.concatenate([p.detach().to(torch.float64).reshape(-1).cpu().numpy()
                                   for p in self._params()])

    def load(self, theta):
        """Write ``theta`` into the module's parameters (in their own dtype)."""
        theta = self.check_theta(theta)
        with torch.no_grad():
            offset = 0
            for p, k in zip(self._params(), self.sizes):
                p.copy_(torch.as_tensor(theta[offset:offset + k]).reshape(p.shape).to(p.dtype))
                offset += k

    def latent(self, rng, batch_size):
        """``batch_size`` latent points: :math:`N(0, I)` or the ``latent`` sampler's."""
        if self._sampler is None:
            return super().latent(rng, batch_size)
        return self.check_z(self._sampler(np.random.default_rng(rng), batch_size))

    # evaluation ----------------------------------------------------------------------
    def _theta_tensor(self, theta):
        return torch.as_tensor(np.asarray(theta, dtype=float)).to(self.dtype)

    def _z(self, z):
        return torch.as_tensor(np.asarray(z, dtype=float)).to(self.dtype)

    def _split(self, flat):
        out, offset = {}, 0
        for name, shape, k in zip(self.names, self.shapes, self.sizes):
            out[name] = flat[offset:offset + k].reshape(shape)
            offset += k
        return out

    def _call(self, flat, z):
        state = {n: (b.to(self.dtype) if b.is_floating_point() else b)
                 for n, b in self.module.named_buffers()}
        state.update(self._split(flat))
        out = functional_call(self.module, state, (z,))
        return out.reshape(out.shape[0], -1)

    def _numpy(self, t):
        return t.detach().to(torch.float64).cpu().numpy()

    def _checked(self, theta, z):
        """``theta`` (``(n_params,)``) and ``z`` (``(B, latent_dim)``, finite) checked: a
        wrong shape is a ValueError naming the argument, not torch's error; NaN
        parameters (a diverged run) a FloatingPointError, which a run reports."""
        arr = np.asarray(theta, dtype=float)
        if arr.shape != (self._n,):
            raise ValueError(f"theta must be a flat array of {self._n} parameters, "
                             f"got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise FloatingPointError(f"theta holds {np.count_nonzero(~np.isfinite(arr))} NaN "
                                     "or inf parameters")
        return arr, self.check_z(z)

    def sample(self, theta, z):
        """Samples :math:`g_\\theta(z_b)`, shape ``(B, out_dim)``."""
        theta, z = self._checked(theta, z)
        with torch.no_grad():
            return self._numpy(self._call(self._theta_tensor(theta), self._z(z)))

    def jvp(self, theta, z, v):
        """:math:`J_b v` for every ``b`` (forward mode), shape ``(B, out_dim)``."""
        theta, z = self._checked(theta, z)
        v = np.asarray(v, dtype=float)
        if v.shape != (self._n,):
            raise ValueError(f"v must be a flat array of {self._n} parameters, got shape {v.shape}")
        zt = self._z(z)
        _, tangent = jvp(lambda t: self._call(t, zt), (self._theta_tensor(theta),),
                         (self._theta_tensor(v),))
        return self._numpy(tangent)

    def vjp(self, theta, z, u):
        """:math:`\\sum_b J_b^\\top u_b` (reverse mode), shape ``(n_params,)``."""
        theta, z = self._checked(theta, z)
        if np.size(u) != z.shape[0] * self.out_dim:
            raise ValueError(f"u must have shape ({z.shape[0]}, {self.out_dim}) (one cotangent "
                             f"per sample), got shape {np.shape(u)}")
        key = (theta.tobytes(), z.tobytes(), z.shape)
        if key != self._key:
            zt = self._z(z)
            _, self._vjp_fn = vjp(lambda t: self._call(t, zt), self._theta_tensor(theta))
            self._key = key
        u = torch.as_tensor(np.array(u, dtype=float).reshape(z.shape[0], self.out_dim)).to(self.dtype)
        return self._numpy(self._vjp_fn(u)[0])


class GaussianModule(torch.nn.Module):
    r""":math:`x = m + A(\theta)z` as a module with the parameter layout of
    :class:`densflow.parametric.Gaussian` (parameters ``mean`` and ``scale``: ``s``,
    ``log s``, ``vech L`` or ``vec S``), so that ``TorchModel(GaussianModule(...)).theta()``
    is the numpy model's ``theta`` and the exact Gaussian metrics apply
    (:attr:`TorchModel.gaussian` is set by :class:`TorchModel`).

    Parameters
    ----------
    dim : int
    parametrization : {"mean", "diag", "logdiag", "cholesky", "full"}
    mean, scale : array_like, optional
        Initial values (default zero mean, unit scale).
    dtype : torch.dtype
        Default ``torch.float64``.
    """

    def __init__(self, dim, parametrization="diag", mean=None, scale=None, dtype=torch.float64):
        super().__init__()
        self.gaussian = Gaussian(dim, parametrization)
        d = self.gaussian.dim
        theta = self.gaussian.pack(np.zeros(d) if mean is None else mean,
                                   None if parametrization == "mean" else
                                   (scale if scale is not None else
                                    {"diag": np.ones(d), "logdiag": np.zeros(d)}.get(parametrization, np.eye(d))))
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"GaussianModule mean and scale must be finite, got mean={mean!r}, "
                             f"scale={scale!r}")
        self.mean = torch.nn.Parameter(torch.as_tensor(theta[:d], dtype=dtype))
        if parametrization != "mean":
            self.scale = torch.nn.Parameter(torch.as_tensor(theta[d:], dtype=dtype))
        self.parametrization = parametrization
        self.register_buffer("_tril", torch.as_tensor(np.ravel_multi_index(np.tril_indices(d), (d, d))))

    def factor(self):
        d, par = self.gaussian.dim, self.parametrization
        if par == "mean":
            return torch.eye(d, dtype=self.mean.dtype)
        if par == "diag":
            return torch.diag(self.scale)
        if par == "logdiag":
            return torch.diag(torch.exp(self.scale))
        if par == "full":
            return self.scale.reshape(d, d)
        return torch.zeros(d * d, dtype=self.scale.dtype).index_put((self._tril,), self.scale).reshape(d, d)

    def forward(self, z):
        return self.mean + z @ self.factor().T


def mlp(latent_dim, hidden, out_dim, activation="tanh", dtype=torch.float64):
    """An ``nn.Sequential`` of ``nn.Linear`` layers and activations with the layout of
    :class:`densflow.parametric.MLP` (same ``theta``, same function)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    act = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "softplus": torch.nn.Softplus}[activation]
    for name, v in (("latent_dim", latent_dim), ("out_dim", out_dim)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(hidden, (str, bytes)) or not all(
            isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in hidden):
        raise ValueError(f"hidden must be a list of layer widths, integers >= 1, got {hidden!r}")
    sizes = [latent_dim, *hidden, out_dim]
    layers = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if k < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


