r"""Parametric metrics: natural-gradient directions :math:`G(\theta)^{-1}\nabla F` (issue 6).

Every metric has ``direction(model, theta, grad, z)`` and solves
:math:`G(\theta)\, s = \nabla F` by conjugate gradients on the product
:math:`v \mapsto G v` (``apply``), built from the model's ``jvp``/``vjp`` only (a dense
Jacobian is never formed), plus ``damping`` :math:`\lambda\ge 0` times the identity
where :math:`G` can be singular. With :math:`J_b = \partial g_\theta(z_b)/\partial\theta`
over the batch :math:`z_1 \dots z_B`:

=========================  ===============================================================================  ================
class                      :math:`G(\theta)`                                                                module
=========================  ===============================================================================  ================
:class:`Euclidean`         :math:`I`                                                                        :mod:`.base`
:class:`RWP`               :math:`\frac1B\sum_b J_b^\top J_b` (relaxed Wasserstein)                         :mod:`.proximal`
:class:`O1SBE`             :math:`\bar J^\top \bar J`, :math:`\bar J = \frac1B\sum_b J_b`                   :mod:`.proximal`
:class:`O2DiagSBE`         :math:`\bar J^\top\bar J + \sum_i c_i c_i^\top/\operatorname{Var}(x_{\cdot i})`  :mod:`.proximal`
:class:`ExactWasserstein`  Wasserstein information matrix of a :class:`Gaussian`                            :mod:`.gaussian`
:class:`Fisher`            Fisher information matrix of a :class:`Gaussian`                                 :mod:`.gaussian`
:class:`KWNG`              kernel estimate of the Wasserstein information matrix (the authors' estimator)   :mod:`.kwng`
:class:`KWNGVariant`       densflow's variant of KWNG (ridge, median bandwidth, another diagonal)           :mod:`.kwng_variant`
:class:`SiNG`              empirical Sinkhorn information matrix :math:`J^\top HJ`                          :mod:`.sing`
=========================  ===============================================================================  ================

Conjugate gradients: :mod:`.cg`. :class:`Adam` (:mod:`.adam`) is Adam's direction as a
plug-in of the same loop (not a metric: it keeps moments between calls).

:math:`\tfrac12 v^\top G v` is the second-order term of the proximal penalty
:math:`\tilde D(\theta, \theta + v)^2/2` of ``seeds/lin2021-wasserstein-proximal-gans.txt``
(§4), so that a proximal step with step size :math:`h` is, to first order, the
natural-gradient step :math:`-h G^{-1}\nabla F`.
"""

from .adam import Adam
from .base import Euclidean, ParametricMetric
from .cg import CGError, conjugate_gradient
from .gaussian import ExactWasserstein, Fisher, gaussian_sim_1d, gaussian_sinkhorn_1d
from .kwng import KWNG
from .kwng_variant import KWNGVariant
from .proximal import O1SBE, RWP, O2DiagSBE
from .sing import SiNG

__all__ = ["ParametricMetric", "Euclidean", "RWP", "O1SBE", "O2DiagSBE", "ExactWasserstein",
           "Fisher", "KWNG", "KWNGVariant", "SiNG", "gaussian_sim_1d", "gaussian_sinkhorn_1d",
           "CGError",
           "conjugate_gradient", "get", "NAMES", "Adam"]


_CLASSES = {cls.name: cls for cls in (Euclidean, RWP, O1SBE, O2DiagSBE, ExactWasserstein,
                                      Fisher, KWNG, KWNGVariant, SiNG, Adam)}
#: Names accepted by :func:`get` (each class with its default settings).
NAMES = tuple(_CLASSES)


def get(metric):
    """A metric object from a name in :data:`NAMES`, a :class:`ParametricMetric` or a
    :class:`KWNG` estimator (returned as they are)."""
    if isinstance(metric, (ParametricMetric, KWNG, Adam)):
        return metric
    if isinstance(metric, str) and metric in _CLASSES:
        return _CLASSES[metric]()
    raise ValueError(f"parametric metric must be one of {NAMES}, a ParametricMetric or a KWNG "
                     f"estimator, got {metric!r}")
