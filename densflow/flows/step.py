r"""One implicit step of a metric gradient flow, solved by Newton–Krylov in the
potential variables (:ref:`flows`).

The step :math:`p = \arg\min_p F(p) + \tfrac1{2\tau}(p-q)^\top K^+ (p-q)` over
:math:`p - q \in \operatorname{range} K` is solved through :math:`p = q - \tau K\varphi`:

.. math::

    \Phi(\varphi) = F(q - \tau K\varphi) + \tfrac\tau2\,\varphi^\top K\varphi, \qquad
    \nabla\Phi = \tau K(\varphi - \nabla F(p)), \qquad
    \nabla^2\Phi = \tau K + \tau^2 K\,\nabla^2F(p)\,K .

At the minimiser :math:`\varphi = \nabla F(p)` (up to a constant), that is
:math:`p = q - \tau K \nabla F(p)`: the implicit step of :math:`\dot p = -K\nabla F(p)`.
Only :math:`K` and Hessian products of :math:`F` are applied — for the Wasserstein
metric :math:`K = L_m` is a stencil, so no inner :math:`L_m^+` solve is needed, which
the primal form :math:`(p-q)^\top L_m^+ (p-q)` would need at every product in 2D.

Each Newton iteration solves :math:`\nabla^2\Phi\,\delta = -\nabla\Phi` by conjugate
gradients preconditioned by the inverse of a constant-coefficient model of
:math:`\nabla^2\Phi` (:mod:`densflow.flows.proximal`), stopped by an inexact-Newton
forcing term tied to the step's tolerance; the step :math:`\varphi + t\delta` starts at
:math:`t = \min(1, \theta t_{\max})` (fraction to the boundary: :math:`p > 0`) and
backtracks on :math:`\Phi` (Armijo). The residual that stops Newton is the residual of
the discrete equation, :math:`\nabla\Phi = p - q + \tau K\nabla F(p)` up to sign, in the
continuum units :math:`\rho = Np` and weighted like the error (:mod:`densflow.flows.driver`).
"""

import numbers
from dataclasses import dataclass

import numpy as np

from ..core.operators import dot
from .krylov import Curvature, curvature_model, forcing, newton_direction

__all__ = ["FlowNewton", "Curvature", "curvature_model", "StepOutcome", "solve_step", "NUMERICAL_ERRORS"]

#: Rankings of the warm starts (:attr:`FlowNewton.warm_start`).
WARM_STARTS = ("residual", "objective", "first")

#: Exceptions inside a step that count as its failure (the step is retried shorter).
NUMERICAL_ERRORS = (ArithmeticError, np.linalg.LinAlgError, RuntimeError, FloatingPointError)


class StepOutcome:
    """What :func:`solve_step` returns: the new density, its potential and state, and
    the Newton and CG counts (``converged=False`` with a ``message`` on failure)."""

    __slots__ = ("p", "phi", "value", "gradient", "newton", "cg", "converged", "message", "residual")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def _failure(message, newton, cg, residual=np.nan):
    return StepOutcome(p=None, phi=None, value=np.nan, gradient=None, newton=newton, cg=cg,
                       converged=False, message=message, residual=residual)


