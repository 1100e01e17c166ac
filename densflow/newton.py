r"""Second-order natural gradient: Newton–Krylov steps preconditioned by a metric
(:ref:`stepping`).

At :math:`p_k` with gradient :math:`g`, the Newton direction :math:`d` solves

.. math::

    \nabla^2 E(p_k)\, d = -(g - c\mathbf 1), \qquad \textstyle\sum_s d_s = 0,
    \qquad \nabla^2 E = \alpha_1 L_\mu^+ + \alpha_2 \operatorname{diag}(1/p) + \alpha_3 A ,

by preconditioned conjugate gradients (PCG) on the mass-zero subspace. The
preconditioner is the metric in its mass-preserving form,
:math:`\tilde M v = M(p_k)(v - c_v\mathbf 1)` (an approximate inverse Hessian: Ying's
idea, used here inside Krylov iterations instead of as the step itself). Its iterates
stay in :math:`\{\sum_s d_s = 0\}` and residuals are defined up to constants, which
:math:`\tilde M` ignores.

*Inexact Newton.* PCG stops when the preconditioned residual has dropped by the
forcing term

.. math::

    \eta_k = \min\Big(\eta_{\max},\; \max\big(\sqrt{\delta_k},\;
    \sqrt{\tau/(10\,(E_k - E_{\min}))}\big)\Big),
    \qquad \delta_k = \tilde g^\top \tilde M \tilde g ,

:math:`\tau` the run's ``tol``. :math:`\eta_k = O(\lVert g_k\rVert)` gives quadratic
convergence (Dembo, Eisenstat and Steihaug 1982; Eisenstat and Walker 1996 choose it
from the last two residuals instead; this choice depends only on the current iterate,
so a resumed run repeats the same arithmetic). The second bound stops the last steps
from solving more accurately than ``tol`` needs: the energy after a step with
relative residual :math:`\eta` is about :math:`\eta^2 (E_k - E_{\min})`.
:math:`\eta_{\max} = 10^{-2}`: looser inner solves (0.5) leave enough of the KL
curvature out of the step that positivity cuts it (2D high contrast: 50–216 outer
iterations against 7–8). In 2D the :math:`L_\mu^+` inside each Hessian product is an
inner CG run to relative residual :math:`\eta_k/10`, relaxed in proportion to the
residual left (Simoncini and Szyld 2003). In 1D with the combined metric the whole PCG
is one numba call (:mod:`densflow.kernels.newton`).

*Globalisation.* The step is :math:`p_{k+1} = p_k + t\,d` with Armijo backtracking from
:math:`t_0 = \min(1, \theta\, t_{\max})`, where :math:`t_{\max}` is the largest step that
keeps :math:`p > 0` (fraction to the boundary, :math:`\theta = 0.995`) when the energy
has a KL term; where that would cut the step below ``damping_below``, the step is solved
again with the Hessian damped in the Fisher–Rao metric (:meth:`NewtonStep.direction`).
While some cell holds less than ``revive_below / N``, and where no Newton step is
accepted, the iteration takes the metric's first-order natural-gradient step instead
(halving from ``eta0``, as the paper's method does: it empties no cell, and it refills
nearly empty cells geometrically, which a Newton step, held by the KL curvature
:math:`\alpha_2/p_i`, cannot). The solver's safeguard
(:class:`densflow.metrics.Safeguard`) also shapes the preconditioner on nearly
vanishing densities.
"""

import numbers
from dataclasses import dataclass

import numpy as np

from .kernels.newton import boundary_ratio, newton_cg_1d
from .energies.terms import KL, Dirichlet, HMinus1
from .metrics.natural import BlendedPreconditioner, CombinedPreconditioner, mass_fix
from .core.operators import dot
from .newton_compact import CompactNewton
from .optim.result import INNER_HISTORIES

__all__ = ["Newton", "NewtonStep", "INNER_COUNTS"]

