r"""The linear systems of the Newton iterations of an implicit flow step (:ref:`flows`).

A Newton iteration of :func:`densflow.flows.step.solve_step` needs :math:`\delta` with

.. math::

    \tau K(I + \tau H K)\,\delta = -\tau K w, \qquad w = \varphi - \nabla F(p),\quad
    H = \nabla^2 F(p),

the potential form :math:`\nabla^2\Phi\,\delta = -\nabla\Phi`. Two solvers:

* **general** (:func:`pcg_potential`): PCG on :math:`\tau K + \tau^2 K H K`,
  preconditioned by the inverse of a constant-coefficient model
  (:meth:`WassersteinProx.preconditioner`, :func:`curvature_model`). Its condition
  number carries the square of the model's error for :math:`K` (the commutators of
  :math:`L_m` with :math:`\operatorname{diag}(p^*)^{1/2}`), which grows with the stiffness
  :math:`\tau n^2` of the step on a density of high contrast.
* **diagonal** (:func:`pcg_diagonal`, the Wasserstein metric when every term of
  :math:`F` is ``"fisher_rao"`` — a diagonal Hessian :math:`\operatorname{diag}(1/q)` —
  or ``"linear"``: entropy, KL, the porous medium, with a potential: the heat,
  Fokker–Planck and porous-medium equations):
  :math:`I + \tau HK = H(H^{-1} + \tau K)`, so :math:`\delta = -y` with

  .. math:: (\operatorname{diag}(q) + \tau L_m)\, y = q\odot w ,

  a symmetric positive definite screened Poisson problem — no square of :math:`L_m`
  (:math:`w` made :math:`q`-mean-free first: :math:`K` ignores constants, and the
  constant :math:`w` tends to would otherwise floor the attainable Newton residual).
  Two preconditioners: in 2D, while :math:`q/p^*` varies by at most
  :data:`SCREENED_SPREAD` (KL, the entropy), the Fourier model
  :math:`S^{-1}(\bar c + \tau\hat A)^{-1}S^{-1}`, :math:`S = \operatorname{diag}(p^*)^{1/2}`,
  :math:`\bar c` the mean of :math:`q/p^*` (one FFT pair on the torus, one DCT-II pair
  on the box; 3.7–3.9 CG iterations per Newton iteration from 128² to 1024² on the
  torus's Fokker–Planck benchmark, 3.6–5.1 on the box from 64² to 512², where the
  multigrid took 4.5–6.5 at a dearer application); elsewhere — the porous medium, a
  wider spread, 1D — a multigrid cycle for the operator itself
  (:meth:`~densflow.flows.prox_base.WassersteinBase.screened_multigrid`,
  :class:`densflow.core.multigrid.Multigrid`; 1D its exact solve), which resolves the
  variable coefficients (porous medium: 5–8 CG iterations per Newton iteration from
  128² to 1024², against 9.5–28 for the general form). The stopping test is that of
  the general solver, on the residual of the Newton system it implies,
  :math:`\tau K H r_y` (one more stencil per iteration).
"""

import numpy as np

from ..core.operators import dot, inverse_symbol
from ..energies.terms import Dirichlet, HMinus1
from ..kernels.flows import next_direction, screened_product, screened_residual_sq, screened_update

__all__ = ["Curvature", "curvature_model", "forcing", "pcg_potential", "pcg_diagonal",
           "diagonal_mobility", "newton_direction", "SCREENED_SPREAD"]

#: The Fourier model of the screened form is used when :math:`q/p^*` varies by at most
#: this factor (it models :math:`\operatorname{diag}(q)` by :math:`\bar c\, p^*`): KL and
#: the entropy (:math:`q/p^* = p/p^* \approx 1`), not the porous medium
#: (:math:`q/p^* = \rho^{1-m}/m`), which takes the multigrid (``FlowNewton.multigrid``).
SCREENED_SPREAD = 4.0


class Curvature:
    r"""A constant-coefficient curvature symbol :math:`\hat c(k) = c_{-1}/\hat A + c_0 +
    c_1 \hat A` (called with the symbol :math:`\hat A` of the grid's Laplacian)."""

    def __init__(self, c_m1=0.0, c0=0.0, c1=0.0):
        self.c_m1, self.c0, self.c1 = float(c_m1), float(c0), float(c1)

    def __call__(self, a):
        out = np.full(np.shape(a), max(self.c0, 0.0))
        if self.c1:
            out += self.c1 * a
        if self.c_m1:
            out += self.c_m1 / np.where(a > 0, a, np.inf)
        return out


def _terms(energy):
    if hasattr(energy, "active_terms"):
        return list(energy.active_terms)
    return [(1.0, energy)]


