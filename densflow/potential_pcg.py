r"""The preconditioned conjugate gradients of Newton in the potential
(:meth:`densflow.potential_newton.PotentialNewtonStep.solve`): the loop, with the
vector work of an iteration in two compiled calls around the preconditioner.

On a 2D grid with the standard terms (KL, Dirichlet) one call
(:func:`densflow.kernels.potential.hessian_cg_update_2d`) takes the Hessian product,
the update of the iterate and residual and the preconditioner's scaled input, and one
(:func:`densflow.kernels.potential.cg_direction`) the new direction; the
preconditioner is the Fourier pair (or the metric's) in between. Elsewhere the product
is the step's :meth:`~densflow.potential_newton.PotentialNewtonStep.hessian_product`.
The arithmetic is that of the loop it replaced except for the order of the sums in
the inner products (vectorised), the same from run to run.
"""

import numpy as np
import scipy.fft as sfft

from .core.operators import inverse_symbol
from .kernels import potential as PK

__all__ = ["pcg", "multiplier"]


def multiplier(step, p, nu, mean_ratio=None, dtype=np.float64):
    r"""The Fourier preconditioner's multiplier :math:`F` of ``step`` at ``p`` in
    ``dtype`` (``mean_ratio``: :math:`\overline{w/p}` when known); the last one is
    kept for its ``(p, nu, dtype)``."""
    key = getattr(step, "_multiplier_key", None)
    if key is not None and key[0] is p and key[1] == nu and key[2] == dtype:
        return step._multiplier_value
    c2 = 0.0
    if step.a2 + nu > 0:
        if mean_ratio is None:
            mean_ratio = PK.ratio_stats(step.w.reshape(-1),
                                        np.ascontiguousarray(p).reshape(-1))[2]
        c2 = (step.a2 + nu) * mean_ratio
    symbol = step._laplacian_symbol()
    out = np.empty(symbol.shape, dtype=dtype)
    PK.fourier_multiplier(symbol.reshape(-1), step.a1, c2, step.a3 * step._mean_w,
                          out.reshape(-1))
    step._multiplier_key, step._multiplier_value = (p, nu, dtype), out
    return out


def _metric_apply(step, p, shape):
    """The metric preconditioner :math:`S M(p) S` (the outer scale :math:`T^{-1}`
    applied by the CG kernels)."""
    axes = tuple(range(step.dim))
    inv = inverse_symbol(step._laplacian_symbol())
    metric = step.inner.preconditioner(p)
    scale = step._scale

    def apply(t):
        u = sfft.irfftn(sfft.rfftn(t, axes=axes) * inv, s=shape, axes=axes)
        u = scale * metric(scale * u)
        return np.ascontiguousarray(
            sfft.irfftn(sfft.rfftn(u, axes=axes) * inv, s=shape, axes=axes))
    return apply


def pcg(step, p, b, gap, nu):
    r"""An approximate :math:`\delta` with :math:`\nabla^2_\varphi E\,\delta = b` by PCG
    (``step``: the :class:`~densflow.potential_newton.PotentialNewtonStep`; its
    forcing, its ``forcing_cut`` rule and its counts in ``step.stats``)."""
    shape = b.shape
    scale = step._scale
    sf = scale.reshape(-1)
    x = np.zeros(shape)
    r = np.array(b, dtype=float)
    r -= r.mean()
    rf = r.reshape(-1)
    d = np.empty(shape)
    df_ = d.reshape(-1)
    t = np.empty(shape)  # the preconditioner's input scale * r / rho
    rho = 1.0
    mixed = mean_ratio = None
    if step.kind == "metric":
        apply = _metric_apply(step, p, shape)
    else:
        if step.mixed:
            mixed, mean_ratio = step._ratio(p)
        dtype = np.float32 if mixed else np.float64
        inv = multiplier(step, p, nu, mean_ratio if nu == 0.0 else None, dtype)
        if mixed:  # the FFT pair in float32 on t = scale * r / rho, rho ~ max|scale * r|
            t = np.empty(shape, dtype=np.float32)
            rho = PK.scaled_single((scale * r).reshape(-1), t.reshape(-1))
        pair = step.fourier_pair(dtype)

        def apply(t):
            return pair(t, inv)
    if not mixed:
        np.multiply(scale, r, out=t)
    tf = t.reshape(-1)

    rz = PK.cg_direction(apply(t).reshape(-1), sf, rf, df_, 1.0, True, rho)
    if not rz > 0:
        return x
    eta = step.forcing(rz, gap)
    stop = eta * eta * rz
    # where the step would be cut by positivity, solve on to the tighter forcing_cut
    cut = step.settings.forcing_cut
    tighter = cut * cut * rz if step.has_kl and cut < eta else None
    counts = step.stats
    fused = step.standard and step.dim == 2
    if fused:
        a = step.a2 + nu
        diag = step._diag(p, nu)
        u, m, hd = step._work
        args = (step.w, diag, a > 0, step.a1, step.a3, step.n, u, step._row, m, hd, x, r)
    its = 0
    for _ in range(step.settings.cg_max_iter):
        its += 1
        inv_rho = 1.0 / rho if mixed else 1.0
        if fused:
            curvature, big = PK.hessian_cg_update_2d(d, *args, rz, scale, t, inv_rho)
            if not curvature > 0:  # only by rounding: the Hessian is positive definite
                break
        else:
            hd, curvature = step.hessian_product(p, d, nu)
            if not curvature > 0:
                break
            big = PK.cg_update_scaled(x.reshape(-1), rf, df_, hd.reshape(-1), rz / curvature,
                                      sf, tf, inv_rho)
        rz_new = PK.cg_direction(apply(t).reshape(-1), sf, rf, df_, rz, False, rho)
        rho = big if mixed else 1.0  # z scaled back by the rho t was written with
        if rz_new <= stop:
            if tighter is None or rz_new <= tighter or step._uncut(p, x):
                break
            stop, tighter = tighter, None
        rz = rz_new
    counts["hessian_products"] += its
    counts["cg_iterations"] += its
    return x