#: How many times at most a step of a non-convex energy is solved again with a larger
#: Fisher–Rao damping when PCG meets negative curvature (:meth:`NewtonStep.direction`).
NEGATIVE_CURVATURE_TRIES = 8

#: Newton's per-step counts of inner work (:attr:`NewtonStep.stats`, the ``SolveResult``
#: fields and the run-file datasets of the same names).
INNER_COUNTS = INNER_HISTORIES


@dataclass(frozen=True)
class Newton:
    """Settings of the Newton–Krylov method (``solve(..., method="newton")``).

    Parameters
    ----------
    forcing_max : float
        :math:`\\eta_{\\max}` in (0, 1): the loosest relative residual of the inner PCG.
    cg_max_iter : int
        Cap on PCG iterations per step (the iterate reached is used).
    boundary : float
        Fraction-to-the-boundary factor :math:`\\theta` in (0, 1] of the first trial step
        when the energy has a KL term.
    inner_factor : float
        2D: relative residual of the inner :math:`L_\\mu^+` solves as a fraction of
        the forcing term, in (0, 1].
    damping_tries : int
        With a KL term: how many times at most a step is solved again with Fisher–Rao
        damping when the boundary rule would shorten it (0: never).
    damping_below : float
        Solve again only when the largest step keeping :math:`p > 0` is below this
        fraction of the Newton step, in (0, 1].
    preconditioner : {"auto", "metric", "compact"}
        How the Newton system is solved. ``"metric"``: PCG preconditioned by the run's
        metric. ``"compact"`` (energies of KL and Dirichlet terms with a KL term, on a
        periodic grid): the Hessian :math:`(\\alpha_2 + \\nu)/p + \\alpha_3 A` is a
        stencil, solved in one compiled call — directly in 1D (cyclic tridiagonal),
        by Jacobi-preconditioned CG in 2D (:mod:`densflow.kernels.compact`) — and the
        step is taken straight or along the Fisher–Rao exponential map, whichever
        ends lower (:func:`densflow.newton_compact.fisher_rao_retraction`; no damping re-solves: the
        retracted step keeps :math:`p > 0`); the metric still gives the revival and
        fallback steps. ``"auto"``: ``"compact"`` where it
        applies (measured faster: docs :ref:`newton-potential`), else ``"metric"``.
    revive_below : float
        With a KL term: while some cell holds less than ``revive_below / N`` (nearly
        empty; in [0, 1], 0: never), take the metric's first-order step instead (not
        for free energies, :ref:`free-energies`, whose minimiser may hold such cells). Its
        step in such a cell is proportional to :math:`p_i` and refills it
        geometrically, whereas the KL curvature :math:`\\alpha_2/p_i` of a Newton step
        holds it in place.
    """

    forcing_max: float = 1e-2
    cg_max_iter: int = 200
    boundary: float = 0.995
    inner_factor: float = 0.1
    damping_tries: int = 3
    damping_below: float = 0.5
    revive_below: float = 1e-8
    preconditioner: str = "auto"

    #: The values of ``preconditioner``.
    PRECONDITIONERS = ("auto", "metric", "compact")

    def __post_init__(self):
        if self.preconditioner not in self.PRECONDITIONERS:
            raise ValueError(f"{type(self).__name__} preconditioner must be one of "
                             f"{', '.join(map(repr, self.PRECONDITIONERS))}, got {self.preconditioner!r}")
        for name, low, high, closed in (("forcing_max", 0.0, 1.0, False), ("boundary", 0.0, 1.0, True),
                                        ("inner_factor", 0.0, 1.0, True), ("damping_below", 0.0, 1.0, True)):
            v = getattr(self, name)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and low < v and (
                v <= high if closed else v < high)
            if not ok:
                bound = "]" if closed else ")"
                raise ValueError(f"Newton {name} must lie in ({low:g}, {high:g}{bound}, got {v!r}")
        v = self.revive_below
        if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 <= v <= 1):
            raise ValueError(f"Newton revive_below must lie in [0, 1], got {v!r}")
        for name, low in (("cg_max_iter", 1), ("damping_tries", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"Newton {name} must be an integer >= {low}, got {v!r}")

    def params(self):
        """Settings as a dict (for run files)."""
        return {name: (v if isinstance(v, str) else int(v) if isinstance(v, numbers.Integral)
                       else float(v)) for name, v in vars(self).items()}


def compact_applies(energy):
    """Whether the compact solve applies (``preconditioner="auto"`` then takes it): KL
    and Dirichlet terms, a KL term among them, on a periodic 1D or 2D grid."""
    terms = energy.active_terms
    return (energy.grid.periodic and energy.grid.dim in (1, 2)
            and all(type(t) in (KL, Dirichlet) for _, t in terms)
            and any(type(t) is KL for _, t in terms))


class NewtonStep(CompactNewton):
    """Newton directions for :func:`densflow.solve`, preconditioned by a bound metric.

    Parameters
    ----------
    energy : Energy
        The energy (its Hessian products are used).
    preconditioning : object
        A bound metric, or :class:`densflow.metrics.Safeguard` around one: anything with
        ``preconditioner(p)`` and ``direction(p, g)`` (the fallback).
    settings : Newton
        Forcing, caps and the boundary rule.
    tol : float or None
        The run's tolerance on :math:`E - E_{\\min}` (bounds the forcing term).

    After each :meth:`direction`, :attr:`stats` holds the step's PCG iterations,
    Hessian products and inner :math:`L_\\mu^+` iterations.
    """

    #: The solver passes ``gap = E - E_min`` to :meth:`direction`.
    uses_gap = True

    def __init__(self, energy, preconditioning, settings, tol=None):
        self.energy = energy
        self.inner = preconditioning
        self.settings = settings
        self.tol = tol
        self.requires_positive = getattr(preconditioning, "requires_positive", True)
        # E = +inf outside p > 0 (KL, porous medium): the boundary rule, Fisher-Rao
        # damping and revival apply
        self.has_kl = energy.positive_domain
        self._fisher_rao = energy.fisher_rao_part()
        # non-convex energies (attractive interaction): negative curvature met in PCG
        # is answered by Fisher-Rao damping (see direction)
        self._damp_negative = not energy.convex and self._fisher_rao[0] > 0
        # revival refills cells that a reference measure mu > 0 wants filled; a free
        # energy's minimiser may hold nearly empty cells (a concentrated aggregate)
        self._revive = self.has_kl and all(t.mu is not None for _, t in energy.active_terms)
        self.negative_curvature = False
        self._solvers = [t.solver for _, t in energy.active_terms if hasattr(t, "solver")]
        # 1D periodic energies of the three standard terms on one mu: PCG in one compiled call
        self._fused = None  # (computed when the metric's PCG first needs it)
        self.stats = dict.fromkeys(INNER_COUNTS, 0)
        self.newton_direction = True
        self.kind = self._resolve(getattr(settings, "preconditioner", "auto"))
        self._value_terms = None

    def _resolve(self, kind):
        """The linear solver ``kind`` stands for on this energy (``"metric"`` or
        ``"compact"``)."""
        if kind not in ("auto", "compact"):
            return "metric"
        compact = compact_applies(self.energy)
        if kind == "compact" and not compact:
            raise ValueError("Newton preconditioner='compact' needs an energy of KL and "
                             "Dirichlet terms (with a KL term) on a periodic 1D or 2D grid")
        return "compact" if compact else "metric"

    # the names the recorder and messages read through a wrapper
    @property
    def floor(self):
        return getattr(self.inner, "floor", np.nan)

    @property
    def bound(self):
        return getattr(self.inner, "bound", self.inner)

    def forcing(self, decrement, gap):
        """:math:`\\eta_k` from the natural-gradient decrement and the energy gap."""
        return min(self.settings.forcing_max, max(np.sqrt(max(decrement, 0.0)), self._floor(gap)))

    def direction(self, p, g, gap=None):
        r"""The descent direction :math:`s = -d` (the solver steps to :math:`p - t s`).

        With a KL term, a Newton step that would leave the positive orthant
        (:math:`t_{\max} < 1`) is solved again with the Hessian damped in the Fisher–Rao
        metric, :math:`\nabla^2 E + \nu \operatorname{diag}(1/p)`, :math:`\nu = \alpha_2
        (1/t_{\max} - 1)` (with a porous-medium term :math:`\operatorname{diag}(1/p)` is the
        Fisher–Rao-like terms' :math:`\operatorname{diag}(1/q)` and :math:`\alpha_2 = 1`,
        :meth:`densflow.energies.Energy.fisher_rao_part`): in a cell where the KL curvature dominates, this shortens the
        step by :math:`t_{\max}`, and as :math:`\nu` grows the direction tends to the
        Fisher–Rao natural gradient, which keeps :math:`p > 0`. While some cell holds
        less than ``revive_below / N`` the direction is the metric's first-order one.

        A non-convex energy (an attractive interaction) with a Fisher–Rao-like term:
        when PCG meets negative curvature, the step is solved again with the same
        damping, :math:`\nu = \alpha_2, 4\alpha_2, 16\alpha_2, \dots` (at most
        ``NEGATIVE_CURVATURE_TRIES`` times), until the damped Hessian is positive
        definite on the Krylov space: the entropy weight raised locally, a Levenberg–
        Marquardt step in the Fisher–Rao metric. If negative curvature remains, PCG's
        iterate before it is the direction (a descent direction; none at all at the
        first PCG iteration, and the solver then takes the metric's step).
        """
        self.stats = dict.fromkeys(INNER_COUNTS, 0)
        self.newton_direction = False
        if self._revive and p.min() * p.size < self.settings.revive_below:
            return self.inner.direction(p, g)  # nearly empty cells: the metric's step
        self.newton_direction = True
        if self.kind == "compact":
            return self._compact_direction(p, g, gap)
        precondition = self.inner.preconditioner(p)
        s = self._solve(p, g, gap, precondition, 0.0)
        nu = 0.0
        if self._damp_negative:
            alpha2 = self._fisher_rao[0]
            for _ in range(NEGATIVE_CURVATURE_TRIES):
                if not self.negative_curvature:
                    break
                nu = max(4.0 * nu, alpha2)
                s = self._solve(p, g, gap, precondition, nu)
        if self._revive:  # (free energies: the boundary rule alone; damping there held
            # the iterates near broad stationary points of an aggregation problem)
            alpha2 = self._fisher_rao[0]
            for _ in range(self.settings.damping_tries):
                t_max = self.first_step(p, s, 1.0)
                if t_max >= self.settings.damping_below:
                    break
                nu = (nu + alpha2) / t_max - alpha2
                s = self._solve(p, g, gap, precondition, nu)
        return s

    def _floor(self, gap):
        r"""The forcing term's lower bound :math:`\sqrt{\tau/(10 (E_k - E_{\min}))}` (or 0)."""
        if gap is not None and self.tol is not None and gap > 0:
            return float(np.sqrt(0.1 * self.tol / gap))
        return 0.0

    def _fusable(self, pre):
        """Whether the 1D kernel can run PCG with this preconditioner."""
        if self._fused is None:
            energy = self.energy
            self._fused = energy.grid.dim == 1 and energy.grid.periodic and energy.min_value is not None and all(
                type(t) in (HMinus1, KL, Dirichlet) for _, t in energy.active_terms)
        if not self._fused:
            return False
        if isinstance(pre, BlendedPreconditioner):
            pre = pre.operator
        return isinstance(pre, CombinedPreconditioner)

    def _solve_fused(self, p, g, gap, pre, nu):
        w = self.energy.weights
        inv_mu = self._solvers[0]._inv_mu if self._solvers else p
        blend = isinstance(pre, BlendedPreconditioner)
        if blend:
            b = (pre.d, pre.f, pre.w, pre.den)
            pre = pre.operator
        else:
            b = (p, p, p, 1.0)
        x = np.empty_like(g)
        its, _ = newton_cg_1d(g, p, w["wasserstein"], inv_mu, w["fisher_rao"], w["mahalanobis"],
                              float(nu), pre.basis.lo, pre.basis.hi, pre.basis.level, pre.lam,
                              pre.ones, pre.lam1, pre.den, blend, *b, self.settings.forcing_max,
                              self._floor(gap), self.settings.cg_max_iter, x)
        self.stats["cg_iterations"] += its
        self.stats["hessian_products"] += its
        return mass_fix(x)

    def _solve(self, p, g, gap, precondition, nu):
        if self.kind == "compact":
            return self._solve_compact(p, g, gap, nu)
        if self._fusable(precondition):
            return self._solve_fused(p, g, gap, precondition, nu)
        settings = self.settings
        energy = self.energy
        counts = self.stats
        self.negative_curvature = False
        # as the Fisher-Rao-like terms' curvature alpha2 / q (KL: q = p)
        mobility = self._fisher_rao[1]
        damping = nu / np.maximum(p if mobility is None else mobility(p), 1e-300) if nu > 0 else None
        # PCG on P H P d = -P g, P = I - 11^T/N (the mass-zero subspace); x accumulates -d.
        # Residuals are kept mean-free: the preconditioner ignores constants, r.z would not
        r = g - g.mean()
        z = precondition(r)
        rz = dot(r, z)
        x = np.zeros_like(g)
        if not rz > 0:
            return x
        eta = self.forcing(rz, gap)
        inner_rtol = max(1e-13, settings.inner_factor * eta)
        rz0 = rz
        stop = eta * eta * rz
        d = z
        for _ in range(settings.cg_max_iter):
            hd = energy.hessian_product(p, d, rtol=inner_rtol)
            if damping is not None:
                hd += damping * d
            hd -= hd.mean()
            counts["hessian_products"] += 1
            counts["inner_iterations"] += sum(s.last_iterations for s in self._solvers)
            curvature = dot(d, hd)
            counts["cg_iterations"] += 1
            if not curvature > 0:
                # convex energies: only by rounding. Non-convex ones (attractive
                # interaction): d is a direction of negative curvature; the iterate so
                # far is a descent direction (0 at the first iteration: the solver then
                # takes the metric's step)
                self.negative_curvature = True
                break
            alpha = rz / curvature
            x += alpha * d
            r -= alpha * hd
            z = precondition(r)
            rz_new = dot(r, z)
            if rz_new <= stop:
                break
            d = z + (rz_new / rz) * d
            rz = rz_new
            # relaxed inner accuracy: a product's error matters in proportion to the
            # residual left (Simoncini and Szyld 2003)
            inner_rtol = min(0.5, max(1e-13, settings.inner_factor * eta * np.sqrt(rz0 / rz)))
        return mass_fix(x)

    def first_step(self, p, s, eta0):
        """The first trial step: ``eta0``, shortened to keep :math:`p - t s > 0` for a
        Newton direction with KL (the metric's steps halve from ``eta0`` as in
        :func:`densflow.solve`'s first-order method, which empties no cell)."""
        if not (self.has_kl and self.newton_direction):
            return eta0
        ratio = boundary_ratio(np.ascontiguousarray(p, dtype=float).reshape(-1),
                               np.ascontiguousarray(s, dtype=float).reshape(-1))
        if ratio == np.inf:  # no entry of s is positive
            return eta0
        return min(eta0, self.settings.boundary * ratio)

    def fallback(self, p, g):
        """The first-order natural-gradient direction of the preconditioning metric."""
        self.stats = dict.fromkeys(INNER_COUNTS, 0)
        self.newton_direction = False
        return self.inner.direction(p, g)
