"""First-order optimisers on flat parameter vectors."""

import numbers

import numpy as np

__all__ = ["Adam", "check_adam"]


def check_adam(beta1, beta2, eps):
    """Refuse Adam's settings unless ``0 <= beta1, beta2 < 1`` and ``eps`` is a finite
    number > 0 (a negative or NaN ``eps`` divides by zero or poisons every step)."""
    for key, v in (("beta1", beta1), ("beta2", beta2)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1:
            raise ValueError(f"{key} must lie in [0, 1), got {v!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not np.isfinite(eps) \
            or not eps > 0:
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")


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
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not np.isfinite(lr) \
                or not lr > 0:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        check_adam(beta1, beta2, eps)
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
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
