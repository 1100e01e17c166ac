"""The settings of Newton in the potential (:class:`PotentialNewton`, ``solve(...,
method="newton_potential", newton=...)``; the method is :mod:`densflow.potential_newton`)."""

import numbers
from dataclasses import dataclass

import numpy as np

from .energies.terms import KL, Dirichlet, HMinus1
from .newton import Newton
from .potential_start import START_RTOL

__all__ = ["PotentialNewton", "PRECONDITIONERS", "DIRECT_FORMS", "START_RTOL", "DIRECT_MAX_N",
           "SADDLE", "applies", "choose_preconditioner", "direct_form"]

#: Linear solvers of the Newton system in the potential (``"auto"`` chooses).
PRECONDITIONERS = ("auto", "direct", "saddle", "fourier", "metric")

#: Forms of the direct 1D solve (``PotentialNewton.direct_form``; ``"auto"`` chooses).
DIRECT_FORMS = ("auto", "saddle", "band")


def hminus1_terms(energy):
    """``[(index, weight, term)]`` of the energy's :math:`H^{-1}` terms."""
    return [(j, a, t) for j, (a, t) in enumerate(energy.active_terms) if isinstance(t, HMinus1)]


def applies(energy):
    """Whether the energy has an :math:`H^{-1}` term (all of them on one weight), the
    condition of ``method="newton_potential"``, on a periodic grid (its stencils and
    Fourier preconditioner are the torus's)."""
    if getattr(energy.grid, "boundary", "periodic") != "periodic":
        return False
    h = hminus1_terms(energy)
    return bool(h) and all(np.array_equal(h[0][2].solver.mu, t.solver.mu) for _, _, t in h[1:])


#: 1D grids up to this size solve the Newton system directly. The Hessian in the
#: potential carries :math:`L_w` twice, so its condition number grows like
#: :math:`n^6` with a Dirichlet term; measured on the paper's 1D panels, the banded
#: Cholesky keeps Newton's iteration counts up to n = 2048, costs an extra outer step
#: at 4096 (weights (1, 0, 1e-4)), three at 8192 and fails its pivots at 16384.
DIRECT_MAX_N = 2048

#: 1D grids above :data:`DIRECT_MAX_N` solve the Newton system directly in its
#: saddle-point form (:mod:`densflow.kernels.saddle`: :math:`2\times 2` pivots in
#: :math:`(s, \delta)`, whose entries are those of :math:`X` and :math:`L_w`, not of their
#: products), with or without a KL term; ``False``: the Fourier-preconditioned CG.
SADDLE = True


def choose_preconditioner(energy):
    """``"direct"`` in 1D up to :data:`DIRECT_MAX_N` points when the other terms are KL
    and Dirichlet (the exact Hessian is a band), ``"saddle"`` above that
    (:data:`SADDLE`), else ``"fourier"`` (measured faster than ``"metric"``: docs
    :ref:`newton-potential`)."""
    standard = all(type(t) in (HMinus1, KL, Dirichlet) for _, t in energy.active_terms)
    if energy.grid.dim == 1 and standard and 8 <= energy.grid.n <= DIRECT_MAX_N:
        return "direct"
    if SADDLE and energy.grid.dim == 1 and standard and energy.grid.n > DIRECT_MAX_N:
        return "saddle"
    return "fourier"


def direct_form(setting, kind):
    """The form of a direct 1D solve: ``"saddle"`` for ``kind="saddle"``; for
    ``kind="direct"`` the ``setting``, or with ``"auto"`` ``"saddle"`` (measured faster
    with and without a KL term, and exact where the band loses digits: docs
    :ref:`newton-potential`); the ``setting`` for the CG solvers (no direct solve)."""
    if kind == "saddle":
        return "saddle"
    if kind == "direct" and setting == "auto":
        return "saddle"
    return setting


@dataclass(frozen=True)
class PotentialNewton(Newton):
    r"""Settings of ``solve(..., method="newton_potential")``: those of
    :class:`densflow.newton.Newton` (``inner_factor`` is unused: there is no inner
    solve) and the linear solver.

    Parameters
    ----------
    preconditioner : {"auto", "direct", "saddle", "fourier", "metric"}
        How the Newton system is solved (module docstring); ``"auto"``:
        :func:`choose_preconditioner`.
    forcing_cut : float
        In (0, 1]. With a KL term, when CG meets its forcing term with an iterate whose
        density step the fraction-to-the-boundary rule would cut, it goes on to the
        relative residual ``forcing_cut`` (1: never). A loose step leaves out the KL
        curvature of the cells it would empty; measured on the 2D high-contrast bump
        start (outer steps, Hessian products): 128² 9, 230 → 5, 197; 256² 19, 664 →
        5, 200; the paper panels are unchanged (their steps are not cut), the uniform
        start 83 → 88 products. A fixed ``forcing_max = 1e-3`` gives the same steps
        with 214–215 products there, but 30 % more products on the paper panels.

    start_rtol : float
        In [0, 1). 2D: the relative residual of the one :math:`L_w^+` solve of the run,
        the start's potential :math:`\tilde\varphi_0` with :math:`L_w\tilde\varphi_0
        \approx p_0 - w`; the run starts from :math:`\tilde p_0 = w + L_w
        \tilde\varphi_0` (:meth:`PotentialLines.start`). 0: start from :math:`p_0`
        itself (its :math:`L_w^+` solved to the solver's 1e-13).
    forcing_last : float
        In (0, 1). The forcing term's floor :math:`\sqrt{\tau/(10(E_k - E_{\min}))}`
        (a step that ends below ``tol`` needs no more accuracy) may exceed
        ``forcing_max`` up to this value (:ref:`potential-start`).
    direct_form : {"auto", "saddle", "band"}
        How ``preconditioner="direct"`` solves: ``"saddle"`` the quasi-definite
        saddle-point system in :math:`(s, \delta)` (:mod:`densflow.kernels.saddle`),
        ``"band"`` the cyclic band of the :math:`\varphi`-space Hessian
        (:func:`densflow.kernels.potential.cyclic_band_solve`); ``"auto"``:
        :func:`direct_form`. Run files record the form used.

    ``damping_tries`` defaults to 0 here: the Fisher–Rao damping's extra solves cost
    more than they save in the potential (2D 128², high contrast, bump start: 9 outer
    steps with 426 Hessian products with 3 tries, 9 with 230 without).
    """

    damping_tries: int = 0
    preconditioner: str = "auto"
    forcing_cut: float = 1e-3
    start_rtol: float = START_RTOL
    forcing_last: float = 0.1
    direct_form: str = "auto"

    PRECONDITIONERS = PRECONDITIONERS

    def __post_init__(self):
        super().__post_init__()
        v = self.forcing_cut
        if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 < v <= 1):
            raise ValueError(f"PotentialNewton forcing_cut must lie in (0, 1], got {v!r}")
        v = self.start_rtol
        if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 <= v < 1):
            raise ValueError(f"PotentialNewton start_rtol must lie in [0, 1), got {v!r}")
        v = self.forcing_last
        if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 < v < 1):
            raise ValueError(f"PotentialNewton forcing_last must lie in (0, 1), got {v!r}")
        if self.direct_form not in DIRECT_FORMS:
            raise ValueError(f"PotentialNewton direct_form must be one of "
                             f"{', '.join(map(repr, DIRECT_FORMS))}, got {self.direct_form!r}")