def _checkerboard(shape):
    idx = np.indices(shape).sum(axis=0)
    return np.where(idx % 2 == 0, 1.0, -1.0)


def curvature_model(energy, p, weight):
    r"""The :class:`Curvature` of :math:`S\nabla^2F(p)S`, :math:`S^2 =` ``weight``
    (``None``: :math:`S = I`).

    Dirichlet terms contribute their exact symbol :math:`\alpha\hat A` (with the mean of
    ``weight``), H⁻¹ terms :math:`\alpha\,\overline{w/\mu}/\hat A`; every other term the
    Rayleigh quotient of :math:`S\nabla^2 F S` on the checkerboard :math:`\pm 1` (exact
    mean for a diagonal Hessian, the Nyquist value of a convolution's symbol).
    """
    c_m1 = c0 = c1 = 0.0
    others = []
    w_mean = 1.0 if weight is None else float(np.mean(weight))
    for a, t in _terms(energy):
        if isinstance(t, Dirichlet):
            c1 += a * w_mean
        elif isinstance(t, HMinus1):
            c_m1 += a * (float(np.mean(weight / t.mu)) if weight is not None else 1.0 / float(np.mean(t.mu)))
        else:
            others.append((a, t))
    if others:
        v = _checkerboard(p.shape)
        if weight is not None:
            v = v * np.sqrt(weight)
        hv = np.zeros(p.shape)
        for a, t in others:
            hv += a * t.hessian_product(p, v)
        c0 = dot(v, hv) / p.size
    return Curvature(c_m1, c0, c1)


def forcing(res, res_prev, tol, settings):
    r"""The PCG's relative tolerance :math:`\eta` of a Newton iteration at residual ``res``.

    :math:`\eta = 0.1\,\text{tol}/\text{res}` (one Newton iteration more reaches the
    tolerance, and no more accuracy is bought than that); from the second iteration on at
    least the choice 2 of Eisenstat and Walker, :math:`0.9\,(\text{res}/
    \text{res}_{\text{prev}})^2`, so that the linear systems of iterations that cannot reach
    the tolerance yet (slow nonlinear convergence) are not solved to it. Bounded by
    ``forcing_min`` and ``forcing_max``.
    """
    eta = 0.1 * tol / res
    if np.isfinite(res_prev):
        eta = max(eta, 0.9 * (res / res_prev) ** 2)
    return min(settings.forcing_max, max(settings.forcing_min, eta))


def pcg_potential(energy, prox, p, tau, grad, eta, settings):
    r"""Approximately solve :math:`(\tau K + \tau^2 K H K)\,\delta = -\nabla\Phi` by PCG
    (to the relative residual ``eta``); returns ``(delta, iterations)``."""
    curvature = curvature_model(energy, p, prox.weight)
    precondition = prox.preconditioner(tau, curvature)
    r = -grad
    r = r - r.mean()
    x = np.zeros_like(r)
    rnorm0 = np.sqrt(dot(r, r))
    if rnorm0 == 0:
        return x, 0
    z = precondition(r)
    rz = dot(r, z)
    d = z
    its = 0
    for its in range(1, settings.cg_max_iter + 1):
        kd = prox.apply(d)
        hd = tau * kd + tau * tau * prox.apply(energy.hessian_product(p, kd))
        curv = dot(d, hd)
        if not curv > 0:
            if its == 1:
                x = d  # the preconditioned gradient direction
            break
        alpha = rz / curv
        x += alpha * d
        r -= alpha * hd
        if np.sqrt(dot(r, r)) <= eta * rnorm0:
            break
        z = precondition(r)
        rz_new = dot(r, z)
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x - x.mean(), its


def diagonal_mobility(energy, p):
    r""":math:`q` with :math:`\nabla^2F(p) = \operatorname{diag}(1/q)` when every active term
    of ``energy`` is ``"fisher_rao"`` or ``"linear"`` and one at least is
    ``"fisher_rao"``; else ``None``."""
    curvature = None
    for a, t in _terms(energy):
        kind = getattr(t, "kind", None)
        if kind == "fisher_rao" and hasattr(t, "mobility"):
            c = a / t.mobility(p)
            curvature = c if curvature is None else curvature + c
        elif kind != "linear":
            return None
    if curvature is None:
        return None
    return 1.0 / curvature


