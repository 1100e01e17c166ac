r"""Recording a flow in an HDF5 run file and resuming it (``out=`` of :func:`densflow.flow`).

The file layout and its checkpoints are those of :mod:`densflow.io.flowrecord`. This
module describes a flow's setup for the file (what a resume must match), keeps the
saved densities in step with the file (:class:`RecordedFrames`) and turns a recorded
flow back into a :class:`~densflow.flows.FlowResult` (:func:`read_flow`).

A resumed flow restores the integrator's state at its last checkpoint — the last steps'
densities, potentials and gradients, the next step size, the previous error estimate,
the counters — bit for bit, so it ends exactly as a run never interrupted; recording
changes no arithmetic, so a recorded and an unrecorded flow are equal too.
"""

import dataclasses
import hashlib
import numbers
import os

import numpy as np

from ..io.flowrecord import FlowRecord
from ..io.h5io import RunFileError
from ..io.runfile import read_flows
from ..io.runrecord import string_array
from .result import FlowResult, Frames

__all__ = ["RecordedFrames", "FlowRecording", "open_flow_record", "setup_attributes",
           "energy_fingerprint", "read_flow", "result_from_run"]

#: Attributes of a finished flow that become :attr:`FlowResult.info` when it is read back.
INFO_KEYS = ("rejected", "failed_attempts", "newton_total", "cg_total", "frames_thinned")


def _terms(energy):
    if hasattr(energy, "terms"):
        return list(energy.terms)
    return [(1.0, energy)]


def energy_fingerprint(energy):
    """``"sha256:…"`` of the energy's terms: their classes, weights and public numeric
    parameters (μ, a potential's values, a kernel's samples, an exponent)."""
    h = hashlib.sha256()
    for weight, term in _terms(energy):
        h.update(f"{type(term).__module__}.{type(term).__qualname__}|{float(weight)!r}".encode())
        for key in sorted(vars(term)):
            value = vars(term)[key]
            if key.startswith("_"):
                continue
            if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
                arr = np.ascontiguousarray(value, dtype=float)
                h.update(f"|{key}{arr.shape}".encode() + arr.tobytes())
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                h.update(f"|{key}={float(value)!r}".encode())
    return "sha256:" + h.hexdigest()[:32]


def _label(term):
    label = getattr(term, "label", None)
    return str(label() if callable(label) else getattr(term, "name", None) or type(term).__name__)


def setup_attributes(energy, grid, metric, scheme, mobility, adaptive, rtol, atol, dt, t0, t_end,
                     max_steps, save_every, save_times, max_memory, settings):
    """The attributes that identify a flow's arithmetic (a resume must match them all)."""
    terms = _terms(energy)
    attrs = {
        "metric": metric, "scheme": scheme, "mobility": mobility, "adaptive": int(adaptive),
        "rtol": np.nan if rtol is None else float(rtol),
        "atol": np.nan if atol is None else float(atol),
        "dt": np.nan if dt is None else float(dt),
        "t0": float(t0), "t_end": float(t_end), "max_steps": int(max_steps),
        "save_every": -1 if save_every is None else int(save_every),
        "save_times": np.asarray(save_times, dtype=float) if len(save_times) else "none",
        "max_memory": int(max_memory),
        "grid_n": int(grid.n), "grid_dim": int(grid.dim),
        "energy_terms": string_array(_label(t) for _, t in terms),
        "energy_kinds": string_array(str(getattr(t, "kind", None)) for _, t in terms),
        "energy_weights": np.array([float(a) for a, _ in terms]),
        "energy_fingerprint": energy_fingerprint(energy),
    }
    if not getattr(grid, "periodic", True):
        attrs["grid_boundary"] = str(grid.boundary)  # absent on the torus: old files resume
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, str):
            attrs[f"newton_{f.name}"] = value
        else:
            attrs[f"newton_{f.name}"] = int(value) if isinstance(value, (bool, numbers.Integral)) else float(value)
    return attrs


