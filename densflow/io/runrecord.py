"""One run of a run file while it is written, and its resumption (used by
:mod:`densflow.io.recorder`; see there for the layout). What a run records besides its
arrays is in :mod:`densflow.io.runlayout`, the comparisons and the cut of a resume in
:mod:`densflow.io.resume`."""

import contextlib
import time

import numpy as np

from .h5io import DiskFullError, RunFileError
from .resume import Resume, ResumeError, check_identity, damaged, read_last_snapshot, refusal, truncate
from .runfile import HISTORIES, INNER_HISTORIES, READ_ERRORS, _read_run
from .runlayout import (CHECKED, DEFAULT_RECIPES, PACKED, STATE_BYTES, describe, encode_state,
                        nbytes, now, string_array, versions)
# names this module held before the split, still imported from here by other modules
from .resume import SETUP_KEYS, plain as _plain, same as _same  # noqa: F401
from .runlayout import DATASET_ATTRS, decode_state, now as _now, versions as _versions  # noqa: F401

__all__ = ["RunRecord", "Resume", "ResumeError", "string_array"]


class RunRecord:
    """One run (one group) of a :class:`Recorder`; :func:`densflow.solve` drives it."""

    def __init__(self, recorder, name, attrs):
        self.recorder, self.name, self.attrs = recorder, name, attrs
        self.snapshot_every = recorder.snapshot_every
        self.resumed_from = -1
        self._group = None
        self._pending = {key: [] for key in HISTORIES + INNER_HISTORIES}
        self._snapshots = []
        self._last_flush = time.monotonic()

    @property
    def status(self):
        """``"running"``, ``"complete"``, ``"failed"`` or ``None`` (no such group yet)."""
        with self._reading("the run's status"):
            g = self.recorder.file.get(self.name)
            return None if g is None else g.attrs.get("status")

    @contextlib.contextmanager
    def _reading(self, what):
        """Turn h5py's errors on damaged objects into a one-line DamagedFileError."""
        try:
            yield
        except (RunFileError, ResumeError):
            raise
        except READ_ERRORS as exc:
            raise self._damaged(what, exc) from None

    def _damaged(self, what, exc):
        return damaged(self.recorder.path, "run", self.name, what, exc)

    # -- called by the solver --------------------------------------------------------
    def begin(self, setup, mu, p0, resume, states=False):
        """Start the run, or with ``resume`` continue the recorded one (``states``: the
        snapshots carry the problem's state, see :meth:`append`).

        Returns ``None`` for a fresh start (then call :meth:`start`), else a
        :class:`Resume`. Raises :class:`ResumeError` when anything that alters the
        run's arithmetic differs from the recorded run: any setup attribute, the
        recipes, μ or p0.
        """
        f = self.recorder.file
        identity = {**DEFAULT_RECIPES, **setup, **self.attrs}
        with self._reading("the recorded run"):
            exists = self.name in f
            if exists and resume:
                g = f[self.name]
                with self._reading("the recorded setup"):
                    check_identity(g, identity, mu, p0, self._refuse)
                its = g["snapshot_iterations"][:] if "snapshot_iterations" in g else np.array([], int)
                if g.attrs.get("status") == "complete":
                    self._group = g
                    return Resume(result=self.result())
                if its.size:
                    return self._resume_at(g, int(its[-1]), its.size)
        size = nbytes(mu, p0) + sum(len(str(v)) for v in identity.values())
        with self.recorder.writing(size):
            if exists:
                del f[self.name]
            g = self._group = f.create_group(self.name)
            g.attrs.update({"status": "running", "started": now(), "resumed_from": -1,
                            **versions(), **identity, "setup_keys": string_array(identity)})
            for key in HISTORIES:
                describe(g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(1024,),
                                           dtype=float, **CHECKED), key)
            if identity.get("method") in ("newton", "newton_potential"):
                for key in INNER_HISTORIES:
                    describe(g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(1024,),
                                               dtype=np.int64, **CHECKED), key)
            describe(g.create_dataset("snapshot_iterations", shape=(0,), maxshape=(None,),
                                       chunks=(256,), dtype=np.int64, **CHECKED),
                      "snapshot_iterations")
            describe(g.create_dataset("snapshots", shape=(0, *p0.shape),
                                       maxshape=(None, *p0.shape), chunks=(1, *p0.shape),
                                       dtype=float, **PACKED), "snapshots")
            if states:
                describe(g.create_dataset("snapshot_states", shape=(0, STATE_BYTES),
                                           maxshape=(None, STATE_BYTES),
                                           chunks=(1, STATE_BYTES), dtype=np.uint8, **PACKED),
                          "snapshot_states")
            if mu is not None:
                describe(g.create_dataset("mu", data=mu, **PACKED), "mu")
        return None

    def start(self, value, p0, state=None):
        """Record ``E(p_0)`` and the snapshot of ``p_0`` (with the problem's ``state``
        before it was evaluated) of a fresh run, and flush."""
        self._pending["energies"].append(value)
        self._snapshots.append((0, p0.copy(), state))
        self.flush()

    def append(self, k, value, step, decrement, seconds, p=None, inner=None, state=None):
        """Record iteration ``k`` (and the snapshot ``p`` when given, with ``state``, the
        problem's state just before ``p`` was evaluated, which a resume restores;
        ``inner``: Newton's counts of the step, by :data:`INNER_HISTORIES` key); flushes
        the file when ``flush_interval`` has passed since the last flush."""
        for key, v in zip(HISTORIES, (value, step, decrement, seconds)):
            self._pending[key].append(v)
        for key, v in (inner or {}).items():
            self._pending[key].append(v)
        if p is not None:
            self._snapshots.append((k, p.copy(), state))
        if time.monotonic() - self._last_flush >= self.recorder.flush_interval:
            self.flush()

    def finish(self, result):
        """Write the whole result and mark the run complete."""
        g = self._group
        size = nbytes(result.p, result.energies, result.steps, result.decrements, result.times)
        with self.recorder.writing(size + self._pending_bytes()) as f:
            self._write_snapshots()
            for key in HISTORIES + INNER_HISTORIES:
                data = getattr(result, key)
                if key in g and data is not None:
                    g[key].resize((data.size,))
                    g[key][:] = data
                self._pending[key].clear()
            if "p_final" in g:
                del g["p_final"]
            describe(g.create_dataset("p_final", data=result.p, **PACKED), "p_final")
            g.attrs.update({"status": "complete", "n_iter": result.n_iter,
                            "converged": bool(result.converged), "message": result.message,
                            "wall_time": float(result.wall_time), "finished": now()})
            f.flush()

    def fail(self, exc, message=None, n_iter=None):
        """Write what is buffered and mark the run failed (it stays resumable).

        With a ``message`` (a numerical failure, reported as the run's result) the
        run also gets ``converged = False``, ``message`` and ``n_iter``, and a failed
        write raises; without one (an exception on its way to the caller) nothing is
        written after a failed write or on a full disk, and nothing is raised.
        """
        if self._group is None or not self._group.id.valid or self.recorder.broken:
            return
        if isinstance(exc, DiskFullError):
            return
        attrs = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        if message is not None:
            attrs.update({"converged": False, "message": message, "n_iter": int(n_iter),
                          "finished": now()})
        try:
            self.flush()
            with self.recorder.writing(sum(len(str(v)) for v in attrs.values())) as f:
                self._group.attrs.update(attrs)
                f.flush()
        except RunFileError:
            if message is not None:
                raise

    def flush(self):
        """Write the buffered iterations and snapshots, then flush the file."""
        g = self._group
        with self.recorder.writing(self._pending_bytes()) as f:
            for key in HISTORIES + INNER_HISTORIES:
                buf = self._pending[key]
                if buf and key in g:
                    ds = g[key]
                    ds.resize((ds.shape[0] + len(buf),))
                    ds[-len(buf):] = buf
                    buf.clear()
            self._write_snapshots()
            g.attrs["n_iter"] = g["steps"].shape[0]
            f.flush()
        self._last_flush = time.monotonic()

    # -- reading back ----------------------------------------------------------------
    def result(self):
        """The stored run as a :class:`densflow.SolveResult` (a complete run)."""
        return _read_run(self.recorder.file[self.name], path=self.recorder.path).result()

    def histories(self):
        """The recorded histories (after writing what is buffered), as arrays."""
        self.flush()
        g = self._group
        return {key: np.asarray(g[key][:], dtype=float) for key in HISTORIES}

    def last_snapshot(self):
        """The last recorded density, or ``None``."""
        g = self._group
        if g is None or "snapshots" not in g or g["snapshots"].shape[0] == 0:
            return None
        return g["snapshots"][-1]

    # -- internals -------------------------------------------------------------------
    def _pending_bytes(self):
        n = sum(len(buf) for buf in self._pending.values()) * 8
        return n + sum(p.nbytes + 64 + (STATE_BYTES if s is not None else 0)
                       for _, p, s in self._snapshots) * 11 // 10

    def _write_snapshots(self):
        if not self._snapshots:
            return
        g = self._group
        its, snaps = g["snapshot_iterations"], g["snapshots"]
        m = its.shape[0]
        states = g["snapshot_states"] if "snapshot_states" in g else None
        its.resize((m + len(self._snapshots),))
        snaps.resize((m + len(self._snapshots), *snaps.shape[1:]))
        if states is not None:
            states.resize((m + len(self._snapshots), STATE_BYTES))
        for i, (k, p, state) in enumerate(self._snapshots, start=m):
            its[i] = k
            snaps[i] = p
            if states is not None:
                row = encode_state(state) if state is not None else None
                states[i] = row if row is not None else np.zeros(STATE_BYTES, np.uint8)
        self._snapshots.clear()

    def _refuse(self, what):
        return refusal(self.recorder.path, "run", self.name, what)

    def _resume_at(self, g, k, m):
        """Cut the recorded run ``g`` back to its ``m``-th snapshot (iteration ``k``) and
        return where it continues."""
        with self._reading("the histories or the last snapshot"):
            resume = read_last_snapshot(g, k, m, self._refuse)
        with self.recorder.writing() as f:
            truncate(g, k, m)
            f.flush()
        self._group = g
        self.resumed_from = k
        return resume
