r"""The base class of the parametric metrics (a product :math:`v\mapsto G(\theta)v` from
the model's ``jvp``/``vjp``, inverted by conjugate gradients) and :class:`Euclidean`."""

import numbers

import numpy as np

from ..models import Gaussian
from .cg import conjugate_gradient

__all__ = ["ParametricMetric", "Euclidean"]


#: Unit roundoff of float64, the precision of the numpy models.
EPS64 = float(np.finfo(float).eps)
#: A CG solve's relative residual is never asked below this many unit roundoffs of the
#: model's arithmetic (see :meth:`ParametricMetric.effective_rtol`).
RTOL_PER_EPS = 1e4


def _nonneg(value, name):
    if not (isinstance(value, numbers.Real) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class ParametricMetric:
    r"""Base class: :math:`G(\theta) + \lambda I` applied by ``apply`` and inverted by CG.

    Parameters
    ----------
    damping : float
        :math:`\lambda \ge 0` added to :math:`G`.
    rtol : float
        Relative residual of the CG solve.
    max_iter : int or None
        CG iteration cap (default ``10 n + 50`` for ``n`` parameters).
    """

    name = None
    #: Whether the metric is defined only for :class:`Gaussian` models.
    gaussian_only = False

    def __init__(self, damping=0.0, rtol=1e-10, max_iter=None):
        self.damping = _nonneg(damping, "damping")
        if not (isinstance(rtol, numbers.Real) and 0 < rtol < 1):
            raise ValueError(f"rtol must lie strictly between 0 and 1, got {rtol!r}")
        self.rtol = float(rtol)
        if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral)
                                     or max_iter < 1):
            raise ValueError(f"max_iter must be an integer >= 1 or None, got {max_iter!r}")
        self.max_iter = max_iter

    def __repr__(self):
        return f"{type(self).__name__}(damping={self.damping:g})"

    def check_model(self, model):
        self._model(model)

    def _model(self, model):
        """``model``, or for a Gaussian-only metric the :class:`Gaussian` it is (a
        ``TorchModel`` of a ``GaussianModule`` carries one as ``model.gaussian``)."""
        if not self.gaussian_only:
            return model
        gaussian = model if isinstance(model, Gaussian) else getattr(model, "gaussian", None)
        if not isinstance(gaussian, Gaussian):
            raise ValueError(f"the {self.name} metric is defined for Gaussian models only, "
                             f"got {model!r}")
        return gaussian

    def _apply(self, model, theta, z, v):
        raise NotImplementedError

    def apply(self, model, theta, z, v):
        """:math:`(G(\\theta) + \\lambda I) v`."""
        out = self._apply(self._model(model), theta, z, np.asarray(v, dtype=float))
        return out + self.damping * v if self.damping else out

    def matrix(self, model, theta, z=None):
        """Dense :math:`G + \\lambda I` by applying it to the unit vectors (tests, small models)."""
        self.check_model(model)
        n = model.n_params
        return np.column_stack([self.apply(model, theta, z, e) for e in np.eye(n)])

    def direction(self, model, theta, grad, z=None):
        """:math:`(G(\\theta) + \\lambda I)^{-1}` ``grad`` by conjugate gradients."""
        self.check_model(model)
        return conjugate_gradient(lambda v: self.apply(model, theta, z, v), grad,
                                  rtol=self.effective_rtol(model), max_iter=self.max_iter,
                                  name=self.name)

    def effective_rtol(self, model):
        """The CG tolerance on ``model``: ``rtol``, but never below
        :data:`RTOL_PER_EPS` times the unit roundoff of the model's arithmetic
        (``model.precision``: 1.2e-7 * 1e4 = 1.2e-3 for float32 torch modules, 2.2e-12
        for float64, which leaves the default 1e-10 as it is). The products of a float32
        model carry rounding of 1e-7 of their size; CG cannot go below it."""
        return max(self.rtol, RTOL_PER_EPS * float(getattr(model, "precision", EPS64)))


class Euclidean(ParametricMetric):
    """:math:`G = I`: plain gradient descent (``direction`` returns ``grad``)."""

    name = "euclidean"

    def __init__(self):
        super().__init__()

    def _apply(self, model, theta, z, v):
        return v.copy()

    def direction(self, model, theta, grad, z=None):
        return np.array(grad, dtype=float)
