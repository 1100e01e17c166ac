"""Where a solve's time goes beyond its arithmetic, one process, one thread.

* ``--faults``: per run, the minimum time and the page faults (``getrusage``) of
  densflow's default and of the Newton–CG-on-the-potential peer on the 2D paper
  problems (weights (1, 3e-4, 1e-4)), each alone after a warm-up.
* ``--fused``: the same 2D problems with and without the compiled line search and new
  state of Newton in the potential (``densflow.kernels.fused2d``), interleaved.
* ``--small``: 2D 64² KL + Dirichlet, densflow's default against mirror descent, warm;
  and the fixed cost of a solve (``max_iter=0``) at 1D 512 and 2D 64².

``--malloc pinned`` sets glibc's mmap and trim thresholds first, as ``peers.py`` does.

Usage::

    python benchmarks/solve_costs.py --faults [--sizes 256 512] [--malloc pinned]
    python benchmarks/solve_costs.py --fused [--sizes 128 256 512] [--malloc pinned]
    python benchmarks/solve_costs.py --small
"""

import argparse
import os
import resource
import sys
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import densflow as df  # noqa: E402
import peers  # noqa: E402
from densflow import gridproblem  # noqa: E402

CAPS = {"newton": 200, "first": 100_000}


def problem(prefix):
    return next(p for p in peers.problems() if p.name.startswith(prefix)).build()


def timed(run, repeats):
    """``(minimum time [s], page faults of each run)`` over ``repeats`` runs."""
    times, faults = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return min(times), faults


def faults(sizes, repeats):
    for n in sizes:
        E, p0 = problem(f"2D {n}² (1,")
        for who, run in (("densflow default", lambda: df.solve(E, p0, tol=peers.TOL)),
                         ("Newton-CG potential", lambda: peers.run_potential_peer(
                             E, p0, CAPS, 60))):
            run()
            t, f = timed(run, repeats)
            print(f"2D {n}²  {who:20s} {t * 1e3:8.2f} ms   faults a run {f}", flush=True)


def fused(sizes, repeats):
    general = gridproblem.fused_step

    def without_2d(step, energy, line_search, positive=True):
        if getattr(step, "dim", 1) == 2:
            return None
        return general(step, energy, line_search, positive)

    for n in sizes:
        E, p0 = problem(f"2D {n}² (1,")
        best = {"fused": [], "general": []}
        for _ in range(repeats):
            for mode in best:
                gridproblem.fused_step = general if mode == "fused" else without_2d
                best[mode].append(timed(lambda: df.solve(E, p0, tol=peers.TOL), 1)[0])
        gridproblem.fused_step = general
        print(f"2D {n}²  general path {min(best['general']) * 1e3:8.2f} ms   fused line "
              f"{min(best['fused']) * 1e3:8.2f} ms   (minimum of {repeats}, interleaved)",
              flush=True)


def small(repeats):
    E, p0 = problem("2D 64² (0, 0.0003")
    for who, run in (("densflow default", lambda: df.solve(E, p0, tol=peers.TOL)),
                     ("mirror descent", lambda: peers.run_mirror(E, p0, CAPS, 60))):
        run()
        print(f"2D 64² KL + Dirichlet  {who:18s} {timed(run, repeats)[0] * 1e3:.3f} ms",
              flush=True)
    for prefix in ("1D n=512 (1, 0, 0.0001)", "2D 64² (0, 0.0003"):
        E, p0 = problem(prefix)
        run = (lambda: df.solve(E, p0, tol=peers.TOL, max_iter=0))
        run()
        print(f"{prefix:26s} solve(max_iter=0) {timed(run, 10 * repeats)[0] * 1e6:.1f} µs",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faults", action="store_true")
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--malloc", choices=("default", "pinned"), default="default")
    args = ap.parse_args()
    if args.malloc == "pinned":
        peers.pin_malloc()
    if args.faults:
        faults(args.sizes or [256, 512], args.repeats or 6)
    if args.fused:
        fused(args.sizes or [128, 256, 512], args.repeats or 8)
    if args.small:
        small(args.repeats or 200)
    if not (args.faults or args.fused or args.small):
        ap.error("say --faults, --fused or --small")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
