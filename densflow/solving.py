r"""Minimisation of an energy or a problem of any registered kind: :func:`solve`.

:func:`solve` checks the arguments every kind shares, finds the kind of its first
argument in the registry of :mod:`densflow.optim.kinds` (grid energies:
:mod:`densflow.gridproblem`; parametric problems: :mod:`densflow.parametric.problem`),
opens the run file, and runs the loop of :mod:`densflow.optim.loop` on what the kind
prepared, reporting the kind's numerical failures as results.

The grid method (:ref:`stepping`): at :math:`p_k`, :math:`g = \nabla E(p_k)`,
:math:`s = M(p_k)(g - c\mathbf 1)` from the metric (or a Newton–Krylov direction
preconditioned by it), then starting from :math:`\eta = \eta_0` halve :math:`\eta` until

.. math:: E(p_k - \eta s) - E(p_k) \le -c_1\,\eta\, s\cdot g ,

and set :math:`p_{k+1} = p_k - \eta s`. :math:`E = +\infty` outside the positive
orthant, so every accepted step keeps :math:`p > 0`.
"""

import os
import time

from .optim import kinds as _kinds
from .optim.failure import Trace, failure_fields
from .optim.linesearch import Armijo, FixedStep
from .optim.loop import descend, guarded
from .optim.result import INNER_HISTORIES, SolveResult

__all__ = ["solve", "SolveResult", "Armijo", "FixedStep", "INNER_HISTORIES"]


