"""Cold start: how long the README's first command waits for numba's compilation.

Usage: python benchmarks/cold_start.py [--repeats K] [--case cases/ying2021_fig1.py]

Runs ``densflow run CASE --overwrite -q`` in a fresh process K times with an empty numba
cache (cold: every kernel the case needs is compiled) and K times with the cache the
cold run left (warm: the kernels are loaded), interleaved, each in a scratch folder,
with one thread; prints the wall and CPU times of both and their difference, the time
spent compiling. The machine is shared: quote the range.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd, env, cwd):
    """Wall and CPU seconds of one run of ``cmd`` (children's CPU time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--case", default=str(ROOT / "cases" / "ying2021_fig1.py"))
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "densflow", "run", os.path.abspath(args.case), "--overwrite", "-q"]
    base = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as work:
            env = dict(base, NUMBA_CACHE_DIR=cache)
            cold.append(timed(cmd, env, work))
            warm.append(timed(cmd, env, work))
    print(f"{Path(args.case).name}, {args.repeats} interleaved pairs, one thread")
    print(f"{'':8s}{'wall [s]':>16s}{'CPU [s]':>16s}")
    for label, runs in (("cold", cold), ("warm", warm)):
        w = sorted(r[0] for r in runs)
        c = sorted(r[1] for r in runs)
        print(f"{label:8s}{w[0]:7.1f} – {w[-1]:5.1f}{c[0]:9.1f} – {c[-1]:5.1f}")
    diff = sorted(a[0] - b[0] for a, b in zip(cold, warm))
    cdiff = sorted(a[1] - b[1] for a, b in zip(cold, warm))
    print(f"{'compile':8s}{diff[0]:7.1f} – {diff[-1]:5.1f}{cdiff[0]:9.1f} – {cdiff[-1]:5.1f}")


if __name__ == "__main__":
    main()
