r"""Time-accurate gradient flows of grid densities: :func:`flow` (:ref:`flows`).

The flow :math:`\dot p = -M(p)\nabla F(p)` in the Wasserstein, Fisher–Rao or
Mahalanobis metric is integrated by implicit steps (:mod:`densflow.flows.schemes`),
each a proximal problem solved by Newton–Krylov in the potential variables
(:mod:`densflow.flows.step`), in the loop of :mod:`densflow.flows.integrator` (step
sizes, error estimates, saving). This module checks the arguments and attaches the
HDF5 recording.
"""

import math
import numbers
import time

import numpy as np

from ..core.validation import check_positive_int
from .integrator import Integration
from .proximal import COMBINED_REFUSAL, FLOW_METRICS, MOBILITIES
from .recording import FlowRecording, RecordedFrames, open_flow_record, setup_attributes
from .result import FlowResult, Frames
from .schemes import SCHEMES
from .step import FlowNewton

__all__ = ["flow", "FlowResult", "FlowNewton"]

#: Default tolerances of adaptive steps (``rtol`` relative, ``atol`` in units of the
#: continuum density :math:`\rho = Np`, whose mean is 1).
DEFAULT_RTOL, DEFAULT_ATOL = 1e-3, 1e-6
#: Default memory budget of the saved densities, bytes.
MAX_MEMORY = 256 * 2**20


def _check_real(value, name, low=None, strict=True, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low:g}, got {value!r}")
    return value


def _check_energy(energy):
    for attr in ("evaluate", "hessian_product", "grid"):
        if not hasattr(energy, attr):
            raise TypeError(f"energy must be a densflow energy or term (evaluate, hessian_product, "
                            f"grid), got {type(energy).__name__} without {attr!r}")
    if hasattr(energy, "check_weights"):
        energy.check_weights()
    return energy


def _check_save_times(save_times, t0, t_end):
    if save_times is None:
        return []
    arr = np.asarray(save_times, dtype=float).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError("save_times must be finite")
    if np.any(np.diff(arr) <= 0):
        raise ValueError("save_times must be strictly increasing")
    if arr.size and (arr[0] < t0 or arr[-1] > t_end):
        raise ValueError(f"save_times must lie in [t0, t_end] = [{t0:g}, {t_end:g}], "
                         f"got [{arr[0]:g}, {arr[-1]:g}]")
    return [float(v) for v in arr]


