"""A small sweep for the tests. With DENSFLOW_TEST_KILL_DIR set, the first time the
point n=64 reaches iteration 20 of its combined run, its worker process kills itself
(SIGKILL) after leaving a marker file there, so the test can check what survives.
Until then each direction sleeps 0.1 s, so that the run file is flushed (every 0.5 s)
with several snapshots before the kill.

With DENSFLOW_TEST_SLOW_EXIT=S set, a worker process that loads this file takes S more
seconds to exit, as a process that compiled kernels does on a loaded machine."""

import os
import signal
import time

import densflow as df
from densflow.app.case import Case, Panel
from densflow.app.sweep import Sweep


class KillOnce(df.metrics.Combined):
    """The combined metric, killing its process once at the 20th direction."""

    def bind(self, energy):
        inner = super().bind(energy)
        marker = os.path.join(os.environ.get("DENSFLOW_TEST_KILL_DIR", ""), "killed")
        calls = [0]
        direction = inner.direction

        def killing_direction(p, g):
            calls[0] += 1
            if os.environ.get("DENSFLOW_TEST_KILL_DIR") and not os.path.exists(marker):
                time.sleep(0.1)
                if calls[0] == 20:
                    open(marker, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)
            return direction(p, g)

        inner.direction = killing_direction
        return inner


def make_case(n):
    metric = KillOnce() if n == 64 else "combined"
    return Case(grid=df.Grid(n, dim=1), potential="sin(4*pi*x)",
                panels=[Panel((1, 1e-3, 1e-4), [metric, "fisher_rao"])],
                tol=1e-12, max_iter=200, snapshot_every=5, safeguard=None,
                method="gradient")  # points long enough to kill a worker mid-point


sweep = Sweep(make_case, product=dict(n=[32, 64, 128]))


def _in_a_worker():
    try:
        from distributed import get_worker
        get_worker()
    except (ImportError, ValueError):
        return False
    return True


if os.environ.get("DENSFLOW_TEST_SLOW_EXIT") and _in_a_worker():
    import atexit

    atexit.register(time.sleep, float(os.environ["DENSFLOW_TEST_SLOW_EXIT"]))