def solve(energy, p0, metric="combined", tol=1e-12, gtol=None, max_iter=1000,
          line_search=None, callback=None, out=None, resume=False, safeguard=0.1,
          method=None, newton=None, overwrite=False):
    r"""Minimise ``energy`` over probability vectors by natural-gradient descent.

    Parameters
    ----------
    energy : Energy or Term
        The energy, e.g. ``1.0 * HMinus1(grid, mu) + 1e-3 * KL(grid, mu)``.
    p0 : ndarray
        Initial density: a positive probability vector of the grid's shape.
    metric : str or Metric
        ``"wasserstein"``, ``"fisher_rao"``, ``"mahalanobis"``, ``"combined"`` or a
        :class:`densflow.metrics.Metric` object such as ``Combined(wavelet="db6")``.
    tol : float or None
        Stop when :math:`E(p_k) - E_{\min} \le` ``tol`` when the energy knows its
        minimum value (all terms share μ, :math:`E_{\min} = 0`); otherwise (free
        energies, :ref:`free-energies`) when the energy change a full step predicts,
        relative to the energy, is small: :math:`s\cdot g / \max(1, |E_k|) \le` ``tol``.
    gtol : float or None
        Stop when the natural-gradient decrement :math:`s\cdot g \le` ``gtol``.
    max_iter : int
        Cap on the number of steps; reaching it returns ``converged=False``.
    line_search : Armijo or None
        Line-search settings; the paper's (``eta0=1``, halving, ``c1=1/2``) by default.
    callback : callable or None
        Called after every accepted step as ``callback(k, p, value, step, decrement)``;
        a true return value stops the run (``converged=False``, message says so).
    out : str, os.PathLike, RunRecord or None
        Record the run in an HDF5 run file (:mod:`densflow.io.recorder`): a path writes
        the group ``run`` of a new file (an existing file is refused unless
        ``resume`` or ``overwrite``, as ``densflow run`` does), a
        :class:`densflow.io.recorder.RunRecord` from
        ``Recorder.run(name)`` writes that group. The state is re-evaluated
        from the density at every snapshot iteration (every 10 without a recorder),
        exactly as a resumed run does at its start, so recorded, unrecorded and resumed
        runs with the default ``snapshot_every = 10`` follow the same arithmetic.
    resume : bool
        With ``out``: continue the recorded run from its last snapshot (return the
        stored result if it is complete; start afresh if nothing is recorded). The
        recorded setup must match this call's, else
        :class:`densflow.io.recorder.ResumeError` (a ``ValueError``).
    overwrite : bool
        With a path as ``out``: replace an existing file (never one that another
        process has open). Without it, and without ``resume``, an existing file is
        refused with :class:`densflow.io.recorder.RunFileError`.
    safeguard : float or None
        ``τ`` in (0, 1]: wrap the metric in :class:`densflow.metrics.Safeguard` with
        floor :math:`\delta = τ/N` (default 0.1), which changes nothing while
        :math:`p \ge \delta` and makes rough and nearly vanishing densities converge;
        energies without a KL term are then evaluated outside the positive orthant too
        (they are quadratics). ``None``: the paper's plain method (metric at ``p``,
        :math:`E = +\infty` outside the positive orthant for every energy).
    method : {"auto", "newton_potential", "newton", "gradient"} or None
        ``None``: ``"auto"`` for grid energies (:data:`DEFAULT_METHOD`), ``"gradient"``
        for parametric problems. ``"gradient"``: the paper's step
        :math:`s = \tilde M(p)(g - c\mathbf 1)`. ``"newton"``: Newton–Krylov steps in
        the density, the Newton system solved by conjugate gradients preconditioned by
        the metric (:mod:`densflow.newton`). ``"newton_potential"``: the same Newton
        steps computed in the potential :math:`\varphi`, :math:`p = \mu + L_\mu\varphi`
        (energies with an H⁻¹ term; :mod:`densflow.potential_newton`).
        ``"auto"``: ``"newton_potential"`` where it applies, else ``"newton"``. The
        Newton methods' line search defaults to ``Armijo(c1=1e-4)``.
    newton : densflow.newton.Newton or None
        Settings of the Newton methods (forcing, caps, boundary rule, damping;
        :class:`densflow.potential_newton.PotentialNewton` adds the linear solver).

    Returns
    -------
    SolveResult
        With ``info["resumed_from"]``, the iteration a resumed run continued from
        (-1 otherwise), ``info["method"]``, and per step ``cg_iterations``,
        ``hessian_products`` and ``inner_iterations`` (the 2D :math:`L_\mu^+` CG
        iterations inside the Hessian products; all zero for the gradient method).

    Notes
    -----
    ``energy`` may also be a parametric problem (:class:`densflow.parametric.Problem`, or
    one of :mod:`densflow.parametric.flows`: MonoFlow particles, the Bures–Wasserstein
    flow, a GAN's Algorithm 1) and ``p0`` its initial parameters ``theta0``: ``metric`` is
    then a parametric metric (a name in :data:`densflow.parametric.metrics.NAMES` or an
    object), the line search re-evaluates the loss at :math:`\theta - \eta s` on the
    iterate's batch, ``line_search`` may also be a :class:`FixedStep` or a
    :class:`densflow.parametric.TrustRegion` (SiNG's eq. (11)), ``safeguard`` does not
    apply (it is ignored), ``out``/``resume`` record the run like a grid run (the
    snapshots hold ``theta``; see :mod:`densflow.parametric.problem`), and a failed inner
    solve (conjugate gradients, Sinkhorn) ends the run with a message instead of raising.
    """
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if resume and out is None:
        raise ValueError("resume=True needs out= (the run file to continue)")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if overwrite and resume:
        raise ValueError("overwrite=True and resume=True exclude each other: resume continues "
                         "the file, overwrite replaces it")
    prepare = _kinds.lookup(energy)
    if prepare is None:
        raise TypeError(f"energy must be a densflow Energy or term, got {type(energy).__name__} "
                        f"(the registered kinds: {', '.join(_kinds.kinds())})")
    start = time.perf_counter()
    bound = prepare(energy, p0, metric=metric, line_search=line_search, tol=tol, gtol=gtol,
                    max_iter=max_iter, safeguard=safeguard, method=method,
                    newton=newton)
    record, owned = _open_record(out, resume, overwrite)
    trace = Trace(callback)
    return guarded(
        record, owned, bound.failures,
        lambda: descend(bound, tol, gtol, bound.max_iter, trace, record, resume, start),
        lambda exc: failure_fields(exc, trace, record, bound.problem, bound.x0, bound.metric,
                                   time.perf_counter() - start, bound.failures))


def _open_record(out, resume, overwrite=False):
    """Return ``(record, recorder_to_close)`` for the ``out`` argument of :func:`solve`."""
    if out is None:
        return None, None
    from .io.h5io import check_target
    from .io.recorder import Recorder, RunFileError, RunRecord

    if isinstance(out, RunRecord):
        return out, None
    if isinstance(out, (str, os.PathLike)):
        check_target(out)
        if not resume and not overwrite and os.path.exists(out):
            raise RunFileError(f"out={os.fspath(out)!r} exists; pass resume=True to continue it "
                               "or overwrite=True to replace it")
        recorder = Recorder(out, mode="a" if resume else ("w" if overwrite else "x"))
        return recorder.run("run"), recorder
    raise TypeError(f"out must be a path, a densflow.io.recorder.RunRecord or None, "
                    f"got {type(out).__name__}")
