"""One run of a run file while it is written, and its resumption (used by
:mod:`densflow.io.recorder`; see there for the layout)."""

import contextlib
import datetime
import time
from dataclasses import dataclass, field

import h5py
import numpy as np

from .h5io import DamagedFileError, DiskFullError, RunFileError
from .runfile import HISTORIES, INNER_HISTORIES, READ_ERRORS, _read_run
from ..optim.result import SolveResult

__all__ = ["RunRecord", "Resume", "ResumeError", "string_array"]

#: Recipes a run records when the caller gives none.
DEFAULT_RECIPES = {"p0_recipe": "array (snapshots[0])", "mu_recipe": "array (dataset mu)"}
#: ``units`` (UDUNITS spelling, ``"1"``: dimensionless) and ``description`` attributes of
#: every dataset of a run, in ASCII so that every HDF5 tool prints them as they are.
DATASET_ATTRS = {
    "energies": ("1", "energy E(p_k) for k = 0 ... n_iter"),
    "steps": ("1", "accepted step size eta_k of iteration k = 1 ... n_iter"),
    "decrements": ("1", "natural-gradient decrement s_k . g_k"),
    "times": ("s", "wall time of each iteration"),
    "snapshots": ("1", "density p_k (probability per cell) every snapshot_every iterations"),
    "snapshot_iterations": ("1", "the iteration k of each snapshot"),
    "snapshot_states": ("1", "problem state before each snapshot's evaluation (a random "
                             "generator's, JSON as zero-padded ASCII bytes), for exact resume"),
    "cg_iterations": ("1", "Newton: preconditioned CG iterations of each step"),
    "hessian_products": ("1", "Newton: Hessian-vector products of each step"),
    "inner_iterations": ("1", "Newton, 2D: CG iterations of the L_mu^+ solves of each step"),
    "p_final": ("1", "last iterate p_n_iter (probability per cell)"),
    "mu": ("1", "reference measure mu, the minimiser (probability per cell)"),
}
#: Checksums and compression of the datasets.
_CHECKED = {"fletcher32": True}
_PACKED = {"compression": "gzip", "shuffle": True, "fletcher32": True}


#: Bytes of one recorded problem state (``snapshot_states``); a longer state is not
#: recorded (that run then resumes with the generator as it is, statistically).
STATE_BYTES = 1024


