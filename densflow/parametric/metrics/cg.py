r"""Conjugate gradients on a matrix-free symmetric positive (semi)definite product,
the solver every :class:`~densflow.parametric.metrics.ParametricMetric` inverts its
:math:`G(\theta) + \lambda I` with."""

import numpy as np

__all__ = ["CGError", "conjugate_gradient"]


class CGError(RuntimeError):
    """Conjugate gradients could not solve :math:`G s = g`."""


def conjugate_gradient(apply, b, rtol=1e-10, max_iter=None, name="metric"):
    r"""Solve :math:`G x = b` for a symmetric positive (semi)definite :math:`G` given as
    ``apply(v) = G v``, from :math:`x_0 = 0`, until :math:`\|b - Gx\| \le`
    ``rtol`` :math:`\|b\|`.

    Raises
    ------
    CGError
        When :math:`p^\top G p \le 0` along a search direction (singular or indefinite
        :math:`G`), or when ``max_iter`` (default ``10 n + 50``) iterations do not
        reach the tolerance. The message names ``name`` and suggests ``damping``.
    """
    b = np.asarray(b, dtype=float)
    if not np.all(np.isfinite(b)):
        raise CGError(f"{name}: the gradient holds {np.count_nonzero(~np.isfinite(b))} NaN or "
                      "inf entries (a NaN loss, batch or parameter?); there is nothing to "
                      "precondition")
    bnorm = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if bnorm == 0.0:
        return x
    max_iter = 10 * b.size + 50 if max_iter is None else int(max_iter)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    for _ in range(max_iter):
        Gp = apply(p)
        pGp = float(p @ Gp)
        if not np.isfinite(pGp):
            raise CGError(f"{name}: G v is NaN or inf along a CG direction (p.Gp = {pGp}): the "
                          "model's Jacobian products are not finite (NaN parameters or batch?)")
        if not pGp > 0:
            raise CGError(f"{name}: G is singular or indefinite along a CG direction "
                          f"(p.Gp = {pGp:.3e}); use damping > 0")
        alpha = rr / pGp
        x += alpha * p
        r -= alpha * Gp
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= rtol * bnorm:
            return x
        p = r + (rr_new / rr) * p
        rr = rr_new
    raise CGError(f"{name}: conjugate gradients did not reach rtol = {rtol:g} in "
                  f"max_iter = {max_iter} iterations (relative residual "
                  f"{np.sqrt(rr) / bnorm:.3e}); G may be singular or ill-conditioned: "
                  f"use damping > 0 or raise max_iter")
