r"""Parametric side: push-forward models :math:`x = g_\theta(z)`, losses on samples and
parametric metrics that drive the same solver as the grid side (issue 6, DESIGN.md §4).

* :mod:`densflow.parametric.models`: :class:`Gaussian`, :class:`MLP` (samples, ``jvp``,
  ``vjp``; never a dense Jacobian).
* :mod:`densflow.parametric.losses`: :class:`W2Gaussian`, :class:`MMD`, :class:`Sinkhorn`.
* :mod:`densflow.parametric.metrics`: :class:`Euclidean`, :class:`RWP`, :class:`O1SBE`,
  :class:`O2DiagSBE`, :class:`ExactWasserstein`, :class:`Fisher`.
* :class:`Problem`: model + loss + batch, run by :func:`densflow.solve` with the grid
  solver's Armijo line search (or :class:`densflow.solving.FixedStep`, or
  :class:`TrustRegion`; :func:`fixed_step_path` keeps the iterates of such a run).
* :mod:`densflow.parametric.flows`: MonoFlow particles, the Bures–Wasserstein flow and a
  GAN's Algorithm 1 as problems of the same loop; :mod:`densflow.app.parametric_case`:
  parametric case files for ``densflow run``.
* :mod:`densflow.parametric.torch`: PyTorch modules as models, and the
  :class:`~densflow.parametric.torch.NaturalGradient` optimizer (imported on demand).
"""

from . import losses, metrics, models
from .losses import MMD, W2Gaussian, Sinkhorn
from .models import MLP, Gaussian
from .problem import Problem, TrustRegion, fixed_step_path

__all__ = ["models", "losses", "metrics", "Gaussian", "MLP", "W2Gaussian", "MMD", "Sinkhorn", "Problem",
           "TrustRegion", "fixed_step_path"]