class RecordedFrames(Frames):
    """:class:`~densflow.flows.result.Frames` that also hand every saved density to a
    :class:`~densflow.io.flowrecord.FlowRecord` (once attached)."""

    def __init__(self, every, capacity):
        super().__init__(every, capacity)
        self.sink, self._early = None, []

    def add(self, k, t, p):
        super().add(k, t, p)
        if self.sink is None:
            self._early.append((k, t, np.array(p, copy=True)))
        else:
            self.sink.frame(k, t, p)

    def attach(self, sink, replay=True):
        """Send the densities saved so far (``replay``) and all later ones to ``sink``."""
        self.sink = sink
        for k, t, p in self._early if replay else ():
            sink.frame(k, t, p)
        self._early = []


class _Resumed:
    """What :meth:`FlowRecording.begin` gives the integrator: a stored ``result``, or
    the ``loop`` state to continue from."""

    def __init__(self, result=None, loop=None):
        self.result, self.loop = result, loop


class FlowRecording:
    """The integrator's side of a recorded flow (used by :mod:`densflow.flows.driver`).

    Parameters
    ----------
    record : FlowRecord
        The group to write.
    setup : dict
        :func:`setup_attributes` of the flow.
    mu : ndarray or None
        The energy's reference measure, when it has one.
    resume : bool
        Continue the recorded flow.
    save_every, capacity : int or None
        The saved densities' settings (to rebuild them on resume).
    """

    def __init__(self, record, setup, mu, resume, save_every, capacity):
        self.record, self.setup, self.mu, self.resume = record, setup, mu, resume
        self.save_every, self.capacity = save_every, capacity
        self.before = 0.0

    def begin(self, p0, t0, value0, frames):
        """Start (``None``) or resume (a :class:`_Resumed`) the recorded flow."""
        resumed = self.record.begin(self.setup, p0, self.mu, self.resume)
        if resumed is None:
            self.record.step(t0, value0)
            frames.attach(self.record)
            return None
        if resumed.run is not None:
            return _Resumed(result=result_from_run(resumed.run, self.save_every, self.capacity))
        s = resumed.state
        frames = RecordedFrames(self.save_every, self.capacity)
        for k, t, p in resumed.frames():
            frames.add(k, t, p)
        frames.attach(self.record, replay=False)
        frames.thinned = int(s["thinned"])
        self.before = float(s["wall_time"])
        tr = resumed.trajectory
        hist = [(t, np.array(p), np.array(phi), np.array(g)) for t, p, phi, g in resumed.history]
        est_prev = float(s["est_prev"]) if s["has_est_prev"] else None
        loop = (hist, tr["step_times"], tr["energies"], tr["steps"], tr["newton_iterations"],
                tr["cg_iterations"], tr["errors"], int(s["rejected"]), int(s["failed_attempts"]),
                int(s["newton_total"]), int(s["cg_total"]), float(s["h"]), float(s["h_nominal"]),
                float(s["t"]), int(s["k"]), est_prev, frames)
        return _Resumed(loop=loop)

    def accepted(self, t, value, h, newton, cg, error, state, hist, frames, wall_time):
        """Record an accepted step; at most every ``flush_interval`` seconds flush, and
        when a checkpoint is due (:meth:`FlowRecord.checkpoint_due`) write ``state`` (a
        dict of the loop's numbers) and ``hist`` as the new checkpoint."""
        self.record.step(t, value, h, newton, cg, error)
        if not self.record.due():
            return
        if not self.record.checkpoint_due():
            self.record.flush()
        else:
            est = state.pop("est_prev")
            state.update(has_est_prev=int(est is not None),
                         est_prev=float(est) if est is not None else 0.0,
                         thinned=int(frames.thinned), wall_time=self.before + wall_time)
            self.record.checkpoint(state, hist)

    def finish(self, result):
        """Write the result's outcome; add the time before a resume to its wall time."""
        result.wall_time += self.before
        result.info["resumed_from"] = self.record.resumed_from
        attrs = {"status": "failed" if result.failed else "complete",
                 "converged": bool(result.converged), "failed": bool(result.failed),
                 "message": result.message, "wall_time": float(result.wall_time),
                 **{f"info_{k}": int(result.info.get(k, 0)) for k in INFO_KEYS}}
        self.record.finish(result.p, attrs)


