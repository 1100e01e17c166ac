"""The 1D saddle-point direct solve of Newton in the potential against the
Fourier-preconditioned CG above ``DIRECT_MAX_N``: outer steps, Hessian products (one per
direct solve, one per CG iteration), the final energy evaluated afresh and the time to
``E <= 1e-12`` (minimum of the repeats, the two interleaved, one process), on the
paper's and the high-contrast 1D potentials of ``peers.py``, three weight sets, uniform
and bump starts.

    python benchmarks/saddle_sizes.py --sizes 4096 8192 16384 32768 65536 --repeats 3
"""

import argparse
import time

import numpy as np

import densflow as df
from densflow.potential_newton import PotentialNewton

import peers

WEIGHTS = [(1, 1e-3, 1e-4), (1, 1e-3, 0), (1, 1e-3, 1e-1)]
KINDS = ("saddle", "fourier")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'n':>6} {'potential':>9} {'weights':>18} {'start':>7}  "
          + "  ".join(f"{k + ' (steps, Hv, E, ms)':>36}" for k in KINDS) + "  ratio")
    for n in args.sizes:
        grid = df.Grid(n, 1)
        for name, v in (("paper", peers._v_paper_1d), ("contrast", peers._v_contrast_1d)):
            mu = grid.gibbs(v)
            for w in WEIGHTS:
                E = peers._energy(grid, mu, w)
                for start in ("uniform", "bump"):
                    p0 = grid.uniform() if start == "uniform" else peers._bump(grid)
                    times = {k: [] for k in KINDS}
                    rows = {}
                    for _ in range(args.repeats):
                        for kind in KINDS:
                            t0 = time.perf_counter()
                            r = df.solve(E, p0, tol=1e-12, max_iter=100,
                                         newton=PotentialNewton(preconditioner=kind))
                            times[kind].append(time.perf_counter() - t0)
                            rows[kind] = (r.n_iter, int(np.sum(r.hessian_products)),
                                          E.evaluate(r.p).value)
                    cells = [f"{rows[k][0]:>3} {rows[k][1]:>4} {rows[k][2]:8.1e} "
                             f"{1e3 * min(times[k]):9.1f}" for k in KINDS]
                    ratio = min(times["fourier"]) / min(times["saddle"])
                    print(f"{n:>6} {name:>9} {str(w):>18} {start:>7}  "
                          + "  ".join(f"{c:>36}" for c in cells) + f"  {ratio:5.2f}", flush=True)


if __name__ == "__main__":
    main()