@dataclass(frozen=True)
class FlowNewton:
    r"""Settings of the Newton–Krylov solve of each implicit step.

    Parameters
    ----------
    max_newton : int
        Newton iterations per step before the step counts as failed (and is retried
        with a shorter step).
    cg_max_iter : int
        PCG iterations per Newton iteration (the iterate reached is used).
    forcing_max, forcing_min : float
        Bounds of the PCG's relative residual (:func:`densflow.flows.krylov.forcing`).
    boundary : float
        Fraction-to-the-boundary factor :math:`\theta \in (0, 1)`.
    c1 : float
        Armijo constant of the backtracking on :math:`\Phi`.
    max_backtracks : int
        Halvings of the line search before the step counts as failed.
    tol : float
        Adaptive steps: Newton's residual tolerance as a fraction of the error
        tolerance (the weighted error norm 1). Fixed steps: as a fraction of the
        previous step's estimated local error (the first fixed step: solved to 1 % of
        its change, then to this fraction of its own error estimate).
    warm_start : {"residual", "objective", "first"}
        Which warm start of :math:`\varphi` (extrapolated, last and zero potential)
        Newton starts from, among those that keep :math:`p > 0` and whose objective
        :math:`\Phi` is at most the zero potential's (:math:`F(q)`; for implicit Euler
        :math:`F(p_k)`, so the energy cannot increase): the one of smallest residual
        :math:`\lVert\nabla\Phi\rVert` (the default), of smallest :math:`\Phi`, or
        the first. The extrapolated potential is the closest in
        :math:`\varphi` on smooth solutions, but in the stiff first steps it carries
        the decaying fine-scale modes forward with the wrong sign, and
        :math:`\nabla\Phi` amplifies them by :math:`\tau^2 K\nabla^2F K` (about
        :math:`(\tau n^2)^2`): ranked by :math:`\Phi` it cost 1.65 Newton iterations
        per step at 1024² against 1.30 at 128²; ranked by the residual, 1.30 at both.
    screened : bool
        Solve the Newton systems of Wasserstein steps of energies with a diagonal
        Hessian in their screened form (:func:`densflow.flows.krylov.pcg_diagonal`);
        ``False``: always the general form (:func:`densflow.flows.krylov.pcg_potential`).
    multigrid : bool
        Precondition the screened systems by a multigrid cycle
        (:class:`densflow.core.multigrid.Multigrid`; 1D: the exact tridiagonal solve)
        in 1D and where :math:`q/p^*` varies too much for the Fourier (or cosine) model
        (the porous medium); that model elsewhere
        (:func:`densflow.flows.krylov.newton_direction`). ``False``: the Fourier model
        where it applies, else the general form.
    """

    max_newton: int = 20
    cg_max_iter: int = 100
    forcing_max: float = 0.1
    forcing_min: float = 1e-6
    boundary: float = 0.995
    c1: float = 1e-4
    max_backtracks: int = 40
    tol: float = 0.02
    warm_start: str = "residual"
    screened: bool = True
    multigrid: bool = True

    def __post_init__(self):
        for name in ("max_newton", "cg_max_iter", "max_backtracks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"FlowNewton {name} must be an integer >= 1, got {v!r}")
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"FlowNewton warm_start must be one of {', '.join(map(repr, WARM_STARTS))}, "
                             f"got {self.warm_start!r}")
        if not isinstance(self.multigrid, bool):
            raise ValueError(f"FlowNewton multigrid must be True or False, got {self.multigrid!r}")
        for name in ("forcing_max", "forcing_min", "boundary", "c1", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < 1:
                raise ValueError(f"FlowNewton {name} must lie in (0, 1), got {v!r}")


def solve_step(energy, prox, q, tau, phi0, tol, scale, settings, candidates=(), accept=None):
    r"""Solve one implicit step :math:`p = q - \tau K\varphi`, :math:`\varphi \approx \nabla F(p)`.

    Parameters
    ----------
    energy : object
        ``evaluate(p)`` (value and gradient) and ``hessian_product(p, v)``.
    prox : proximal operator
        :math:`K` at the step's :math:`p^*` (:mod:`densflow.flows.proximal`).
    q : ndarray
        The step's centre (``p_k`` for Euler; the BDF2 combination).
    tau : float
        The effective step (``dt`` for Euler; :math:`\tfrac{1+\omega}{1+2\omega}` dt for BDF2).
    phi0 : ndarray
        Warm start of :math:`\varphi`; ``candidates`` are tried in turn and one of the
        positive ones taken as ``settings.warm_start`` says.
    tol : float
        Newton stops when the weighted RMS of :math:`N\nabla\Phi / \text{scale}` is at most ``tol``.
    scale : ndarray or float
        Per-cell weights of the residual (continuum units).
    settings : FlowNewton
        Caps and constants.
    accept : float or None
        A residual at most this is accepted when Newton stalls (the line search can no
        longer resolve a decrease of :math:`\Phi`, at rounding level).
    """
    size = q.size
    newton = cg = 0
    starts = []
    for phi in (phi0,) + tuple(candidates):
        if phi is None:
            continue
        kphi = prox.apply(phi)
        p = q - tau * kphi
        if not (np.all(p > 0) and np.all(np.isfinite(p))):
            continue
        st = energy.evaluate(p)
        obj = st.value + 0.5 * tau * dot(phi, kphi)
        if not np.isfinite(obj):
            continue
        rank = obj
        if settings.warm_start == "residual":
            rank = float(np.mean((tau * prox.apply(phi - st.gradient) / scale) ** 2))
        starts.append((rank, obj, not np.any(phi), phi, kphi, p, st))
        if settings.warm_start == "first":
            break
    if not starts:
        return _failure("no warm start gives a positive density (step too long)", 0, 0)
    # never above the zero potential's Phi (F(q): for Euler the energy cannot increase)
    ceiling = min((s[1] for s in starts if s[2]), default=np.inf)
    best = min((s for s in starts if s[1] <= ceiling), key=lambda s: s[0])
    _, obj, _, phi, kphi, p, st = best
    phi = phi - phi.mean()
    value, g = float(st.value), st.gradient
    res = res_prev = np.inf
    for newton in range(settings.max_newton + 1):
        w = phi - g
        kw = prox.apply(w)
        grad = tau * kw  # = q - p - tau K g, the residual of the discrete equation
        res = float(np.sqrt(np.mean((size * grad / scale) ** 2)))
        if not np.isfinite(res):
            return _failure(f"non-finite residual after {newton} Newton iterations", newton, cg)
        if res <= tol:
            return StepOutcome(p=p, phi=phi, value=value, gradient=g, newton=newton, cg=cg,
                               converged=True, message="", residual=res)
        if newton == settings.max_newton:
            break
        eta = forcing(res, res_prev, tol, settings)
        res_prev = res
        delta, its = newton_direction(energy, prox, p, tau, w, grad, eta, settings)
        cg += its
        kdelta = prox.apply(delta)
        dp = -tau * kdelta
        slope = dot(grad, delta)
        if not slope < 0:  # not a descent direction (non-convex F): steepest descent
            delta = -w
            kdelta = -kw
            dp = -tau * kdelta
            slope = dot(grad, delta)
            if not slope < 0:
                break
        shrink = dp < 0
        t = 1.0
        if np.any(shrink):
            t = min(1.0, settings.boundary * float(np.min(p[shrink] / -dp[shrink])))
        a2 = 0.5 * tau * dot(delta, kdelta)
        a1 = tau * dot(delta, kphi)
        a0 = 0.5 * tau * dot(phi, kphi)
        accepted = False
        for _ in range(settings.max_backtracks):
            p_try = p + t * dp
            st = energy.evaluate(p_try)
            obj_try = st.value + a0 + t * a1 + t * t * a2
            if np.isfinite(obj_try) and obj_try <= obj + settings.c1 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            if accept is not None and res <= accept:  # stalled at rounding level
                return StepOutcome(p=p, phi=phi, value=value, gradient=g, newton=newton + 1,
                                   cg=cg, converged=True, message="stalled", residual=res)
            return _failure(f"line search failed after {newton + 1} Newton iterations "
                            f"(residual {res:.2e}, tolerance {tol:.2e})", newton + 1, cg, res)
        phi = phi + t * delta
        kphi = kphi + t * kdelta
        p = p_try
        obj = obj_try
        value, g = float(st.value), st.gradient
    if accept is not None and res <= accept:
        return StepOutcome(p=p, phi=phi, value=value, gradient=g, newton=newton, cg=cg,
                           converged=True, message="stalled", residual=res)
    return _failure(f"Newton did not reach the tolerance {tol:.2e} in {settings.max_newton} "
                    f"iterations (residual {res:.2e})", newton, cg, res)
