r"""Newton's method in the potential: the default second-order method of energies with
an :math:`H^{-1}` term (:ref:`newton-potential`).

With the change of variables :math:`p = \mu + L_w\varphi` (:math:`L_w = \sum_d
D_d^\top\operatorname{diag}(w) D_d`, :math:`w` the weight of the energy's
:class:`~densflow.energies.HMinus1` term, :math:`w = \mu` for the paper's energies) the
:math:`H^{-1}` term becomes the quadratic :math:`\tfrac{\alpha_1}{2}\varphi^\top
L_w\varphi` and

.. math::

    \nabla_\varphi E = L_w \nabla_p E, \qquad
    \nabla^2_\varphi E = L_w \nabla^2_p E\, L_w
        = \alpha_1 L_w + L_w \nabla^2_p E_{\mathrm{rest}}\, L_w ,

where :math:`E_{\mathrm{rest}}` is the rest of the energy (KL: :math:`\operatorname{diag}
(\alpha_2/p)`, Dirichlet: :math:`\alpha_3 A`, any term with a Hessian product). A
Hessian product is two weighted-Laplacian stencils around the rest's product — no
inner :math:`L_w^+` solve, which is what each product of the Newton in :math:`p`
(:mod:`densflow.newton`) needs in 2D. The Newton step :math:`\nabla^2_\varphi E\,
\delta = L_w g` gives the density step :math:`s = L_w\delta` (the loop moves to
:math:`p - t s`), which is exactly the Newton step in :math:`p` on the mass-zero
subspace when the systems are solved exactly. Only the way the linear system is
solved changes: the iterates, the line search and the run state stay in :math:`p`.

*Nothing is carried between iterations.* The gradient :math:`\nabla_p E` comes from the
loop's state (its :math:`H^{-1}` part :math:`L_w^+(p - \mu)` is computed at every
snapshot and updated exactly along each step), so the direction is a function of the
current density alone and a resumed run repeats the same arithmetic. Along the step,
:math:`L_w^+ s = \delta - \bar\delta` is known exactly, which spares the line search
its solve (:meth:`PotentialLines.line`).

*The start (2D).* The run starts from :math:`\tilde p_0 = w + L_w\tilde\varphi_0`,
:math:`\tilde\varphi_0` a loose solution of :math:`L_w\varphi = p_0 - w` (relative
residual ``start_rtol`` = 1e-2; :math:`\tilde p_0 \ge p_0/2` in every cell, else
tightened), where the :math:`H^{-1}` part is exact without a solve
(:mod:`densflow.potential_start`): ``result.energies[0]`` is :math:`E(\tilde p_0)`.
The 1e-13 solve it replaces was half of the FFTs of a 2D run.

*The last step* solves only as far as ``tol`` needs (``forcing_last``,
:meth:`PotentialNewtonStep.forcing`). *In 1D with a direct solve* a whole step is one
compiled call (:mod:`densflow.potential_fused`). *Speed*: docs :ref:`newton-potential`.

*Linear solves.*

* ``"direct"`` (1D, the three standard terms, up to :data:`DIRECT_MAX_N` points), in the
  form ``direct_form`` resolves to (:func:`~densflow.potential_settings.direct_form`).
  ``"band"``: the exact Hessian, a cyclic band of half-width 3, by banded Cholesky with
  a Woodbury correction for the corners and the constants
  (:func:`densflow.kernels.potential.cyclic_band_solve`). ``"saddle"`` (the
  default): the saddle-point system in :math:`(s, \delta)`, one sweep of
  :math:`2\times 2` pivots (:mod:`densflow.kernels.saddle`). Both :math:`O(N)`.
* ``"saddle"`` (1D, the three standard terms, above :data:`DIRECT_MAX_N`): the
  saddle-point form.
* ``"fourier"``: preconditioned CG with :math:`T^{-1} F T^{-1}`, :math:`T =
  \operatorname{diag}(w^{1/2})`, :math:`F = (\alpha_1\hat A + \alpha_2 c_2\hat A^2 +
  \alpha_3 c_3\hat A^3)^{-1}` (zero on the constants), :math:`c_2 =
  \overline{w/p}`, :math:`c_3 = \bar w`, from :math:`L_w \approx T A T`.
* ``"metric"``: preconditioned CG with the run's metric :math:`M(p)` (the wavelet
  combined metric of Ying 2021 by default, an approximate inverse of
  :math:`\nabla^2_p E`) transported to :math:`\varphi`: :math:`(\nabla^2_\varphi
  E)^{-1} = L_w^+ (\nabla^2_p E)^{-1} L_w^+ \approx S M(p) S`, :math:`S = T^{-1} A^+
  T^{-1} \approx L_w^+`.

The forcing term, the Fisher–Rao damping of steps the positivity rule would cut, the
revival of nearly empty cells by the metric's first-order step and the fallback to it
are those of :class:`densflow.newton.NewtonStep`.
"""

