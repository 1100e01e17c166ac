r"""PyTorch modules as densflow models, and a natural-gradient ``torch.optim.Optimizer``
(issue 16; needs PyTorch ≥ 2.2: ``pip install 'densflow[torch]'``).

* :class:`TorchModel` wraps a ``torch.nn.Module`` that maps latent samples to samples
  (:math:`x = g_\theta(z)`) into densflow's model interface: ``sample``, ``jvp`` and
  ``vjp`` through ``torch.func``, the parameters flattened into one vector ``theta``
  (in ``module.parameters()`` order, each tensor row-major), float64 on request. Every
  parametric metric and loss, :class:`densflow.parametric.Problem` and
  :func:`densflow.solve` take it as they take the numpy models.
* :class:`NaturalGradient` preconditions the gradient of any loss with a parametric
  metric inside an ordinary PyTorch training loop.
* :class:`GaussianModule`: the Gaussian push-forward :math:`x = m + Az` as a module with
  the layout of :class:`densflow.parametric.Gaussian`, so that the exact Gaussian metrics
  (``ExactWasserstein``, ``Fisher``) apply to it; :func:`mlp` builds an ``nn.Sequential``
  with the layout of :class:`densflow.parametric.MLP`.
"""

from ._model import GaussianModule, TorchModel, mlp
from ._optim import NaturalGradient

__all__ = ["TorchModel", "NaturalGradient", "GaussianModule", "mlp"]
