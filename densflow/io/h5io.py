"""Opening, creating and growing HDF5 run files safely.

* **Errors in one line.** :func:`open_file` turns what h5py raises into a
  :class:`RunFileError` naming the file and the reason: missing, a directory, not
  HDF5, damaged (truncated or unreadable), or open in another process.
* **Replacing never clobbers.** h5py's mode ``"w"`` truncates a file *before* HDF5
  checks its lock, so a run started with ``--overwrite`` used to destroy a file that
  another process was writing. :func:`create_file` writes the new file under a
  temporary name in the same folder and moves it into place only while it holds an
  exclusive ``flock`` on the old file — the lock every HDF5 reader (shared) and writer
  (exclusive) of that file holds — so a file open in another process is never
  truncated, replaced or modified; a missing target is created with ``link``, which
  fails instead of overwriting a file that appeared in the meantime.
* **A full disk stops the run before the file is damaged.** HDF5 updates metadata in
  place and appends data at the end of the file, so a write that fails half-way
  through a flush (disk full, file-size limit) left files that no longer opened, with
  every finished run in them. :meth:`Space.reserve` allocates the bytes a batch of
  writes may need (``posix_fallocate``) *before* HDF5 touches the file; when they
  cannot be had, :class:`DiskFullError` is raised and the file stays as it was at its
  last flush, ready for ``--resume`` once space is back.
"""

import errno
import os
import stat
import uuid

import h5py

__all__ = ["FORMAT", "FORMAT_VERSION", "RunFileError", "DamagedFileError", "FileLockedError",
           "DiskFullError", "open_file", "create_file", "Space", "write_error", "probe",
           "check_target", "numeric_dataset"]

FORMAT = "densflow-run"
FORMAT_VERSION = 1

#: Bytes reserved for HDF5's metadata (object headers, chunk indexes, heaps) on top of
#: the data of one batch of writes.
METADATA_MARGIN = 128 * 1024

_NO_SPACE = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class RunFileError(ValueError):
    """A file is missing, not HDF5, not a densflow run file, or cannot be written."""


class DamagedFileError(RunFileError):
    """A run file (or one of its datasets) cannot be read: truncated or corrupted."""


class FileLockedError(RunFileError):
    """A run file is open in another process (its HDF5 file lock is held)."""


class DiskFullError(RunFileError):
    """There is no room to write a run file; nothing was written."""


def _reason(exc):
    text = str(exc)
    inner = text[text.find("(") + 1:text.rfind(")")] if "(" in text else text
    return inner.split(",")[0].strip() or type(exc).__name__


def _locked(path, verb):
    return FileLockedError(f"{path}: cannot {verb}: the file is open in another process "
                           "(its HDF5 file lock is held); wait for that process to finish")


def classify(exc, path, mode):
    """The :class:`RunFileError` for an ``OSError`` raised by ``h5py.File(path, mode)``."""
    verb = "open" if mode in ("r", "r+", "a") else "create"
    if isinstance(exc, FileNotFoundError):
        if mode == "r" or os.path.isdir(os.path.dirname(os.path.abspath(path))):
            return RunFileError(f"{path}: no such file")
        return RunFileError(f"{path}: cannot create (no such directory "
                            f"{os.path.dirname(os.path.abspath(path))})")
    if isinstance(exc, FileExistsError):
        return RunFileError(f"{path}: already exists")
    if os.path.isdir(path):
        return RunFileError(f"{path}: is a directory, not a run file")
    if getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock" in str(exc):
        return _locked(path, verb)
    if getattr(exc, "errno", None) in _NO_SPACE:
        return DiskFullError(f"{path}: no space left to write the run file ({os.strerror(exc.errno)})")
    if isinstance(exc, PermissionError):
        return RunFileError(f"{path}: cannot {verb} (permission denied)")
    reason = _reason(exc)
    if "truncated file" in str(exc):
        return DamagedFileError(f"{path}: damaged run file (truncated: the file ends before "
                                "the data HDF5 recorded in it)")
    if mode in ("r", "a", "r+"):
        if "signature not found" in str(exc):
            return RunFileError(f"{path}: cannot open as HDF5 ({reason})")
        return DamagedFileError(f"{path}: damaged run file, cannot open as HDF5 ({reason})")
    return RunFileError(f"{path}: cannot create ({reason})")


