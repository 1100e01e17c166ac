"""HDF5 run files: write a run while it happens (reading back: :mod:`densflow.io.runfile`).

One file holds the runs of one case (or of any number of :func:`densflow.solve` calls);
each run is one group with its histories, density snapshots and, as attributes,
everything needed to rerun it. The layout uses plain datasets and attributes only
(numbers, strings, numeric arrays), so ``h5dump`` or any HDF5 reader can open it::

    /                               format = "densflow-run", format_version, created, versions, case_*
    /panel1                         index, title, weights, metrics (when written by a case)
    /panel1/combined                one run: attributes below
        energies        (n_iter+1,)      E(p_k)
        steps           (n_iter,)        accepted step sizes
        decrements      (n_iter[+1],)    s_k . g_k
        times           (n_iter,)        wall time of each iteration [s]
        snapshots       (m, *shape)      p_k every ``snapshot_every`` iterations (chunked, gzip)
        snapshot_iterations (m,)         the k of each snapshot
        p_final         (*shape)         last iterate (once complete)
        mu              (*shape)         reference measure

Every dataset carries a Fletcher-32 checksum per chunk, so damaged data is detected
when it is read.

Durability: iterations and snapshots are buffered in memory and written, together, at
most ``flush_interval`` seconds apart followed by ``H5Fflush``; nothing else touches the
file in between, so a process killed at any moment outside that short write leaves a
file that opens and holds every iteration up to the last flush. Before each batch of
writes the room it needs is reserved (:mod:`densflow.io.h5io`): on a full disk the run
stops with :class:`DiskFullError` and the file stays as of its last flush. A new file
replaces an old one only if no other process has the old one open. A run resumes from
its last snapshot (:func:`densflow.solve` with ``resume=True``) only if nothing that
alters its arithmetic has changed: every setup attribute, the recipes, μ and p0.
"""

import contextlib
import os

import numpy as np

from .h5io import (FORMAT, FORMAT_VERSION, DamagedFileError, DiskFullError, FileLockedError,
                    RunFileError, Space, create_file, open_file, write_error)
from .resume import SETUP_KEYS, Resume, ResumeError
from .runlayout import now, string_array, versions
from .runrecord import RunRecord
from .flowrecord import FlowRecord
from .runfile import Run, RunFile, check_format, read_run_file

__all__ = ["Recorder", "RunRecord", "RunFileError", "DamagedFileError", "FileLockedError",
           "DiskFullError", "ResumeError", "RunFile", "Run", "read_run_file",
           "SETUP_KEYS", "Resume", "FORMAT", "FORMAT_VERSION", "FlowRecord"]

class Recorder:
    """An HDF5 run file open for writing.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    mode : {"x", "w", "a"}
        ``"x"`` (default) creates the file and fails if it exists, ``"w"`` creates the
        file or replaces an existing one (never one that another process has open:
        :class:`FileLockedError`), ``"a"`` opens an existing densflow run file to add
        or resume runs (creating it if missing).
    snapshot_every : int
        Store the density every this many iterations (and at iteration 0); a resumed
        run restarts from the last snapshot.
    flush_interval : float
        Seconds between two flushes of the file during a run (at most; plus one at the
        end of every run).
    attrs : dict or None
        Extra root attributes (numbers, strings or numeric arrays), e.g. the case.

    Raises
    ------
    RunFileError
        One line naming the file and the reason (see :mod:`densflow.io.h5io`).

    Examples
    --------
    >>> with Recorder("runs.h5") as rec:                                  # doctest: +SKIP
    ...     df.solve(E, p0, "combined", out=rec.run("combined"))
    """

    def __init__(self, path, mode="x", snapshot_every=10, flush_interval=0.5, attrs=None):
        if mode not in ("w", "x", "a"):
            raise ValueError(f"mode must be 'w', 'x' or 'a', got {mode!r}")
        if isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise ValueError(f"snapshot_every must be an integer >= 1, got {snapshot_every!r}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be > 0 seconds, got {flush_interval!r}")
        self.path = os.fspath(path)
        self.snapshot_every = snapshot_every
        self.flush_interval = float(flush_interval)
        self.broken = False
        root = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": now(),
                **versions(), **(attrs or {})}
        if mode == "a" and os.path.exists(self.path):
            self.file = open_file(self.path, "a")
            self.space = Space(self.file, self.path)
            try:
                check_format(self.file, self.path)
                if attrs:
                    self.set_attrs(attrs)
            except BaseException:
                self.file.close()
                raise
        else:
            self.file = create_file(self.path, replace=mode == "w", attrs=root)
            self.space = Space(self.file, self.path)

    @contextlib.contextmanager
    def writing(self, nbytes=0):
        """Reserve room for ``nbytes`` (plus metadata), then let the block write; an
        error from h5py becomes a one-line :class:`RunFileError`."""
        if self.broken:
            raise RunFileError(f"{self.path}: an earlier write failed; nothing more is written")
        self.space.reserve(nbytes)
        try:
            yield self.file
        except RunFileError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            self.broken = True
            raise write_error(exc, self.path) from None

    def set_attrs(self, attrs):
        """Write root attributes and flush."""
        with self.writing(sum(len(str(v)) for v in attrs.values())) as f:
            f.attrs.update(attrs)
            f.flush()

    def root_attr(self, key, default=None):
        """A root attribute of the file (one line :class:`DamagedFileError` if unreadable)."""
        try:
            return self.file.attrs.get(key, default)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise DamagedFileError(f"{self.path}: damaged run file, root attribute {key!r} "
                                   f"cannot be read ({str(exc)[:120]})") from None

    def panel(self, index, title, weights, metrics):
        """Create (or update) the group ``panel{index}`` of a figure panel."""
        with self.writing() as f:
            g = f.require_group(f"panel{index}")
            g.attrs.update({"index": int(index), "title": str(title),
                            "weights": np.asarray(weights, dtype=float),
                            "metrics": string_array(metrics)})
            f.flush()
        return g.name.lstrip("/")

    def run(self, name, attrs=None):
        """A :class:`RunRecord` for the group ``name`` (e.g. ``"panel1/combined"``),
        to pass as ``out`` to :func:`densflow.solve`. ``attrs`` are extra attributes of
        the run, e.g. ``{"p0_recipe": "uniform"}``; like the setup, they must match for
        the run to be resumed."""
        if not isinstance(name, str) or not name.strip("/"):
            raise ValueError(f"run name must be a non-empty group path, got {name!r}")
        return RunRecord(self, name.strip("/"), dict(attrs or {}))

    def flow(self, name="flow", attrs=None):
        """A :class:`~densflow.io.flowrecord.FlowRecord` for the group ``name``, to pass as
        ``out`` to :func:`densflow.flow`; ``attrs`` as for :meth:`run`."""
        return FlowRecord(self, name, attrs)

    def close(self):
        """Flush and close the file (after a failed write: close only)."""
        if not self.file.id.valid:
            return
        if self.broken:
            with contextlib.suppress(Exception):
                self.file.close()
            return
        try:
            self.file.flush()
            self.space.trim()
        finally:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


