"""Timing of the sample losses (issue 16): ``MMD`` against the direct ``cdist``-based
computation and the previous ``(B, M, d)`` implementation, and the Sinkhorn loss at
small ε (iterations, time, marginal error) with its defaults against plain iterations.

Interleaved repeats, minimum of the repeats, one thread. Every MMD variant computes the
value and the gradient in the samples; the direct computation is

    Kxx = exp(-cdist(x, x, "sqeuclidean") / (2 h^2)), Kxy likewise,
    grad = (-(Kxx.sum(1) x - Kxx x) cx + (Kxy.sum(1) x - Kxy y) cy) / h^2

Run: ``python benchmarks/parametric_losses.py [--repeats 7]``.
"""

import argparse
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.spatial.distance import cdist  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tables import print_rst_table  # noqa: E402

from densflow.parametric.losses import MMD, Sinkhorn, SinkhornError  # noqa: E402


def mmd_direct(x, y, h, yy):
    B, M = len(x), len(y)
    Kxx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * h * h))
    np.fill_diagonal(Kxx, 0.0)
    Kxy = np.exp(-cdist(x, y, "sqeuclidean") / (2 * h * h))
    cx, cy = 2.0 / (B * (B - 1)), 2.0 / (B * M)
    value = Kxx.sum() * cx / 2 - Kxy.sum() * cy + yy
    grad = (-(Kxx.sum(1)[:, None] * x - Kxx @ x) * cx + (Kxy.sum(1)[:, None] * x - Kxy @ y) * cy) / h ** 2
    return value, grad


def mmd_three_index(x, y, h, yy):
    """The implementation before issue 16: ``(B, M, d)`` differences."""
    def k(a, b):
        return np.exp(-np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1) / (2 * h * h))
    B, M = len(x), len(y)
    Kxx = k(x, x)
    np.fill_diagonal(Kxx, 0.0)
    Kxy = k(x, y)
    value = Kxx.sum() / (B * (B - 1)) - 2 * Kxy.sum() / (B * M) + yy
    gxx = -(Kxx.sum(1)[:, None] * x - Kxx @ x) / h ** 2
    gxy = -(Kxy.sum(1)[:, None] * x - Kxy @ y) / h ** 2
    return value, 2 * gxx / (B * (B - 1)) - 2 * gxy / (B * M)


def best(fns, repeats):
    """Minimum time of each function over interleaved repeats."""
    times = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            f()
            times[i] = min(times[i], time.perf_counter() - t)
    return times


def mmd_table(repeats):
    rows = []
    for N, d in ((200, 2), (1000, 2), (1000, 16), (2000, 64), (4000, 2)):
        rng = np.random.default_rng(0)
        y, x = rng.standard_normal((N, d)), rng.standard_normal((N, d)) + 0.3
        loss = MMD(y, bandwidth=1.0)
        v0, g0 = loss.value_and_grad_samples(x)
        v1, g1 = mmd_direct(x, y, 1.0, loss._yy)
        v2, g2 = mmd_three_index(x, y, 1.0, loss._yy)
        err = max(abs(v0 - v1) / abs(v1), np.abs(g0 - g1).max() / np.abs(g1).max(),
                  abs(v2 - v1) / abs(v1))
        t = best([lambda: loss.value_and_grad_samples(x), lambda: mmd_direct(x, y, 1.0, loss._yy),
                  lambda: mmd_three_index(x, y, 1.0, loss._yy)], repeats)
        rows.append([f"{N}", f"{d}", f"{1e3 * t[0]:.2f}", f"{1e3 * t[1]:.2f}", f"{1e3 * t[2]:.2f}",
                     f"{t[0] / t[1]:.2f}", f"{err:.1e}"])
    print("MMD value and gradient, B = M = N samples in R^d (ms, min of repeats):\n")
    print_rst_table(["N", "d", "MMD", "direct cdist", "(B, M, d) before", "MMD / cdist",
                     "max rel. diff"], rows)


def sinkhorn_table(repeats):
    rows = []
    for N, eps in ((200, 0.5), (200, 0.1), (200, 0.05), (500, 0.1), (200, 0.01)):
        rng = np.random.default_rng(0)
        y, x = rng.standard_normal((N, 2)), rng.standard_normal((N, 2)) + 0.5
        cells = [f"{N}", f"{eps:g}"]
        for kw in ({}, {"scaling": None, "newton": False}):
            try:
                loss = Sinkhorn(y, eps=eps, **kw)
                t = best([lambda: loss._ot(x, y)], repeats)[0]
                _, plan = loss._ot(x, y)
                err = np.abs(plan.sum(1) - 1 / N).sum() + np.abs(plan.sum(0) - 1 / N).sum()
                cells += [f"{loss.last_iterations}", f"{1e3 * t:.1f}", f"{err:.0e}"]
            except SinkhornError:
                cells += ["fails", "-", "-"]
        rows.append(cells)
    print("\nSinkhorn OT_eps(x, y), N points of N(0, I) and N(0.5, I) in 2D, tol = 1e-9 on the "
          "marginal error, cap 10^4 iterations (ms, min of repeats):\n")
    print_rst_table(["N", "eps", "iterations (default)", "ms", "marginal error",
                     "iterations (plain)", "ms", "marginal error"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    mmd_table(args.repeats)
    sinkhorn_table(max(1, args.repeats // 3))


if __name__ == "__main__":
    main()