def open_flow_record(out, resume, overwrite):
    """``(record, recorder_to_close)`` for the ``out`` argument of :func:`densflow.flow`."""
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if out is None:
        if resume:
            raise ValueError("resume=True needs out= (the run file to continue)")
        return None, None
    if overwrite and resume:
        raise ValueError("overwrite=True and resume=True exclude each other: resume continues "
                         "the file, overwrite replaces it")
    from ..io.recorder import Recorder

    if isinstance(out, FlowRecord):
        return out, None
    if isinstance(out, (str, os.PathLike)):
        if not resume and not overwrite and os.path.exists(out):
            raise RunFileError(f"out={os.fspath(out)!r} exists; pass resume=True to continue it "
                               "or overwrite=True to replace it")
        recorder = Recorder(out, mode="a" if resume else ("w" if overwrite else "x"))
        return recorder.flow("flow"), recorder
    raise TypeError(f"out must be a path, a densflow.io.flowrecord.FlowRecord (from "
                    f"Recorder.flow(name)) or None, got {type(out).__name__}")


def result_from_run(run, save_every=None, capacity=None):
    """A recorded flow (:class:`densflow.io.flowfile.FlowRun`, with its densities) as a
    :class:`~densflow.flows.FlowResult`. With the flow's ``save_every`` and frame
    ``capacity`` the saved densities are thinned as the run thinned them in memory;
    without, all recorded ones are kept."""
    a = run.attrs
    if save_every is None and capacity is None:
        times, dens = run.times, run.densities
    else:
        frames = Frames(save_every, capacity)
        for i in range(run.times.size):
            frames.add(int(run.frame_steps[i]), float(run.times[i]), run.densities[i])
        times, dens = frames.arrays(run.densities.shape[1:])
    p = run.p_final if run.p_final is not None else (run.densities[-1] if run.densities.size
                                                     else run.p0)
    adaptive = bool(a.get("adaptive", 1))
    info = {k: int(a.get(f"info_{k}", 0)) for k in INFO_KEYS}
    info.update(adaptive=adaptive, rtol=float(a["rtol"]) if adaptive else None,
                atol=float(a["atol"]) if adaptive else None,
                dt=None if np.isnan(a.get("dt", np.nan)) else float(a["dt"]),
                resumed_from=int(a.get("resumed_from", -1)))
    return FlowResult(p=np.asarray(p, dtype=float), t=run.t, times=np.asarray(times, dtype=float),
                      densities=np.asarray(dens, dtype=float), step_times=run.step_times,
                      energies=run.energies, steps=run.steps,
                      newton_iterations=np.asarray(run.newton_iterations, dtype=int),
                      cg_iterations=np.asarray(run.cg_iterations, dtype=int), errors=run.errors,
                      n_steps=run.n_steps, converged=run.converged, failed=run.failed,
                      message=run.message, scheme=run.scheme, metric=run.metric,
                      wall_time=run.wall_time, info=info)


def read_flow(path, name=None):
    """The flow recorded in the run file ``path`` as a :class:`~densflow.flows.FlowResult`
    (every saved density the file holds).

    Parameters
    ----------
    path : str or os.PathLike
        A run file written by :func:`densflow.flow` with ``out=`` or by ``densflow run``
        on a flow case.
    name : str or None
        The flow's group (or its label); ``None``: the only flow of the file.

    Raises
    ------
    densflow.io.recorder.RunFileError
        One line: the file cannot be read, holds no such flow, or several without ``name``.
    """
    runs = read_flows(path)
    if name is not None:
        runs = [r for r in runs if name in (r.name, r.label)]
    if len(runs) != 1:
        names = ", ".join(repr(r.name) for r in read_flows(path, densities=False)) or "none"
        what = "no flow" if not runs else f"{len(runs)} flows"
        raise RunFileError(f"{os.fspath(path)}: {what}" + (f" named {name!r}" if name else "")
                           + f" (flows in the file: {names}); pass name=")
    return result_from_run(runs[0])