from functools import cached_property

import numpy as np

from .core.operators import dot, inverse_symbol, laplacian_symbol, weighted_laplacian
from .energies.terms import KL, Dirichlet
from .kernels import potential as PK
from .kernels import saddle as SK
from .kernels.fourier import FourierPair
from .metrics.natural import mass_fix
from .newton import NewtonStep
from .optim.result import INNER_HISTORIES
from .potential_pcg import multiplier, pcg
from .potential_settings import (DIRECT_FORMS, DIRECT_MAX_N, PRECONDITIONERS, SADDLE,
                                 START_RTOL, PotentialNewton, applies, choose_preconditioner,
                                 direct_form, hminus1_terms)
from .potential_start import PotentialLines

__all__ = ["PotentialNewton", "PotentialNewtonStep", "PotentialLines", "PRECONDITIONERS",
           "DIRECT_FORMS", "DIRECT_MAX_N", "SADDLE", "START_RTOL", "applies",
           "choose_preconditioner"]


#: The 2D Fourier preconditioner applies its FFT pair in float32 (on ``t / max|t|``;
#: CG's vectors and inner products stay float64) when the weight's contrast
#: ``max w / min w`` and, with a KL term, that of ``w / p`` are at most this: the
#: float32 pair costs about half the float64 one, and its rounding (1e-7 of the
#: largest entries) is far below the forcing terms (1e-2 to 1e-4) the Newton solves
#: stop at. Where ``w / p`` spans more (nearly empty cells: a bump with a floor of 1e-6
#: of its maximum), CG runs into its cap and the float32 rounding changed the truncated
#: iterate enough to take 46 outer steps instead of 10 (2D 64², weights (1, 3e-4, 1e-4)).
MIXED_CONTRAST = 1e4
MIXED = True

#: The Laplacian's symbol of the last grid (made once, not once per run: 0.5 ms at
#: n = 65536 in 1D). Read only.
_SYMBOLS = {}