def encode_state(text):
    """A problem state (text) as a zero-padded row of :data:`STATE_BYTES` bytes, or
    ``None`` when it does not fit."""
    raw = text.encode("ascii")
    if len(raw) > STATE_BYTES:
        return None
    row = np.zeros(STATE_BYTES, dtype=np.uint8)
    row[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return row


def decode_state(row):
    """The text of a row written by :func:`encode_state` (``None`` for an empty row)."""
    raw = bytes(np.asarray(row, dtype=np.uint8)).rstrip(b"\0")
    return raw.decode("ascii") if raw else None


class ResumeError(ValueError):
    """A recorded run cannot be resumed by this call (it was set up differently)."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _versions():
    from .._version import __version__

    return {"densflow_version": __version__, "numpy_version": np.__version__,
            "h5py_version": h5py.__version__, "hdf5_version": h5py.version.hdf5_version}


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return a.shape == b.shape and bool(np.all(a.astype(str) == b.astype(str)))


def _plain(value):
    """A value as plain Python, shortened, for messages."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


#: Attributes that identified a run's setup in files written before runs recorded their
#: ``setup_keys``. Resuming now compares every attribute
#: the problem kind returns (:attr:`densflow.optim.kinds.Bound.setup`), and the run's recipes,
#: its reference array (μ) and p0, whatever their names.
SETUP_KEYS = ("metric", "metric_wavelet", "metric_level", "grid_n", "grid_dim", "energy_terms",
              "energy_kinds", "energy_weights", "tol", "gtol", "max_iter", "line_search_eta0",
              "line_search_shrink", "line_search_c1", "line_search_min_step", "snapshot_every",
              "safeguard_floor")


def string_array(values):
    """``values`` as an array of HDF5 variable-length strings (for attributes)."""
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


def _describe(ds, key):
    """Give the dataset ``ds`` its ``units`` and ``description`` attributes."""
    units, description = DATASET_ATTRS[key]
    ds.attrs.update({"units": units, "description": description})
    return ds


def _nbytes(*items):
    return sum(np.asarray(a).nbytes for a in items if a is not None)


@dataclass
class Resume:
    """Where a recorded run continues: histories up to the last snapshot ``k`` and the
    density there, or the stored ``result`` of a complete run."""

    k: int = 0
    p: np.ndarray = None
    energies: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    decrements: list = field(default_factory=list)
    times: list = field(default_factory=list)
    result: SolveResult = None
    inner: dict = field(default_factory=dict)
    #: The problem's state recorded with the snapshot (``None``: none was recorded).
    state: str = None


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
        return DamagedFileError(f"{self.recorder.path}: damaged run file: run {self.name!r}: "
                                f"{what} cannot be read ({str(exc).splitlines()[0][:120]})")

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
                self._check_identity(g, identity, mu, p0)
                its = g["snapshot_iterations"][:] if "snapshot_iterations" in g else np.array([], int)
                if g.attrs.get("status") == "complete":
                    self._group = g
                    return Resume(result=self.result())
                if its.size:
                    return self._truncate(g, int(its[-1]), its.size)
        size = _nbytes(mu, p0) + sum(len(str(v)) for v in identity.values())
        with self.recorder.writing(size):
            if exists:
                del f[self.name]
            g = self._group = f.create_group(self.name)
            g.attrs.update({"status": "running", "started": _now(), "resumed_from": -1,
                            **_versions(), **identity, "setup_keys": string_array(identity)})
            for key in HISTORIES:
                _describe(g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(1024,),
                                           dtype=float, **_CHECKED), key)
            if identity.get("method") in ("newton", "newton_potential"):
                for key in INNER_HISTORIES:
                    _describe(g.create_dataset(key, shape=(0,), maxshape=(None,), chunks=(1024,),
                                               dtype=np.int64, **_CHECKED), key)
            _describe(g.create_dataset("snapshot_iterations", shape=(0,), maxshape=(None,),
                                       chunks=(256,), dtype=np.int64, **_CHECKED),
                      "snapshot_iterations")
            _describe(g.create_dataset("snapshots", shape=(0, *p0.shape),
                                       maxshape=(None, *p0.shape), chunks=(1, *p0.shape),
                                       dtype=float, **_PACKED), "snapshots")
            if states:
                _describe(g.create_dataset("snapshot_states", shape=(0, STATE_BYTES),
                                           maxshape=(None, STATE_BYTES),
                                           chunks=(1, STATE_BYTES), dtype=np.uint8, **_PACKED),
                          "snapshot_states")
            if mu is not None:
                _describe(g.create_dataset("mu", data=mu, **_PACKED), "mu")
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
        size = _nbytes(result.p, result.energies, result.steps, result.decrements, result.times)
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
            _describe(g.create_dataset("p_final", data=result.p, **_PACKED), "p_final")
            g.attrs.update({"status": "complete", "n_iter": result.n_iter,
                            "converged": bool(result.converged), "message": result.message,
                            "wall_time": float(result.wall_time), "finished": _now()})
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
                          "finished": _now()})
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
        return ResumeError(f"{self.recorder.path}: cannot resume run {self.name!r}: {what}; "
                           "use --overwrite (or a new output file) to run the changed case")

    def _check_identity(self, g, identity, mu, p0):
        """Refuse to resume ``g`` if anything that alters its arithmetic changed."""
        try:
            recorded = g.attrs.get("setup_keys")
            keys = list(identity) + [k for k in (recorded if recorded is not None else SETUP_KEYS)
                                     if k not in identity]
            for key in keys:
                key = key.decode() if isinstance(key, bytes) else str(key)
                new, old = identity.get(key), g.attrs.get(key)
                if key == "mu_recipe" and isinstance(old, str):  # recorded before it was ASCII
                    old = old.replace(" \u221d ", " proportional to ")
                if (new is None) != (old is None) or (new is not None and not _same(new, old)):
                    raise self._refuse(f"recorded {key} = {_plain(old)}, this run has {_plain(new)}")
            if mu is not None:
                old_mu = g["mu"][()] if "mu" in g else None
                if old_mu is None or not _same(old_mu, mu):
                    raise self._refuse("its reference measure mu differs from the recorded "
                                       "one (dataset mu)")
            if "snapshots" in g and g["snapshots"].shape[0] and not _same(g["snapshots"][0], p0):
                raise self._refuse("its initial density differs from p0 (snapshots[0])")
        except ResumeError:
            raise
        except READ_ERRORS as exc:
            raise self._damaged("the recorded setup", exc) from None

    def _truncate(self, g, k, m):
        lengths = {"energies": k + 1, "steps": k, "decrements": k, "times": k,
                   **{key: k for key in INNER_HISTORIES if key in g}}
        data = {}
        try:
            for key, n in lengths.items():
                if g[key].shape[0] < n:
                    raise self._refuse(f"{key} holds {g[key].shape[0]} entries, the snapshot "
                                       f"at iteration {k} needs {n}")
                data[key] = [v.item() for v in g[key][:n]]
            p = g["snapshots"][m - 1]
            states = g["snapshot_states"] if "snapshot_states" in g else None
            state = (decode_state(states[m - 1]) if states is not None and states.shape[0] >= m
                     else None)
        except ResumeError:
            raise
        except READ_ERRORS as exc:
            raise self._damaged("the histories or the last snapshot", exc) from None
        with self.recorder.writing() as f:
            for key, n in lengths.items():
                g[key].resize((n,))
            g["snapshot_iterations"].resize((m,))
            g["snapshots"].resize((m, *g["snapshots"].shape[1:]))
            if states is not None and states.shape[0] >= m:
                states.resize((m, STATE_BYTES))
            for key in ("p_final", "error"):
                if key in g:
                    del g[key]
                if key in g.attrs:
                    del g.attrs[key]
            g.attrs.update({"status": "running", "resumed_from": k, "n_iter": k})
            f.flush()
        self._group = g
        self.resumed_from = k
        inner = {key: data.pop(key) for key in INNER_HISTORIES if key in data}
        return Resume(k=k, p=p, inner=inner, state=state, **data)