def flow(energy, p0, t_end, metric="wasserstein", dt=None, scheme="bdf2", rtol=None, atol=None,
         save_every=None, save_times=None, mobility="arithmetic", t0=0.0, max_steps=100_000,
         newton=None, on_step=None, max_memory=MAX_MEMORY, out=None, resume=False,
         overwrite=False):
    r"""Integrate the gradient flow :math:`\dot p = -M(p)\nabla F(p)` from ``p0`` to ``t_end``.

    Parameters
    ----------
    energy : Energy or Term
        :math:`F`: anything with ``evaluate(p)`` (a state with ``value`` and
        ``gradient``), ``hessian_product(p, v)`` and ``grid``.
    p0 : ndarray
        Initial density (a positive probability vector of the grid's shape).
    t_end : float
        Final time (> ``t0``).
    metric : {"wasserstein", "fisher_rao", "mahalanobis"}
        Wasserstein: :math:`\partial_t\rho = \nabla\cdot(\rho\nabla\,\delta F/\delta\rho)`
        with centred edge mobilities; Fisher–Rao: :math:`\dot p = -p\,(g - \langle p,
        g\rangle)`; Mahalanobis: :math:`\dot p = -A^+ g`.
    dt : float or None
        Fixed step size (when ``rtol`` is ``None``), or the first step of adaptive steps.
    scheme : {"bdf2", "euler"}
        Second-order BDF2 (mobility at the extrapolated state) or first-order
        implicit Euler (energy non-increasing).
    rtol, atol : float or None
        Adaptive steps with these tolerances (``atol`` in units of :math:`\rho = Np`).
        Adaptive when ``rtol`` is given or ``dt`` is not (defaults 1e-3 and 1e-6).
    save_every : int or None
        Save the density every this many accepted steps (and the last one); the
        number of frames stays within ``max_memory`` by thinning.
    save_times : array_like or None
        Save the density at these times (steps land on them). Without either, the
        initial and the final densities are saved.
    mobility : {"arithmetic", "logarithmic"}
        Wasserstein: the mean of the two cells of an edge.
    t0 : float
        Initial time.
    max_steps : int
        Cap on accepted steps (reaching it returns ``converged=False``).
    newton : FlowNewton or None
        Settings of the Newton–Krylov solve of each step.
    on_step : callable or None
        ``on_step(k, t, p, info)`` after each accepted step (``info``: ``dt``,
        ``energy``, ``newton``, ``cg``, ``error``); a true return value stops the run.
    max_memory : int
        Bytes the saved densities may take.
    out : str, os.PathLike, FlowRecord or None
        Record the flow in an HDF5 run file (:mod:`densflow.flows.recording`): a path
        writes the group ``flow`` of a new file (an existing file is refused unless
        ``resume`` or ``overwrite``), ``Recorder.flow(name)`` writes that group. The
        trajectory, every saved density and, at most ``flush_interval`` seconds apart,
        a checkpoint of the integrator's state are written as the flow runs.
    resume : bool
        With ``out``: continue the recorded flow from its last checkpoint (return the
        stored result if it is complete; start afresh if there is no checkpoint). The
        result is bit-identical to an uninterrupted run's. Any change of the setup
        (energy, p0, metric, scheme, tolerances, steps, saving, Newton settings) is
        refused with :class:`densflow.io.recorder.ResumeError`.
    overwrite : bool
        With a path as ``out``: replace an existing file (never one that another
        process has open).

    Returns
    -------
    FlowResult
        Numerical failures (a step that fails after :data:`MAX_CUTS` step-size cuts)
        are reported there (``failed=True``), not raised.
    """
    start = time.perf_counter()
    energy = _check_energy(energy)
    grid = energy.grid
    p0 = grid.check_density(p0, name="p0").copy()
    t0 = _check_real(t0, "t0")
    t_end = _check_real(t_end, "t_end")
    if not t_end > t0:
        raise ValueError(f"t_end must be > t0 = {t0:g}, got {t_end!r}")
    if metric == "combined":
        raise ValueError(COMBINED_REFUSAL)
    if metric not in FLOW_METRICS:
        raise ValueError(f"metric must be one of {FLOW_METRICS}, got {metric!r}")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if mobility not in MOBILITIES:
        raise ValueError(f"mobility must be one of {MOBILITIES}, got {mobility!r}")
    dt = _check_real(dt, "dt", low=0.0, allow_none=True)
    rtol = _check_real(rtol, "rtol", low=0.0, allow_none=True)
    atol = _check_real(atol, "atol", low=0.0, strict=False, allow_none=True)
    adaptive = rtol is not None or dt is None
    if adaptive:
        rtol = DEFAULT_RTOL if rtol is None else rtol
        atol = DEFAULT_ATOL if atol is None else atol
        if atol == 0 and rtol == 0:
            raise ValueError("rtol and atol cannot both be 0")
    elif atol is not None:
        raise ValueError("atol needs adaptive steps: give rtol too (or no dt)")
    if save_every is not None and save_times is not None:
        raise ValueError("give save_every or save_times, not both")
    if save_every is not None:
        save_every = check_positive_int(save_every, "save_every")
    save_times = _check_save_times(save_times, t0, t_end)
    max_steps = check_positive_int(max_steps, "max_steps")
    max_memory = check_positive_int(max_memory, "max_memory")
    settings = FlowNewton() if newton is None else newton
    if not isinstance(settings, FlowNewton):
        raise TypeError(f"newton must be a densflow.flows.FlowNewton, got {type(newton).__name__}")
    if on_step is not None and not callable(on_step):
        raise TypeError(f"on_step must be callable, got {type(on_step).__name__}")
    capacity = max(2, max_memory // (8 * grid.size))
    if len(save_times) > capacity:
        raise ValueError(f"save_times asks for {len(save_times)} densities of {grid.size} cells "
                         f"({8 * grid.size * len(save_times) / 2**20:.0f} MB), above max_memory "
                         f"= {max_memory} bytes")

    record, owned = open_flow_record(out, resume, overwrite)
    run = Integration(energy, grid, metric, scheme, mobility, adaptive, rtol, atol, settings)
    if record is None:
        frames = Frames(save_every, capacity)
        return run.integrate(p0, t0, t_end, dt, save_times, frames, max_steps, on_step, start)
    setup = setup_attributes(energy, grid, metric, scheme, mobility, adaptive, rtol, atol, dt, t0,
                             t_end, max_steps, save_every, save_times, max_memory, settings)
    recording = FlowRecording(record, setup, getattr(energy, "mu", None), resume, save_every,
                              capacity)
    try:
        return run.integrate(p0, t0, t_end, dt, save_times, RecordedFrames(save_every, capacity),
                             max_steps, on_step, start, recording)
    except BaseException as exc:
        record.fail(exc)
        raise
    finally:
        if owned is not None:
            owned.close()