def _pcg_screened_2d(q, weights, precondition, w, target, settings):
    r"""The 2D loop of :func:`pcg_diagonal`, its vector work fused in the kernels of
    :mod:`densflow.kernels.flows` (five grid passes per iteration besides the
    preconditioner); ``weights`` those of :math:`\tau L_m` in the unscaled form."""
    wx, wy = weights
    r = q * w
    y, bd, s = np.zeros_like(r), np.empty_like(r), np.empty_like(r)
    z = precondition(r)
    rz = dot(r, z)
    d = z
    its = 0
    target2 = target * target
    for its in range(1, settings.cg_max_iter + 1):
        curv = screened_product(d, q, wx, wy, bd)
        if not curv > 0:  # rounding only: the operator is positive definite
            break
        screened_update(y, r, d, bd, rz / curv, q, s)
        if screened_residual_sq(s, r, q, wx, wy) <= target2:
            break
        z = precondition(r)
        rz_new = dot(r, z)
        next_direction(d, z, rz_new / rz)
        rz = rz_new
    return -(y - y.mean()), its


def pcg_diagonal(prox, q, tau, w, grad, eta, settings, multigrid=None):
    r"""Solve :math:`(\operatorname{diag}(q) + \tau K)\,y = q\odot w` by PCG until the
    Newton residual it leaves, :math:`\tau K (r_y/q)`, is at most ``eta`` times
    :math:`\lVert\nabla\Phi\rVert` (``grad``); returns ``(delta, iterations)``,
    :math:`\delta = -y` (mean-free); :math:`w` is first made :math:`q`-mean-free (the
    same :math:`\delta`). Preconditioner: ``multigrid`` (the
    :class:`~densflow.core.multigrid.Multigrid` of
    :meth:`~densflow.flows.prox_base.WassersteinBase.screened_multigrid`), or if
    ``None`` the Fourier model :math:`S^{-1}(\bar c + \tau\hat A)^{-1}S^{-1}`; in 2D
    the loop of :func:`_pcg_screened_2d`."""
    target = eta * np.sqrt(dot(grad, grad))
    if target == 0:
        return np.zeros_like(w), 0
    # K kills constants, so w - c gives the same delta; c = the q-weighted mean of w
    # removes the constant that w converges to (the potential's gauge), whose rounding
    # in y would otherwise put a floor under the Newton residual on fine grids.
    w = w - dot(q, w) / float(q.sum())
    if multigrid is not None:
        precondition = multigrid.apply
    else:
        precondition = prox.screened_preconditioner(tau, float(np.mean(q / prox.weight)))
    if q.ndim == 2:
        weights = multigrid.coefficients[1] if multigrid is not None else prox.screened_weights(tau)
        return _pcg_screened_2d(q, weights, precondition, w, target, settings)
    r = q * w
    y = np.zeros_like(r)
    z = precondition(r)
    rz = dot(r, z)
    d = z
    its = 0
    for its in range(1, settings.cg_max_iter + 1):
        bd = q * d + tau * prox.apply(d)
        curv = dot(d, bd)
        if not curv > 0:  # rounding only: the operator is positive definite
            break
        alpha = rz / curv
        y += alpha * d
        r -= alpha * bd
        res = tau * prox.apply(r / q)
        if np.sqrt(dot(res, res)) <= target:
            break
        z = precondition(r)
        rz_new = dot(r, z)
        d = z + (rz_new / rz) * d
        rz = rz_new
    return -(y - y.mean()), its


def newton_direction(energy, prox, p, tau, w, grad, eta, settings):
    r"""The Newton step :math:`\delta` of :math:`\Phi` at ``p`` and its PCG iterations.

    :func:`pcg_diagonal` where it applies (the Wasserstein metric, a diagonal Hessian),
    preconditioned in 2D by the Fourier (torus) or cosine (box) model when
    :math:`q/p^*` varies by at most :data:`SCREENED_SPREAD` (KL, the entropy), by the
    multigrid otherwise (the porous medium, a wide spread of :math:`q/p^*`) and in 1D
    (its exact solve); ``settings.multigrid = False``: the
    Fourier model where it applies, else the general form :func:`pcg_potential`.
    """
    q = multigrid = None
    if settings.screened and getattr(prox, "screened_multigrid", None) is not None:
        q = diagonal_mobility(energy, p)
    if q is not None:
        fourier = getattr(prox, "screened_preconditioner", None) is not None
        if fourier:
            ratio = q / prox.weight
            fourier = float(ratio.max()) <= SCREENED_SPREAD * float(ratio.min())
        if settings.multigrid and (not fourier or prox.dim == 1):
            multigrid = prox.screened_multigrid(tau, q)
        elif not fourier:
            q = None
    if q is not None:
        delta, its = pcg_diagonal(prox, q, tau, w, grad, eta, settings, multigrid)
    else:
        delta, its = pcg_potential(energy, prox, p, tau, grad, eta, settings)
    return delta, its
