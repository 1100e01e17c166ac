r""":class:`Adam` as a direction rule, so that Adam runs in :func:`densflow.solve` (with
``line_search=FixedStep(lr)``) beside the natural-gradient metrics."""


import numpy as np

from ..optimizers import check_adam

__all__ = ["Adam"]


class Adam:
    r"""Adam's direction (Kingma & Ba 2015): with :math:`m \leftarrow \beta_1 m + (1-\beta_1)g`,
    :math:`v \leftarrow \beta_2 v + (1-\beta_2)g^2` and bias corrections,
    :math:`s = \hat m/(\sqrt{\hat v} + \epsilon)`; the step ``FixedStep(lr)`` makes
    :math:`\theta \leftarrow \theta - \text{lr}\,s`. Stateful: one call per iteration
    (use a new object per run). Needs nothing of the model.
    """

    name = "adam"

    def __init__(self, beta1=0.9, beta2=0.999, eps=1e-8):
        check_adam(beta1, beta2, eps)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = self.v = None
        self.t = 0

    def __repr__(self):
        return f"Adam(beta1={self.beta1:g}, beta2={self.beta2:g}, eps={self.eps:g})"

    def check_model(self, model):
        pass

    def direction(self, model, theta, grad, z=None):
        g = np.asarray(grad, dtype=float)
        if self.m is None:
            self.m, self.v = np.zeros_like(g), np.zeros_like(g)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
        mhat = self.m / (1 - self.beta1 ** self.t)
        vhat = self.v / (1 - self.beta2 ** self.t)
        return mhat / (np.sqrt(vhat) + self.eps)