_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _kind(mode):
    return next((what for test, what in _SPECIAL if test(mode)), "not a regular file")


def check_target(path, what="run file"):
    """Refuse ``path`` unless it is a regular file or a new name in an existing folder.

    A character device (``/dev/null``), a FIFO, a socket, a directory or a name ending
    in a path separator is never opened, replaced or written beside: opening a FIFO
    blocks, and replacing a device would put a ``what`` in the system's place.

    Raises
    ------
    RunFileError
        One line naming ``path`` and what it is.
    """
    path = os.fspath(path)
    if not path:
        raise RunFileError(f"the {what} needs a file name, got ''")
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise RunFileError(f"{path}: names a folder (it ends with {path[-1]!r}), not a {what}; "
                           "give a file name")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise RunFileError(f"{path}: cannot create (no such directory {folder})") from None
        return
    except OSError as exc:
        raise RunFileError(f"{path}: cannot use as a {what} ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise RunFileError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        raise RunFileError(f"{path}: is {_kind(mode)}, not a {what} (only regular files "
                           "are read or written)")


def open_file(path, mode="r"):
    """``h5py.File(path, mode)`` for an existing file, errors as :class:`RunFileError`
    (a path that is not a regular file is refused first, see :func:`check_target`)."""
    if mode != "r" and not os.path.exists(path):
        raise RunFileError(f"{path}: no such file")
    if os.path.exists(path):
        check_target(path)
    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise classify(exc, path, mode) from None
    except Exception as exc:  # h5py raises RuntimeError/KeyError on some damaged files
        raise DamagedFileError(f"{path}: damaged run file ({type(exc).__name__}: "
                               f"{_reason(exc)})") from None


def _flock_exclusive(fd):
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as exc:  # no flock on this filesystem: HDF5 cannot lock either
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            return True
        raise
    return True


def _move_into_place(tmp, path, replace):
    """Rename ``tmp`` to ``path``: only if ``path`` is missing (``replace=False``), or
    while holding an exclusive lock on the file it replaces."""
    if not os.path.lexists(path):
        try:
            os.link(tmp, path)  # fails, rather than overwrites, if path appeared meanwhile
        except FileExistsError:
            raise RunFileError(f"{path}: already exists") from None
        except OSError:  # no hard links on this filesystem
            os.rename(tmp, path)
        else:
            os.unlink(tmp)
        return
    if not replace:
        raise RunFileError(f"{path}: already exists")
    if os.path.isdir(path):
        raise RunFileError(f"{path}: is a directory, not a run file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise RunFileError(f"{path}: cannot replace ({exc.strerror})") from None
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):  # became a special file after the first check
            raise RunFileError(f"{path}: is {_kind(kind)}, not a run file (only regular "
                               "files are read or written)")
        if not _flock_exclusive(fd):
            raise _locked(path, "replace")
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # replaced meanwhile
            raise _locked(path, "replace")
        os.replace(tmp, path)
    finally:
        os.close(fd)


def create_file(path, replace=False, attrs=None):
    """Create a new HDF5 file at ``path`` holding the root ``attrs``; return it open.

    The file is written as ``.NAME.tmp-XXXX`` in the same folder, flushed, and moved
    into place (see the module notes), so ``path`` is at every moment either the old
    file, untouched, or the new one.

    Raises
    ------
    RunFileError
        ``path`` exists and ``replace`` is false, is open in another process
        (:class:`FileLockedError`), or there is no room (:class:`DiskFullError`).
    """
    check_target(path)
    folder, base = os.path.split(os.path.abspath(path))
    if os.path.exists(path) and not replace:
        raise RunFileError(f"{path}: already exists")
    tmp = os.path.join(folder, f".{base}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        f = h5py.File(tmp, "w-")
    except OSError as exc:
        err = classify(exc, tmp, "w")
        raise type(err)(str(err).replace(tmp, path)) from None
    try:
        space = Space(f, tmp)
        space.reserve(sum(len(str(v)) for v in (attrs or {}).values()))
        f.attrs.update(attrs or {})
        f.flush()
        _move_into_place(tmp, path, replace)
    except BaseException as exc:
        f.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # name the file asked for, not the temporary one
            raise RunFileError(f"{path}: cannot create ({exc.strerror or exc})") from None
        if isinstance(exc, DiskFullError):
            raise DiskFullError(f"{path}: no space left to create the run file") from None
        raise
    return f


class Space:
    """Reserves room in a file before HDF5 writes to it (see the module notes).

    Parameters
    ----------
    f : h5py.File
        The open file.
    path : str
        Its path, for the reservation and for messages.
    """

    def __init__(self, f, path):
        self.f, self.path = f, path

    def reserve(self, nbytes):
        """Make sure the file can grow by ``nbytes`` plus :data:`METADATA_MARGIN`.

        Raises
        ------
        DiskFullError
            If the room cannot be allocated; the file is left as it was.
        """
        need = int(nbytes) + METADATA_MARGIN
        try:
            used = int(self.f.id.get_filesize())
        except Exception:  # noqa: BLE001 - a closed or broken file: nothing to reserve
            return
        fd = os.open(self.path, os.O_RDWR)
        before = os.fstat(fd).st_size
        try:
            os.posix_fallocate(fd, 0, used + need)
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                os.ftruncate(fd, max(before, used))
                raise DiskFullError(
                    f"{self.path}: no space left to record the run ({need // 1024} KiB more "
                    f"needed: {os.strerror(exc.errno)}); the file is kept as of its last flush: "
                    "free some space and continue with --resume") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            self._check_free(need)
        except AttributeError:  # no posix_fallocate on this platform
            self._check_free(need)
        finally:
            os.close(fd)

    def _check_free(self, need):
        st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        if st.f_bavail * st.f_frsize < need:
            raise DiskFullError(f"{self.path}: no space left to record the run "
                                f"({need // 1024} KiB needed); free some space and continue "
                                "with --resume")

    def trim(self):
        """Give back the reserved room HDF5 did not use; call after the last flush,
        before closing (the file's lock still keeps other processes out)."""
        try:
            size = int(self.f.id.get_filesize())
            if os.path.getsize(self.path) > size:
                os.truncate(self.path, size)
        except Exception:  # noqa: BLE001 - tidying only
            pass


def write_error(exc, path):
    """The :class:`RunFileError` for an error raised by h5py while writing ``path``."""
    if isinstance(exc, RunFileError):
        return exc
    code = getattr(exc, "errno", None)
    if code in _NO_SPACE or any(os.strerror(c) in str(exc) for c in _NO_SPACE):
        return DiskFullError(f"{path}: no space left while writing the run file; runs "
                             "finished before are kept: free some space and continue with --resume")
    return RunFileError(f"{path}: cannot write ({type(exc).__name__}: {_reason(exc)})")


def probe(path):
    """``"missing"``, ``"locked"``, ``"damaged"`` or ``"ok"``: can ``path`` be opened as
    an HDF5 file?"""
    if not os.path.exists(path):
        return "missing"
    try:
        with open_file(path, "r"):
            return "ok"
    except FileLockedError:
        return "locked"
    except RunFileError:
        return "damaged"


def numeric_dataset(g, key, where, required=True, ndim=None):
    """The numeric dataset ``key`` of the group ``g`` (not read), or ``None`` when it is
    missing and not ``required``.

    Raises :class:`DamagedFileError` (its message starting with ``where``) when a
    required dataset is missing, when ``key`` is not a numeric (float or integer)
    dataset, or when it has not ``ndim`` dimensions (``ndim``: any when ``None``).
    """
    obj = g.get(key)
    if obj is None:
        if required:
            raise DamagedFileError(f"{where}: has no dataset {key!r}")
        return None
    if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "fiu":
        raise DamagedFileError(f"{where}: {key!r} is not a numeric dataset")
    if ndim is not None and obj.ndim != ndim:
        raise DamagedFileError(f"{where}: {key!r} has {obj.ndim} dimensions, not {ndim}")
    return obj
