r""":class:`NaturalGradient`: a ``torch.optim.Optimizer`` that preconditions the gradient
with a parametric metric."""

import numbers

import numpy as np
import torch

from .. import metrics as _metrics
from ._model import TorchModel

__all__ = ["NaturalGradient"]


class NaturalGradient(torch.optim.Optimizer):
    r"""Natural-gradient steps :math:`\theta \leftarrow \theta - \eta\,G(\theta)^{-1}\nabla L`
    in an ordinary PyTorch training loop.

    ``loss.backward()`` computes :math:`\nabla L` for any loss (a GAN's generator loss,
    a Sinkhorn or MMD loss in torch, ...); :meth:`step` replaces it by the metric's
    direction at the current parameters and the batch of latent points ``z`` the
    metric is estimated on, exactly as :func:`densflow.solve` does with
    ``line_search=FixedStep(lr)`` (a test checks the iterates agree to rounding).

    Parameters
    ----------
    params : iterable of torch.nn.Parameter
        The parameters to train: ``module.parameters()`` (one parameter group).
    metric : str or ParametricMetric or KWNG
        A name of :data:`densflow.parametric.metrics.NAMES` or a metric object
        (``RWP(damping=1e-3)``, ``SiNG(eps=0.5)``, ...).
    lr : float
        The step :math:`\eta > 0` (ignored when ``radius`` is given).
    module : torch.nn.Module or None
        The map :math:`z\mapsto g_\theta(z)` whose Jacobian the metric uses (the generator);
        default: the module is found from ``model``; one of the two is needed unless the
        metric is ``"euclidean"``.
    model : TorchModel or None
        Instead of ``module``: the densflow view of it (its ``params`` must be ``params``).
    radius : float or None
        A trust-region step instead of ``lr``: :math:`\eta = \sqrt{2r/(\nabla L^\top
        G^{-1}\nabla L)}`, so that :math:`\tfrac12\eta^2\,d^\top Gd = r` — SiNG's
        eq. (11) for ``metric=SiNG(...)`` (Shen et al. 2020).

    Notes
    -----
    The batch: ``step(z=...)`` gives it explicitly (a tensor or array of shape
    ``(B, latent_dim)``); without it the last input the module saw in a forward call
    is used (recorded by a forward pre-hook), i.e. the generator batch of the loss
    just computed. The metric works in float64 numpy; the parameters keep their dtype.
    After each step :attr:`last_direction` and :attr:`last_decrement`
    (:math:`\nabla L^\top G^{-1}\nabla L`) hold what was used.
    """

    def __init__(self, params, metric="rwp", lr=0.1, module=None, model=None, radius=None):
        if radius is None and (isinstance(lr, bool) or not (isinstance(lr, numbers.Real)
                                                            and np.isfinite(lr) and lr > 0)):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if radius is not None and (isinstance(radius, bool) or not (
                isinstance(radius, numbers.Real) and np.isfinite(radius) and radius > 0)):
            raise ValueError(f"radius must be a finite number > 0 or None, got {radius!r}")
        super().__init__(params, {"lr": float(lr) if radius is None else 0.0})
        if len(self.param_groups) != 1:
            raise ValueError("NaturalGradient takes one parameter group")
        self.metric = _metrics.get(metric)
        self.radius = None if radius is None else float(radius)
        group = self.param_groups[0]["params"]
        if model is None and module is not None:
            model = TorchModel(module, _input_dim(module), params=group, dtype=torch.float64)
        if model is not None:
            if not isinstance(model, TorchModel):
                raise TypeError(f"model must be a densflow TorchModel, got {type(model).__name__}")
            if [id(p) for p in model._params()] != [id(p) for p in group]:
                raise ValueError("params must be the parameters of model (TorchModel(module, "
                                 "latent, params=...)) in module order")
        self.model = model
        if model is None and not isinstance(self.metric, _metrics.Euclidean):
            raise ValueError(f"the {self.metric.name} metric needs the module (or model) that "
                             "maps latent points to samples: NaturalGradient(..., module=generator)")
        if model is not None:
            self.metric.check_model(model)
            self._seen = None
            self._hook = model.module.register_forward_pre_hook(self._record)
        self.last_direction, self.last_decrement = None, None

    def _record(self, module, args):
        if args and torch.is_tensor(args[0]):
            self._seen = args[0].detach()

    @torch.no_grad()
    def step(self, closure=None, z=None):
        """One natural-gradient step; ``closure`` (re-evaluating the loss) as for any
        optimizer, ``z`` the batch of the metric (see Notes). Returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self.param_groups[0]["params"]
        grad = np.concatenate([(p.grad if p.grad is not None else torch.zeros_like(p))
                               .detach().to(torch.float64).reshape(-1).cpu().numpy() for p in params])
        if self.model is None:
            theta, zb = None, None
        else:
            theta = self.model.theta()
            zb = self._seen if z is None else z
            if zb is None:
                raise ValueError("no batch for the metric: pass step(z=...) or call the module "
                                 "on a batch before step()")
            zb = self.model.check_z(zb.detach().cpu().numpy() if torch.is_tensor(zb) else zb)
        d = self.metric.direction(self.model, theta, grad, zb)
        dec = float(d @ grad)
        if self.radius is not None:
            eta = np.sqrt(2 * self.radius / dec) if dec > 0 else 0.0
        else:
            eta = self.param_groups[0]["lr"]
        offset = 0
        for p in params:
            k = p.numel()
            p.sub_(torch.as_tensor(eta * d[offset:offset + k]).reshape(p.shape).to(p.dtype))
            offset += k
        self.last_direction, self.last_decrement = d, dec
        return loss


def _input_dim(module):
    """The latent dimension of ``module``: ``in_features`` of its first ``nn.Linear``."""
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            return m.in_features
        if hasattr(m, "gaussian"):
            return m.gaussian.dim
    raise ValueError("cannot tell the latent dimension of module (no nn.Linear in it); "
                     "pass model=TorchModel(module, latent_dim, params=...)")
