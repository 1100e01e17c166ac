"""First-order optimisers on flat parameter vectors."""

import numpy as np

__all__ = ["Adam"]


class Adam:
    """Adam (Kingma & Ba) on a flat parameter vector.

    Parameters
    ----------
    lr : float
        Learning rate.
    beta1, beta2, eps : float
        Moment decays and the denominator's guard.
    """

    def __init__(self, lr, beta1=0.5, beta2=0.999, eps=1e-8):
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), beta1, beta2, eps
        self.m = self.v = None
        self.t = 0

    def step(self, params, grad):
        """Return the updated parameters."""
        if self.m is None:
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * grad
        self.v = self.beta2 * self.v + (1 - self.beta2) * grad * grad
        mhat = self.m / (1 - self.beta1**self.t)
        vhat = self.v / (1 - self.beta2**self.t)
        return params - self.lr * mhat / (np.sqrt(vhat) + self.eps)
