"""Progress lines of the command line: long runs, and numba's first compilation.

Both write through an ``emit(line)`` callable, so that ``densflow run`` can print them
and a sweep's worker can send them to the client that started the sweep.
"""

import contextlib
import time

__all__ = ["Progress", "FlowProgress", "compile_notice", "COMPILE_MESSAGE"]

#: The line printed when numba starts compiling one of densflow's kernels.
COMPILE_MESSAGE = "compiling numba kernels (first run only)…"


class Progress:
    """Solver callback that reports ``iteration, energy, step`` of a long run.

    Parameters
    ----------
    label : str
        Names the run at the start of each line.
    emit : callable
        ``emit(line)`` writes one line.
    delay : float
        Seconds a run must have lasted before its first line.
    interval : float
        Seconds at least between two lines.
    """

    def __init__(self, label, emit, delay=2.0, interval=1.0):
        self.label, self.emit, self.delay, self.interval = label, emit, delay, interval
        self.start = self.last = time.monotonic()

    def __call__(self, k, p, value, step, decrement):
        now = time.monotonic()
        if now - self.start >= self.delay and now - self.last >= self.interval:
            self.emit(f"{self.label}: iteration {k}, E = {value:.3e}, step = {step:.3g}")
            self.last = now
        return False


class FlowProgress(Progress):
    """``on_step`` callback of :func:`densflow.flow` that reports ``step, t, dt, F`` of a
    long flow (parameters as :class:`Progress`)."""

    def __call__(self, k, t, p, info):
        now = time.monotonic()
        if now - self.start >= self.delay and now - self.last >= self.interval:
            self.emit(f"{self.label}: step {k}, t = {t:.4g}, dt = {info['dt']:.3g}, "
                      f"F = {info['energy']:.6e}")
            self.last = now
        return False


def _is_ours(event, prefixes):
    dispatcher = (event.data or {}).get("dispatcher") if isinstance(event.data, dict) else None
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
    return module.startswith(prefixes)


@contextlib.contextmanager
def compile_notice(emit, message=COMPILE_MESSAGE, modules=("densflow",)):
    """Call ``emit(message)`` once if numba compiles a kernel inside the block.

    numba announces a compilation only when a kernel is neither compiled in this
    process nor found in its on-disk cache, so the line appears on a first run (or
    after densflow's source changed) and never when the kernels load from the cache.

    Parameters
    ----------
    emit : callable
        ``emit(line)`` writes one line.
    message : str
        The line.
    modules : tuple of str
        Only kernels defined in modules whose name starts with one of these count.
    """
    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - numba is a dependency
        yield
        return

    class _Listener(event.Listener):
        said = False

        def on_start(self, ev):
            if not self.said and _is_ours(ev, tuple(modules)):
                self.said = True
                emit(message)

        def on_end(self, ev):
            pass

    with event.install_listener("numba:compile", _Listener()):
        yield