class PotentialNewtonStep(NewtonStep):
    """Newton directions computed in the potential (see the module docstring).

    Parameters are those of :class:`densflow.newton.NewtonStep`; ``settings`` may be a
    :class:`PotentialNewton` (a plain :class:`~densflow.newton.Newton` means
    ``preconditioner="auto"``). After each :meth:`direction`, :attr:`stats` holds the
    step's CG iterations, Hessian products (a direct solve counts one, for the
    Hessian it forms) and 0 inner iterations.
    """

    def __init__(self, energy, preconditioning, settings, tol=None):
        if not applies(energy):
            raise ValueError("method='newton_potential' needs an energy with an HMinus1 term "
                             "(several on one weight μ) on a periodic grid; use method='newton'")
        super().__init__(energy, preconditioning, settings, tol)
        self._fused = False
        h = hminus1_terms(energy)
        self.h_index = tuple(j for j, _, _ in h)
        self.a1 = float(sum(a for _, a, _ in h))
        grid = energy.grid
        self.n, self.dim = grid.n, grid.dim
        self.w = np.array(h[0][2].solver.mu, dtype=float)  # writable: one numba signature
        rest = [(a, t) for j, (a, t) in enumerate(energy.active_terms) if j not in self.h_index]
        self.standard = all(type(t) in (KL, Dirichlet) for _, t in rest)
        self.rest = rest
        self.a2 = float(sum(a for a, t in rest if type(t) is KL))
        self.a3 = float(sum(a for a, t in rest if type(t) is Dirichlet))
        kind = getattr(settings, "preconditioner", "auto")
        self.kind = choose_preconditioner(energy) if kind == "auto" else kind
        if self.kind in ("direct", "saddle") and not (self.dim == 1 and self.standard):
            raise ValueError(f"PotentialNewton preconditioner={self.kind!r} needs a 1D energy "
                             "of HMinus1, KL and Dirichlet terms")
        #: the direct solve's form, as resolved (:func:`direct_form`)
        self.form = direct_form(getattr(settings, "direct_form", "auto"), self.kind)
        self.saddle = self.kind in ("direct", "saddle") and self.form == "saddle"
        #: whether the Fourier preconditioner's FFT pair runs in float32 (2D, see
        #: :data:`MIXED_CONTRAST`; in 1D the multiplier spans far more, :math:`(4n^2)^3`
        #: with a Dirichlet term, and float32 pairs took 939 outer steps instead of 3 at
        #: n = 65536, weights (1, 1e-3, 1e-4))
        self.mixed = (self.dim == 2 and MIXED and
                      float(self.w.max() / self.w.min()) <= MIXED_CONTRAST)
        self.hint = None
        self._diag_key = self._diag_value = None
        self._symbol = self._start_inverse = None
        self._pairs = {}

    # the work arrays, made at their first use (a 1D direct run needs none of them)
    _scale = cached_property(lambda self: 1.0 / np.sqrt(self.w))
    _mean_w = cached_property(lambda self: float(np.mean(self.w)))
    _ones = cached_property(lambda self: np.ones(self.w.shape))
    _row = cached_property(lambda self: np.empty(self.n))

    @cached_property
    def _work(self):
        """``(u, m, hd)`` of the Hessian product: in 2D ``u`` and ``m`` are the row rings
        of :func:`~densflow.kernels.potential.hessian_rows_2d`, in 1D whole arrays."""
        if self.dim == 2:
            u, m = np.empty((PK.U_ROWS, self.n)), np.empty((PK.M_ROWS, self.n))
        else:
            u, m = np.empty(self.n), np.empty(self.n)
        return u, m, np.empty(self.w.shape)

    #: the saddle-point solve's :class:`~densflow.kernels.saddle.Workspace`
    saddle_work = cached_property(lambda self: SK.Workspace(self.n))

    def _lw(self, x):
        """:math:`L_w x` (2D: the vectorised row kernel, the same arithmetic)."""
        out = np.empty(x.shape)
        (PK.wlap_2d if self.dim == 2 else PK.wlap_1d)(
            np.ascontiguousarray(x, dtype=float), self.w, self.n, out)
        return out

    # -- the Hessian and its solves ---------------------------------------------------
    def _diag(self, p, nu):
        """The rest's diagonal :math:`(\\alpha_2 + \\nu)/p` (standard terms), kept for
        the last ``(p, nu)`` within one :meth:`solve` (not one per product)."""
        a = self.a2 + nu
        if a <= 0:
            return self._ones
        key = self._diag_key
        if key is not None and key[0] is p and key[1] == nu:
            return self._diag_value
        value = np.empty(p.shape)
        PK.curvature_diagonal(np.ascontiguousarray(p).reshape(-1), a, value.reshape(-1))
        self._diag_key, self._diag_value = (p, nu), value
        return value

    def hessian_product(self, p, v, nu=0.0):
        r""":math:`\nabla^2_\varphi E\, v = \alpha_1 L_w v + L_w (\nabla^2_p E_{\rm rest}
        + \nu\operatorname{diag}(1/p)) L_w v`; returns ``(product, v.product)``."""
        v = np.ascontiguousarray(v, dtype=float)
        out = np.empty_like(v)
        if self.standard:
            a = self.a2 + nu
            u, wk, _ = self._work
            if self.dim == 2:  # row passes (vectorised)
                curvature = PK.hessian_rows_2d(v, self.w, self._diag(p, nu), a > 0, self.a1,
                                               self.a3, self.n, u, self._row, wk, out)
            else:
                curvature = PK.hessian_lines_1d(v, self.w, self._diag(p, nu), a > 0, self.a1,
                                                self.a3, self.n, u, wk, out)
            return out, curvature
        u = weighted_laplacian(v, self.w, self.n)
        mid = np.zeros_like(v)
        for a, t in self.rest:
            mid += a * t.hessian_product(p, u)
        if nu > 0:
            mid += nu * u / np.maximum(p, 1e-300)
        out = weighted_laplacian(mid, self.w, self.n) + self.a1 * u
        return out, dot(v, out)

    def fourier_pair(self, dtype):
        """The step's :class:`~densflow.kernels.fourier.FourierPair` of ``dtype``."""
        pair = self._pairs.get(np.dtype(dtype))
        if pair is None:
            pair = self._pairs[np.dtype(dtype)] = FourierPair(self.w.shape, dtype)
        return pair

    def start_inverse(self):
        """:math:`A^+`'s symbol for the start's solve (float32 where the step's FFT
        pairs are, :attr:`mixed`)."""
        if self._start_inverse is None:
            inv = inverse_symbol(self._laplacian_symbol())
            self._start_inverse = inv.astype(np.float32) if self.mixed else inv
        return self._start_inverse

    def _laplacian_symbol(self):
        """The Laplacian's Fourier symbol (made at the first Fourier solve)."""
        if self._symbol is None:
            key = (self.n, self.dim)
            if key not in _SYMBOLS:
                _SYMBOLS.clear()  # keep one: grids of a run share it
                _SYMBOLS[key] = laplacian_symbol(self.n, self.dim)
            self._symbol = _SYMBOLS[key]
        return self._symbol

    def _ratio(self, p):
        """``(mild, mean)``: whether :math:`w/p` spans at most :data:`MIXED_CONTRAST`
        (float32 FFTs; always without a KL term) and its mean (``None`` without KL),
        in one pass."""
        if self.a2 <= 0:
            return True, None
        lo, hi, mean = PK.ratio_stats(self.w.reshape(-1), np.ascontiguousarray(p).reshape(-1))
        return hi <= MIXED_CONTRAST * lo, mean

    def _mild(self, p):
        """Whether :math:`w/p` spans at most :data:`MIXED_CONTRAST` (float32 FFTs)."""
        return self._ratio(p)[0]

    def _multiplier(self, p, nu, mean_ratio=None):
        r"""The Fourier preconditioner's multiplier :math:`F` at ``p`` (``mean_ratio``:
        :math:`\overline{w/p}` when known)."""
        return multiplier(self, p, nu, mean_ratio)

    def solve(self, p, b, gap=None, nu=0.0):
        r"""An approximate :math:`\delta` with :math:`\nabla^2_\varphi E\,\delta = b`
        (``b`` of zero mean), by the step's linear solver; counts go to :attr:`stats`."""
        self._diag_key = None  # the diagonal is kept within one solve only
        if self.kind == "direct":
            band = PK.potential_hessian_band(self.w, self._diag(p, nu) if self.a2 + nu > 0
                                             else np.zeros_like(p), self.a1, self.a3, self.n)
            out = np.empty_like(b)
            self.stats["hessian_products"] += 1
            if PK.cyclic_band_solve(band, b - b.mean(), out):
                return out
            # a failed pivot (rounding at extreme conditioning): preconditioned CG instead
        return self._pcg(p, b, gap, nu)

    def _pcg(self, p, b, gap, nu):
        return pcg(self, p, b, gap, nu)

    def _uncut(self, p, x):
        """Whether the density step of the potential step ``x`` keeps ``p > 0`` (the
        fraction-to-the-boundary rule leaves it whole)."""
        s = self._lw(x)
        return self.first_step(p, s - s.mean(), 1.0) >= 1.0

    def forcing(self, decrement, gap):
        r""":math:`\eta_k = \max(\min(\eta_{\max}, \sqrt{\text{decrement}}),
        \min(\eta_{\rm floor}, \eta_{\rm last}))`: the floor
        :math:`\sqrt{\tau/(10(E_k - E_{\min}))}` (a step that ends below ``tol`` needs
        no more) may exceed ``forcing_max`` up to ``forcing_last``."""
        eta = min(self.settings.forcing_max, np.sqrt(max(decrement, 0.0)))
        return max(eta, min(self._floor(gap), getattr(self.settings, "forcing_last", 0.0)))

    # -- the step ---------------------------------------------------------------------
    def _step(self, p, b, gap, nu, g):
        delta = self._saddle(p, g, nu) if self.saddle else None
        if delta is None:  # (or a failed pivot of the saddle solve: the band, else PCG)
            delta = self.solve(p, b, gap, nu)
        s = self._lw(delta)
        return mass_fix(s), delta - delta.mean()

    def _saddle(self, p, g, nu):
        r""":math:`\delta` by the saddle-point solve (:mod:`densflow.kernels.saddle`; one
        Hessian counted; the workspace's array), ``None`` at a failed pivot."""
        self.stats["hessian_products"] += 1
        a = self.a2 + nu
        return self.saddle_work.solve(p if a > 0 else np.zeros(self.n), a, self.w, self.a1,
                                        self.a3, g)

    def direction(self, p, g, gap=None):
        r"""The descent direction :math:`s = L_w\delta` (the loop steps to :math:`p - t s`),
        with the safeguards of :meth:`densflow.newton.NewtonStep.direction`."""
        self.stats = dict.fromkeys(INNER_HISTORIES, 0)
        self.newton_direction = False
        self.hint = None
        if self.has_kl and p.min() * p.size < self.settings.revive_below:
            return self.inner.direction(p, g)  # nearly empty cells: the metric's step
        self.newton_direction = True
        b = self._lw(g)
        s, hs = self._step(p, b, gap, 0.0, g)
        if self.has_kl:
            alpha2, nu = self.energy.weights["fisher_rao"], 0.0
            for _ in range(self.settings.damping_tries):
                t_max = self.first_step(p, s, 1.0)
                if t_max >= self.settings.damping_below:
                    break
                nu = (nu + alpha2) / t_max - alpha2
                s, hs = self._step(p, b, gap, nu, g)
        self.hint = (s, hs)
        return s

    def fallback(self, p, g):
        self.hint = None
        return super().fallback(p, g)

    def fallback_ready(self):
        """Whether the last direction was a Newton step (the loop then tries the
        metric's step when no step along it is accepted)."""
        return self.newton_direction and self.stats["hessian_products"] > 0
