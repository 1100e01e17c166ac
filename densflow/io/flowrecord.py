"""One time-accurate flow in a run file while it is written, and its resumption
(:func:`densflow.flow` with ``out=``; reading back: :mod:`densflow.io.flowfile`).

A flow is one group with ``kind = "flow"``::

    /flow                         kind = "flow", status, setup attributes, setup_keys, label
        step_times   (n+1,)       t_k of every accepted step (t0 first)
        energies     (n+1,)       F(p_k)
        steps        (n,)         accepted step sizes
        newton_iterations (n,)    Newton iterations of each step
        cg_iterations     (n,)    PCG iterations of each step
        errors       (n,)         estimated local error of each step
        times        (m,)         times of the saved densities
        frame_steps  (m,)         the step k of each saved density
        densities    (m, *shape)  saved densities (chunked, gzip)
        p0, mu                    initial density; reference measure (when the energy has one)
        p_final      (*shape)     last density (once the run has ended)
        checkpoint0, checkpoint1  the integrator's state at a step (two slots)

Every dataset but ``densities`` grows along its first axis in batches written at most
``flush_interval`` seconds apart, like the histories of :mod:`densflow.io.runrecord`;
the saved densities are every density the flow saved (the in-memory result thins them
past its memory budget, the file keeps them all).

**Checkpoints.** With a flush, at most every ``flush_interval`` seconds and
:data:`CHECKPOINT_SPACING` times the last checkpoint's writing time apart, the
integrator's state goes to the slot that is *not* the current one: the last (up to three) steps' times, densities, potentials and
gradients, the next step size, the previous error estimate and the counters, as the
datasets ``hist_t``, ``hist_p``, ``hist_phi``, ``hist_g`` and the slot's attributes.
Only after that slot is written and flushed does the group's ``checkpoint`` attribute
name it, so a process killed while a checkpoint is written leaves the previous one
whole. A resumed flow truncates the trajectories to the checkpoint's step, restores
the state exactly and continues: the arithmetic is that of a run never interrupted.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from .flowfile import FLOW_HISTORIES, FLOW_KIND, FRAME_DATASETS, read_flow_group
from .h5io import DiskFullError, RunFileError
from .runfile import READ_ERRORS
from .resume import ResumeError, damaged, refusal, same, setup_difference
from .runlayout import DEFAULT_RECIPES, now as _now, string_array, versions as _versions

__all__ = ["FlowRecord", "FlowResume", "CHECKPOINT_SLOTS"]

#: The two checkpoint groups of a flow; the attribute ``checkpoint`` names the valid one.
CHECKPOINT_SLOTS = ("checkpoint0", "checkpoint1")
#: Rows of a checkpoint's history (the steps the BDF2 step and its estimate look back on).
HISTORY_ROWS = 3
#: ``units`` and ``description`` of the datasets of a flow (ASCII).
FLOW_DATASET_ATTRS = {
    "step_times": ("1", "time t_k of accepted step k = 0 ... n_steps (t0 first)"),
    "energies": ("1", "energy F(p_k) at step_times"),
    "steps": ("1", "accepted step size t_k - t_(k-1), k = 1 ... n_steps"),
    "newton_iterations": ("1", "Newton iterations of each accepted step"),
    "cg_iterations": ("1", "preconditioned CG iterations of each accepted step"),
    "errors": ("1", "estimated local error of each step (adaptive: 1 is the tolerance)"),
    "times": ("1", "time of each saved density"),
    "frame_steps": ("1", "accepted step k of each saved density"),
    "densities": ("1", "saved densities p(t) (probability per cell), first axis time"),
    "p0": ("1", "initial density (probability per cell)"),
    "mu": ("1", "reference measure of the energy (probability per cell)"),
    "p_final": ("1", "density at the last accepted time (probability per cell)"),
}
_CHECKED = {"fletcher32": True}
_PACKED = {"compression": "gzip", "shuffle": True, "fletcher32": True}
#: The saved densities: gzip's fastest level (a 256 x 256 density: ~10 ms instead of ~30).
_FRAMES = {**_PACKED, "compression_opts": 1}
#: A checkpoint waits at least this many times as long as the last one took to write,
#: which keeps its cost to a few per cent of a run whatever the grid.
CHECKPOINT_SPACING = 20
_INTS = ("frame_steps", "newton_iterations", "cg_iterations")


def _describe(ds, key):
    units, description = FLOW_DATASET_ATTRS[key]
    ds.attrs.update({"units": units, "description": description})
    return ds


@dataclass
class FlowResume:
    """Where a recorded flow continues.

    ``run`` (a :class:`densflow.io.flowfile.FlowRun` with its densities) for a complete
    one; else ``state`` (the checkpoint's scalars), ``history`` (``[(t, p, phi, g)]``,
    oldest first), ``trajectory`` (the per-step lists up to the checkpoint) and
    ``frames()``, an iterator over the saved ``(k, t, p)`` up to it.
    """

    run: object = None
    state: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    trajectory: dict = field(default_factory=dict)
    frames: object = None


class FlowRecord:
    """One flow (one group) of a :class:`densflow.io.recorder.Recorder`;
    :func:`densflow.flow` drives it.

    Parameters
    ----------
    recorder : Recorder
        The open file.
    name : str
        The group (e.g. ``"flow"``).
    attrs : dict or None
        Extra attributes (e.g. a case's recipes and label); they must match on resume.
    """

    def __init__(self, recorder, name, attrs=None):
        if not isinstance(name, str) or not name.strip("/"):
            raise ValueError(f"flow name must be a non-empty group path, got {name!r}")
        self.recorder, self.name, self.attrs = recorder, name.strip("/"), dict(attrs or {})
        self.resumed_from = -1
        self._group = None
        self._pending = {key: [] for key in FLOW_HISTORIES}
        self._frames = []
        self._last_flush = self._last_checkpoint = time.monotonic()
        self._checkpoint_cost = 0.0

    @property
    def status(self):
        """``"running"``, ``"complete"``, ``"failed"`` or ``None`` (no such group yet)."""
        g = self.recorder.file.get(self.name)
        return None if g is None else g.attrs.get("status")

    @property
    def path(self):
        return self.recorder.path

    # -- start -----------------------------------------------------------------------
    def begin(self, setup, p0, mu, resume):
        """Start the flow, or with ``resume`` continue the recorded one.

        Returns ``None`` for a fresh start (then record step 0 with :meth:`step`), else
        a :class:`FlowResume`. Raises :class:`ResumeError` when anything that alters the
        flow's arithmetic differs from the recorded flow: a setup attribute, the extra
        attributes, μ or p0.
        """
        f = self.recorder.file
        identity = {"kind": FLOW_KIND, **DEFAULT_RECIPES, **setup, **self.attrs}
        try:
            exists = self.name in f
            if exists and resume:
                g = f[self.name]
                self._check_identity(g, identity, p0, mu)
                if g.attrs.get("status") == "complete":
                    self._group = g
                    return FlowResume(run=read_flow_group(g, densities=True, path=self.path))
                slot = int(g.attrs.get("checkpoint", -1))
                if slot in (0, 1) and CHECKPOINT_SLOTS[slot] in g:
                    return self._restore(g, CHECKPOINT_SLOTS[slot])
        except (RunFileError, ResumeError):
            raise
        except READ_ERRORS as exc:
            raise self._damaged("the recorded flow", exc) from None
        with self.recorder.writing(3 * p0.nbytes * (2 * HISTORY_ROWS + 2)) as f:
            if exists:
                del f[self.name]
            g = self._group = f.create_group(self.name)
            g.attrs.update({"status": "running", "started": _now(), "resumed_from": -1,
                            "checkpoint": -1, **_versions(), **identity,
                            "setup_keys": string_array(identity)})
            for key in FLOW_HISTORIES + ("times", "frame_steps"):
                dtype = np.int64 if key in _INTS else float
                _describe(g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(1024,),
                                           dtype=dtype, **_CHECKED), key)
            _describe(g.create_dataset("densities", shape=(0, *p0.shape),
                                       maxshape=(None, *p0.shape), chunks=(1, *p0.shape),
                                       dtype=float, **_FRAMES), "densities")
            _describe(g.create_dataset("p0", data=p0, **_PACKED), "p0")
            if mu is not None:
                _describe(g.create_dataset("mu", data=mu, **_PACKED), "mu")
            for slot in CHECKPOINT_SLOTS:
                c = g.create_group(slot)
                c.create_dataset("hist_t", shape=(HISTORY_ROWS,), dtype=float, **_CHECKED)
                for key in ("hist_p", "hist_phi", "hist_g"):
                    c.create_dataset(key, shape=(HISTORY_ROWS, *p0.shape), dtype=float, **_CHECKED)
            f.flush()
        self._last_flush = time.monotonic()
        return None

    # -- during the run ----------------------------------------------------------------
    def step(self, t, value, h=None, newton=None, cg=None, error=None):
        """Buffer an accepted step (step 0: ``t0`` and ``F(p0)`` only)."""
        self._pending["step_times"].append(t)
        self._pending["energies"].append(value)
        if h is not None:
            for key, v in zip(FLOW_HISTORIES[2:], (h, newton, cg, error)):
                self._pending[key].append(v)

    def frame(self, k, t, p):
        """Buffer a saved density."""
        self._frames.append((k, t, np.array(p, copy=True)))

    def due(self):
        """Whether ``flush_interval`` has passed since the last flush."""
        return time.monotonic() - self._last_flush >= self.recorder.flush_interval

    def checkpoint_due(self):
        """Whether ``flush_interval``, and :data:`CHECKPOINT_SPACING` times the last
        checkpoint's writing time, have passed since the last checkpoint."""
        wait = max(self.recorder.flush_interval, CHECKPOINT_SPACING * self._checkpoint_cost)
        return time.monotonic() - self._last_checkpoint >= wait

    def flush(self):
        """Write the buffered steps and densities, then flush the file."""
        g = self._group
        with self.recorder.writing(self._pending_bytes()) as f:
            self._write_pending(g)
            g.attrs["n_steps"] = g["steps"].shape[0]
            f.flush()
        self._last_flush = time.monotonic()

    def checkpoint(self, state, history):
        """Flush, then write the integrator's ``state`` (numbers) and ``history``
        (``[(t, p, phi, g)]``, at most :data:`HISTORY_ROWS`, oldest first) to the spare
        slot, flush, and only then make it the current checkpoint."""
        start = time.monotonic()
        self.flush()
        g = self._group
        current = int(g.attrs.get("checkpoint", -1))
        slot = 1 if current == 0 else 0
        c = g[CHECKPOINT_SLOTS[slot]]
        m = len(history)
        if not 1 <= m <= HISTORY_ROWS:
            raise ValueError(f"a checkpoint holds 1 to {HISTORY_ROWS} steps, got {m}")
        nbytes = sum(np.asarray(a).nbytes for row in history for a in row[1:])
        with self.recorder.writing(nbytes) as f:
            c["hist_t"][:m] = [row[0] for row in history]
            for i, key in enumerate(("hist_p", "hist_phi", "hist_g"), start=1):
                for j, row in enumerate(history):
                    c[key][j] = row[i]
            c.attrs.update({**{k: v for k, v in state.items()}, "hist_len": m,
                            "n_frames": g["times"].shape[0], "written": _now()})
            f.flush()
            g.attrs["checkpoint"] = slot
            f.flush()
        self._last_flush = self._last_checkpoint = time.monotonic()
        self._checkpoint_cost = self._last_checkpoint - start

    def finish(self, p, attrs):
        """Write what is buffered, ``p_final`` and the run's outcome ``attrs`` (``status``
        among them)."""
        g = self._group
        with self.recorder.writing(self._pending_bytes() + p.nbytes) as f:
            self._write_pending(g)
            if "p_final" in g:
                del g["p_final"]
            _describe(g.create_dataset("p_final", data=p, **_PACKED), "p_final")
            g.attrs.update({**attrs, "n_steps": g["steps"].shape[0], "finished": _now()})
            f.flush()

    def fail(self, exc):
        """Write what is buffered and mark the flow failed (it stays resumable from its
        last checkpoint); nothing is written after a failed write or on a full disk,
        and nothing is raised."""
        if self._group is None or not self._group.id.valid or self.recorder.broken:
            return
        if isinstance(exc, DiskFullError):
            return
        try:
            self.flush()
            with self.recorder.writing() as f:
                self._group.attrs.update({"status": "failed",
                                          "error": f"{type(exc).__name__}: {exc}"})
                f.flush()
        except RunFileError:
            pass

    # -- internals -------------------------------------------------------------------
    def _pending_bytes(self):
        n = sum(len(buf) for buf in self._pending.values()) * 8
        return n + sum(p.nbytes + 64 for _, _, p in self._frames) * 11 // 10

    def _write_pending(self, g):
        for key, buf in self._pending.items():
            if buf:
                ds = g[key]
                ds.resize((ds.shape[0] + len(buf),))
                ds[-len(buf):] = buf
                buf.clear()
        if self._frames:
            m = g["times"].shape[0]
            new = m + len(self._frames)
            for key in FRAME_DATASETS:
                g[key].resize((new, *g[key].shape[1:]))
            for i, (k, t, p) in enumerate(self._frames, start=m):
                g["frame_steps"][i] = k
                g["times"][i] = t
                g["densities"][i] = p
            self._frames.clear()

    def _damaged(self, what, exc):
        return damaged(self.path, "flow", self.name, what, exc)

    def _refuse(self, what):
        return refusal(self.path, "flow", self.name, what)

    def _check_identity(self, g, identity, p0, mu):
        if g.attrs.get("kind") != FLOW_KIND:
            raise self._refuse("the recorded run is not a flow")
        difference = setup_difference(identity, g.attrs, legacy=False)
        if difference is not None:
            raise self._refuse(difference)
        if "p0" not in g or not same(g["p0"][()], p0):
            raise self._refuse("its initial density differs from the recorded p0")
        if (mu is None) != ("mu" not in g) or (mu is not None and not same(g["mu"][()], mu)):
            raise self._refuse("its reference measure mu differs from the recorded one")

    def _restore(self, g, slot):
        c = g[slot]
        state = {key: (value.item() if isinstance(value, np.generic) else value)
                 for key, value in c.attrs.items() if key not in ("hist_len", "n_frames", "written")}
        k, m, n_frames = int(state["k"]), int(c.attrs["hist_len"]), int(c.attrs["n_frames"])
        lengths = {key: (k + 1 if key in ("step_times", "energies") else k) for key in FLOW_HISTORIES}
        trajectory = {}
        for key, n in lengths.items():
            if g[key].shape[0] < n:
                raise self._refuse(f"{key} holds {g[key].shape[0]} entries, the checkpoint at "
                                   f"step {k} needs {n}")
            trajectory[key] = [v.item() for v in g[key][:n]]
        if g["times"].shape[0] < n_frames:
            raise self._refuse(f"the file holds {g['times'].shape[0]} saved densities, the "
                               f"checkpoint at step {k} needs {n_frames}")
        hist_t = c["hist_t"][:m]
        history = [(float(hist_t[j]), c["hist_p"][j], c["hist_phi"][j], c["hist_g"][j])
                   for j in range(m)]
        with self.recorder.writing() as f:
            for key, n in lengths.items():
                g[key].resize((n,))
            for key in FRAME_DATASETS:
                g[key].resize((n_frames, *g[key].shape[1:]))
            for key in ("p_final",):
                if key in g:
                    del g[key]
            for key in ("error", "message", "converged", "finished"):
                if key in g.attrs:
                    del g.attrs[key]
            g.attrs.update({"status": "running", "resumed_from": k, "n_steps": k})
            f.flush()
        self._group = g
        self.resumed_from = k

        def frames():
            steps, times = g["frame_steps"][:n_frames], g["times"][:n_frames]
            for i in range(n_frames):
                yield int(steps[i]), float(times[i]), g["densities"][i]

        return FlowResume(state=state, history=history, trajectory=trajectory, frames=frames)
