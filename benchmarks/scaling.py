"""Time per iteration and peak memory of every metric against grid size.

Usage::

    python benchmarks/scaling.py            # full table: 1D 2^9..2^20, 2D 64..1024
    python benchmarks/scaling.py --quick    # small sizes only
    python benchmarks/scaling.py --plot plots/scaling.png
    python benchmarks/scaling.py --profile  # component breakdown against the floor

One iteration is what :func:`densflow.solve` does per first-order step
(``method="gradient"``): the direction (the metric),
the line search (one application of the quadratic terms' operators to the direction,
then O(N) trials) and the gradient at the accepted point. Each (size, metric) runs in
its own process, so "peak MiB" is that process's peak resident memory (Python, numpy
and numba included). Times are medians over repeated iterations after a warm-up run.
The growth exponent is the least-squares slope of log(time) against log(N) over each
range. A straightforward dense implementation (dense W from PyWavelets, dense H1, H2,
A and pinv(L_mu), matrix-vector products, every line-search trial evaluated in full)
is timed at 1D n = 512, 2048 and 2D 64 x 64 for the speed-up column. The first-call
time of the numba kernels is measured in a fresh process with an empty cache.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from _floor import floor_time  # noqa: E402  (benchmarks/ is on sys.path)
from _tables import print_rst_table  # noqa: E402

METRICS = ["combined", "wasserstein", "fisher_rao", "mahalanobis"]
SIZES_1D = [2**k for k in range(9, 21)]
SIZES_2D = [64, 128, 256, 512, 1024]
DENSE = [(1, 512), (1, 2048), (2, 64)]


def _problem(dim, n):
    import densflow as df

    grid = df.Grid(n, dim)
    if dim == 1:
        mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
        a = (1.0, 1e-3, 1e-4)
    else:
        mu = grid.gibbs(lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2))
        a = (1.0, 3e-4, 1e-4)
    E = (a[0] * df.energies.HMinus1(grid, mu) + a[1] * df.energies.KL(grid, mu)
         + a[2] * df.energies.Dirichlet(grid, mu))
    # a smooth start away from mu, so every metric takes full-size steps
    x = grid.coordinates()
    bump = 1 + 0.5 * (np.cos(2 * np.pi * x) if dim == 1 else np.cos(2 * np.pi * x[0]) * np.cos(2 * np.pi * x[1]))
    return grid, E, bump / bump.sum()


def _repeats(N):
    return int(np.clip(2e6 / N, 5, 200))


def measure(dim, n, metric):
    """Run in a child process: median time per iteration, the process's peak RSS and,
    for the combined metric, the memory floor and the component profile."""
    import densflow as df

    from _floor import bandwidth, fma_rate, profile, step_floor, step_passes

    grid, E, p0 = _problem(dim, n)
    t0 = time.perf_counter()
    df.solve(E, p0, metric=metric, max_iter=2, method="gradient")  # warm-up (kernels, caches)
    warm = time.perf_counter() - t0
    # the default tolerance: below it the line search works at rounding level, where
    # its trial counts (and so the time) say nothing about the method
    res = df.solve(E, p0, metric=metric, max_iter=_repeats(grid.size), method="gradient")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"time": float(np.median(res.times)), "iters": int(res.n_iter), "peak_mib": peak,
           "warmup": warm}
    if metric == "combined":
        at = df.solve(E, p0, metric=metric, max_iter=3, method="gradient").p
        rows, trials = profile(E, at, metric)
        bw, rate = bandwidth(), fma_rate()
        out.update(bandwidth=bw, fma_rate=rate, trials=trials, passes=step_passes(rows),
                   memory_floor=step_passes(rows) * 8 * grid.size / bw,
                   floor=step_floor(rows, grid.size, bw, rate), profile=rows)
    return out


class DenseCombined:
    """The straightforward dense implementation (for the speed-up column only)."""

    def __init__(self, dim, n, metric):
        import pywt

        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from dense import difference_matrices, wavelet_matrix

        grid, E, p0 = _problem(dim, n)
        self.p0, self.metric = p0.ravel(), metric
        self.mu = E.mu.ravel()
        self.alpha = [E.weights[k] for k in ("wasserstein", "fisher_rao", "mahalanobis")]
        Ds = difference_matrices(n, dim)
        self.Ds = Ds
        self.A = sum(D.T @ D for D in Ds)
        self.Lpinv = np.linalg.pinv(sum(D.T @ np.diag(self.mu) @ D for D in Ds))
        self.Apinv = np.linalg.pinv(self.A)
        level = pywt.dwt_max_level(n, pywt.Wavelet("db4").dec_len)
        self.W = wavelet_matrix(n, dim, "db4", level)
        DW = [D @ self.W for D in Ds]
        self.H1 = sum(d**2 for d in DW).T.copy()
        self.H2 = (self.W**2).T.copy()
        self.h3 = sum((d**2).sum(axis=0) for d in DW)

    def energy(self, p):
        if np.any(p <= 0):
            return np.inf
        a1, a2, a3 = self.alpha
        r = p - self.mu
        return 0.5 * a1 * r @ self.Lpinv @ r + a2 * np.sum(p * np.log(p / self.mu)) + 0.5 * a3 * r @ self.A @ r

    def gradient(self, p):
        a1, a2, a3 = self.alpha
        r = p - self.mu
        return a1 * self.Lpinv @ r + a2 * (np.log(p / self.mu) + 1) + a3 * self.A @ r

    def metric_apply(self, p, v):
        a1, a2, a3 = self.alpha
        if self.metric == "wasserstein":
            return sum(D.T @ (p * (D @ v)) for D in self.Ds)
        if self.metric == "fisher_rao":
            return p * v
        if self.metric == "mahalanobis":
            return self.Apinv @ v
        with np.errstate(divide="ignore"):
            denom = a3 * self.h3 + (a1 / (self.H1 @ p) if a1 else 0) + (a2 / (self.H2 @ p) if a2 else 0)
        lam = np.where(np.isfinite(denom) & (denom > 0), 1 / denom, 0.0)
        return self.W @ (lam * (self.W.T @ v))

    def step(self, p):
        g = self.gradient(p)
        mg, m1 = self.metric_apply(p, g), self.metric_apply(p, np.ones_like(p))
        s = mg - (mg.sum() / m1.sum()) * m1 if abs(m1.sum()) > 1e-12 * np.abs(m1).sum() else mg
        e0, slope, eta = self.energy(p), s @ g, 1.0
        while self.energy(p - eta * s) - e0 > -0.5 * eta * slope and eta > 1e-14:
            eta /= 2
        return p - eta * s

    def time_per_iteration(self, repeats=5):
        p, times = self.p0.copy(), []
        for _ in range(repeats):
            t0 = time.perf_counter()
            p = self.step(p)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))


def measure_dense(dim, n, metric):
    return {"time": DenseCombined(dim, n, metric).time_per_iteration()}


def measure_compile():
    """First call of the kernels in this process (the parent sets an empty cache dir)."""
    t0 = time.perf_counter()
    for dim, n in ((1, 64), (2, 16)):
        import densflow as df

        grid, E, p0 = _problem(dim, n)
        for metric in METRICS:
            df.solve(E, p0, metric=metric, tol=0.0, max_iter=1, method="gradient")
    return {"time": time.perf_counter() - t0}


def child(args):
    func = {"measure": measure, "dense": measure_dense, "compile": measure_compile}[args[0]]
    out = func(*[a if a in METRICS else int(a) for a in args[1:]]) if args[1:] else func()
    print(json.dumps(out))


def run_child(*args, env=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *map(str, args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def fit_exponent(Ns, ts):
    return float(np.polyfit(np.log(Ns), np.log(ts), 1)[0])


def fmt_time(t):
    return f"{t * 1e6:.0f} µs" if t < 1e-3 else (f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s")


def main():
    ap = argparse.ArgumentParser(description="densflow scaling benchmark")
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--plot", help="write a log-log figure to this PNG")
    ap.add_argument("--json", help="write the raw numbers to this file")
    ap.add_argument("--profile", action="store_true",
                    help="print the combined step's component breakdown against its floor")
    ap.add_argument("--metrics", default=",".join(METRICS),
                    help="comma-separated metrics to time (default: all four)")
    ap.add_argument("--replot", metavar="JSON", help="redraw --plot from a --json file, no runs")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child)
    if args.replot:
        with open(args.replot) as fh:
            raw = json.load(fh)["results"]
        results = {(int(k.split(":")[0]), int(k.split(":")[1]), k.split(":")[2]): v for k, v in raw.items()}
        sizes = {d: sorted({n for (dd, n, _) in results if dd == d}) for d in (1, 2)}
        metrics = [m for m in METRICS if any(k[2] == m for k in results)]
        return _plot(results, sizes, metrics, args.plot or "scaling.png")

    sizes = {1: SIZES_1D[:5] if args.quick else SIZES_1D, 2: SIZES_2D[:3] if args.quick else SIZES_2D}
    metrics = [m.strip() for m in args.metrics.split(",")]
    if "combined" not in metrics or any(m not in METRICS for m in metrics):
        ap.error(f"--metrics must include 'combined' and name only {', '.join(METRICS)}")
    with tempfile.TemporaryDirectory() as cache:
        compile_time = run_child("compile", env={**os.environ, "NUMBA_CACHE_DIR": cache})["time"]
    warm_compile = run_child("compile")["time"]
    results = {}
    for dim in (1, 2):
        for n in sizes[dim]:
            for metric in metrics:
                r = run_child("measure", dim, n, metric)
                results[(dim, n, metric)] = r
                print(f"# {dim}D n={n:<8d} {metric:12s} {fmt_time(r['time']):>10s}/it  "
                      f"peak {r['peak_mib']:.0f} MiB", file=sys.stderr, flush=True)

    print(f"numba first call, empty cache (compilation): {compile_time:.1f} s; "
          f"with the on-disk cache: {warm_compile:.2f} s\n")
    header = ["dim", "n", "N"] + [f"{m} (time/it, peak MiB)" for m in metrics]
    rows = []
    for dim in (1, 2):
        for n in sizes[dim]:
            cells = [f"{fmt_time(results[(dim, n, m)]['time'])}, {results[(dim, n, m)]['peak_mib']:.0f}"
                     for m in metrics]
            rows.append([f"{dim}D", str(n), str(n**dim)] + cells)
        exps = []
        for m in metrics:
            Ns = [n**dim for n in sizes[dim]]
            exps.append(f"exponent {fit_exponent(Ns, [results[(dim, n, m)]['time'] for n in sizes[dim]]):.2f}")
        rows.append([f"{dim}D", "fit", ""] + exps)
    print_rst_table(header, rows)

    print("\nCombined step against its floor (memory: passes x 8N bytes / triad bandwidth; "
          "FMAs / L1 dot-product rate; both measured in the same process; "
          "benchmarks/_floor.py):\n")
    rows = []
    for dim in (1, 2):
        for n in sizes[dim]:
            r = results[(dim, n, "combined")]
            rows.append([f"{dim}D", str(n), fmt_time(r["time"]), f"{r['passes']:.0f}", str(r["trials"]),
                         f"{r['bandwidth'] / 1e9:.1f}", f"{r['fma_rate'] / 1e9:.1f}",
                         fmt_time(r["memory_floor"]), fmt_time(r["floor"]),
                         f"{r['time'] / r['floor']:.1f}×"])
    print_rst_table(["dim", "n", "time/it", "passes", "trials", "GB/s", "GFMA/s", "memory floor",
                     "floor", "ratio"], rows)

    if args.profile:
        for dim in (1, 2):
            for n in sizes[dim]:
                r = results[(dim, n, "combined")]
                print(f"\nComponents at {dim}D n={n} (floor at {r['bandwidth'] / 1e9:.1f} GB/s, "
                      f"{r['fma_rate'] / 1e9:.1f} GFMA/s):\n")
                N = n**dim
                rows = []
                for name, t, passes, fmas in r["profile"]:
                    if passes is None:
                        rows.append([name, fmt_time(t), "", "", "", ""])
                        continue
                    fl = floor_time(passes, fmas, N, r["bandwidth"], r["fma_rate"])
                    rows.append([name, fmt_time(t), f"{passes:.1f}", f"{fmas / N:.0f}" if fmas else "",
                                 fmt_time(fl), f"{t / fl:.1f}×"])
                print_rst_table(["component", "time", "passes", "FMA/N", "floor", "ratio"], rows)

    dense = {}
    if metrics == METRICS:
        print("\nDense implementation (time per iteration) and speed-up of densflow:\n")
        header = ["dim", "n"] + METRICS
        rows = []
        for dim, n in DENSE:
            cells = []
            for m in METRICS:
                d = run_child("dense", dim, n, m)["time"]
                ours = results.get((dim, n, m)) or run_child("measure", dim, n, m)
                dense[(dim, n, m)] = (d, ours["time"])
                cells.append(f"{fmt_time(d)} → {d / ours['time']:.0f}×")
            rows.append([f"{dim}D", str(n)] + cells)
        print_rst_table(header, rows)

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"compile": compile_time, "warm_compile": warm_compile,
                       "results": {f"{k[0]}:{k[1]}:{k[2]}": v for k, v in results.items()},
                       "dense": {f"{k[0]}:{k[1]}:{k[2]}": v for k, v in dense.items()}}, fh, indent=1)
    if args.plot:
        _plot(results, sizes, metrics, args.plot)


def _plot(results, sizes, metrics, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    for ax, dim in zip(axes, (1, 2)):
        Ns = np.array([n**dim for n in sizes[dim]], dtype=float)
        for m, style, marker in zip(metrics, ("-", "--", "-.", ":"), ("o", "s", "^", "v")):
            ts = [results[(dim, n, m)]["time"] for n in sizes[dim]]
            ax.loglog(Ns, ts, linestyle=style, marker=marker, ms=4, mfc="none",
                      label=f"{m} (slope {fit_exponent(Ns, ts):.2f})")
        ref = Ns * np.log2(Ns)
        ax.loglog(Ns, ref / ref[-1] * results[(dim, sizes[dim][-1], "combined")]["time"], "k:", lw=1,
                  label="N log N")
        ax.set_xlabel("N (unknowns)")
        ax.set_ylabel("time per iteration [s]")
        ax.set_title("1D" if dim == 1 else "2D (the L_mu^+ solves dominate: curves overlap)",
                     fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(True, which="both", lw=0.3)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
