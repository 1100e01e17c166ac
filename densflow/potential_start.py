r"""The energy as Newton in the potential shows it to the loop (:class:`PotentialLines`:
its lines along a Newton step know :math:`L_w^+ s`) and where the run starts.

In 2D the only :math:`L_w^+` solve a run of ``method="newton_potential"`` needs is the
start's potential; its Hessian products, directions and lines are stencils and the
:math:`H^{-1}` part of the gradient is updated exactly along each step. Solving that
first system to 1e-13 took about half of the FFTs of a whole solve (2D 256², paper's
μ: 12 of 23 FFT pairs). Instead the run starts from the density whose potential a
loose solve gives:

.. math::

    L_w\tilde\varphi_0 \approx p_0 - w \ \text{(relative residual } \epsilon\text{)},
    \qquad \tilde p_0 = w + L_w\tilde\varphi_0 ,

a probability vector (:math:`\mathbf 1^\top L_w = 0`) with :math:`\|\tilde p_0 - p_0\|
\le \epsilon \|p_0 - w\|`, at which the :math:`H^{-1}` term is known exactly,
:math:`\nabla E_1(\tilde p_0) = \tilde\varphi_0` and :math:`E_1(\tilde p_0) = \tfrac12
(\tilde p_0 - w)^\top \tilde\varphi_0` (up to rounding). :math:`\tilde p_0` must hold at
least :data:`START_FACTOR` of :math:`p_0` in every cell (so it is positive); else the
solve is tightened by 1e-3 at a time and below 1e-12 the run starts from :math:`p_0`
with the energy's own evaluation.

The solve is PCG on :math:`L_w` with :math:`T^{-1}A^+T^{-1}`, :math:`T = w^{1/2}`
(:mod:`densflow.kernels.cg`'s fused vector work, the vectorised :math:`L_w` of
:func:`densflow.kernels.potential.wlap_cg_update`), the FFT pair in float32 where
:math:`\max w/\min w \le` :data:`densflow.potential_newton.MIXED_CONTRAST` (its
rounding, 1e-7, is far below the loose tolerance).

``start_rtol`` (:data:`START_RTOL` = 1e-2 by default) was measured against 0 (the
1e-13 solve) and 1e-3 (``benchmarks/newton_settings.py``, one process, interleaved, min
of 3; outer steps unchanged): 2D 256² paper weights 25.1 → 19.7 ms (1e-3: 19.8); 512²
121 → 94 ms (100); high contrast 256² from the uniform start 116 → 89 ms (88), from the
bump 225 → 205 ms (204).
"""

import numpy as np

from .core.operators import dot
from .core.state import State
from .energies.base import EnergyView
from .kernels import cg as CG
from .kernels import potential as PK

__all__ = ["START_RTOL", "START_FACTOR", "TIGHTEST", "loose_potential", "start_state",
           "PotentialLines"]

#: The default ``PotentialNewton.start_rtol`` (measured: docs :ref:`newton-potential`).
START_RTOL = 1e-2
#: :math:`\tilde p_0 \ge` ``START_FACTOR`` :math:`p_0` in every cell, or the solve is tightened.
START_FACTOR = 0.5
#: Below this tolerance the run starts from :math:`p_0` itself.
TIGHTEST = 1e-12


def loose_potential(r, w, n, rtol, scale, inverse, pair, maxiter=500):
    r"""The zero-mean :math:`\varphi` with :math:`\|L_w\varphi - r\| \le` ``rtol``
    :math:`\|r\|` (``r`` of zero mean, 2D), or ``None`` when ``maxiter`` PCG iterations
    do not reach it. ``scale``: :math:`w^{-1/2}`; ``inverse``: :math:`A^+`'s symbol,
    float32 for the FFT pair in float32; ``pair``: the
    :class:`~densflow.kernels.fourier.FourierPair` of its dtype."""
    rnorm0 = np.sqrt(dot(r, r))
    x = np.zeros_like(r)
    if rnorm0 == 0.0:
        return x
    res = np.array(r, dtype=float)
    d, ld = np.empty_like(r), np.empty_like(r)
    t = (scale * (res / rnorm0)).astype(inverse.dtype)
    rho = rnorm0
    rz = CG.cg_direction(pair(t, inverse), scale, res, d, 1.0, True, rho)
    for _ in range(maxiter):
        rr, _ = PK.wlap_cg_update(x, res, d, ld, w, n, rz, scale, t, 1.0 / rho)
        if np.sqrt(rr) <= rtol * rnorm0:
            return x - x.mean()
        rz = CG.cg_direction(pair(t, inverse), scale, res, d, rz, False, rho)
        if not np.isfinite(rz):
            return None
        rho = np.sqrt(rr)
    return None


def start_state(energy, step, p0, rtol):
    r"""The :class:`~densflow.core.state.State` of ``energy`` at :math:`\tilde p_0`
    (module docstring); ``step``: the run's
    :class:`~densflow.potential_newton.PotentialNewtonStep` (its weight :math:`w`, the
    indices of the :math:`H^{-1}` terms in ``energy.active_terms``, its FFT pairs)."""
    w, n, h_index = step.w, step.n, step.h_index
    inverse = step.start_inverse()
    pair = step.fourier_pair(inverse.dtype)
    r = p0 - w
    r -= r.mean()
    while rtol >= TIGHTEST:
        u = loose_potential(r, w, n, rtol, step._scale, inverse, pair)
        if u is not None:
            q = w + step._lw(u)
            if np.all(q >= START_FACTOR * p0):
                value = 0.5 * dot(q - w, u)
                parts = [State(q, value, u) if j in h_index else t.evaluate(q)
                         for j, (_, t) in enumerate(energy.active_terms)]
                return energy._combine(q, parts)
        rtol *= 1e-3
    return energy.evaluate(p0)


class PotentialLines(EnergyView):
    """The energy as the loop sees it under :class:`PotentialNewtonStep`: its lines
    along the step's last Newton direction take :math:`L_w^+ s` from the step instead
    of solving for it; everything else is the energy's."""

    def __init__(self, energy, step):
        super().__init__(energy)
        self.step = step

    def line(self, state, s, positive=True):
        hint = self.step.hint
        known = None
        if hint is not None and hint[0] is s:
            known = {j: hint[1] for j in self.step.h_index}
        return self.energy.line(state, s, positive=positive, known=known)

    @property
    def loose_start(self):
        """Whether :meth:`start` solves loosely (2D, where :math:`L_w^+` is an iterative
        solve, and ``start_rtol > 0``)."""
        return self.step.dim == 2 and getattr(self.step.settings, "start_rtol", 0.0) > 0

    def start(self, p0):
        r"""The :class:`~densflow.core.state.State` the run starts from: in 2D at
        :math:`\tilde p_0 = w + L_w\tilde\varphi_0`, :math:`L_w\tilde\varphi_0 \approx
        p_0 - w` to the relative residual ``start_rtol``
        (:func:`densflow.potential_start.start_state`); the :math:`H^{-1}` part is
        exact there without a solve, and the steps keep it exact. It depends on
        :math:`p_0` alone, so a run resumed at iteration 0 (its snapshot 0 is
        :math:`p_0`) starts identically."""
        if not self.loose_start:
            return self.energy.evaluate(p0)
        return start_state(self.energy, self.step, p0, float(self.step.settings.start_rtol))
