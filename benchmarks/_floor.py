"""The memory floor of one iteration and the per-component profile (benchmarks/scaling.py).

The floor of a component is the larger of two times measured on this machine in the
same process: its memory traffic, the number of passes over ``N`` doubles it needs at
the least (every array it must read or write, once) times ``8 N`` bytes over the
single-core triad bandwidth (``a = b + s c`` on arrays far larger than the caches); and
its multiply-adds (the diagonals' correlations and the transforms' filters) over the
FMA rate of a vectorised dot product from L1 (two loads per FMA, the shape of those
loops). Latency and calls are not counted, so a ratio near 1 is out of reach at small
``N`` and 2–3 is good at large ``N``.

Passes counted per component (first-order combined step, ``L`` levels, ``T`` trial
steps of the line search, ``C`` CG iterations of a 2D solve):

* diagonals: 1D ``L + 2`` (``p`` once per level, ``H1 p`` and ``H2 p`` written);
  2D ``2 L + 2`` (each level's two separable passes);
* eigenvalues: 4 (``H1 p``, ``H2 p``, ``h3`` read, ``lambda`` written);
* wavelet analysis and synthesis: 4 each in 1D (read and write per level, a geometric
  series), 5 in 2D (two passes per level);
* projection, scaling and the residue: 6;
* line setup: ``L_mu^+ s`` 3 in 1D, ``C`` CG iterations of 19 (float32 FFTs) or 22
  passes plus 2 in 2D; ``A s`` 2; the four inner products 5;
* each trial: 4 (``p``, ``s``, ``mu``, ``log(p/mu)``);
* the new state: 12 (``p``, ``s``, two gradients and two line products, ``mu`` read;
  ``q``, the terms' gradients, ``log(q/mu)`` and the total written);
* every tenth iteration the state is re-evaluated from ``p`` (one solve at rtol 1e-13
  in 2D): a tenth of its passes.

Newton's Hessian product: 1D 12 (``L_mu^+ v`` 3, ``v/p`` 3, ``A v`` 2, sums 4); 2D the
inner CG's passes plus 10. The preconditioner's application: analysis, projection and
synthesis (14 in 1D, 16 in 2D).
"""

import time

import numba as nb
import numpy as np


@nb.njit(nogil=True)
def _triad(a, b, c, s):
    for i in range(a.shape[0]):
        a[i] = b[i] + s * c[i]


def bandwidth(n_doubles=1 << 24, repeats=7):
    """Single-core triad bandwidth in bytes per second (three arrays of 128 MiB)."""
    a, b, c = np.empty(n_doubles), np.random.rand(n_doubles), np.random.rand(n_doubles)
    _triad(a, b, c, 0.5)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        _triad(a, b, c, 0.5)
        best = min(best, time.perf_counter() - t0)
    return 3 * 8 * n_doubles / best


@nb.njit(nogil=True, fastmath={"reassoc", "contract"})
def _dot_loop(w, v, repeats):
    total = 0.0
    for _ in range(repeats):
        acc = 0.0
        for i in range(w.shape[0]):
            acc += w[i] * v[i]
        total += acc
    return total


def fma_rate(repeats=20000):
    """Fused multiply-adds per second of a vectorised dot product whose two operands
    sit in L1 (two loads per FMA: the shape of every correlation and transform here)."""
    w, v = np.random.rand(1024), np.random.rand(1024)
    _dot_loop(w, v, 10)
    best = np.inf
    for _ in range(5):
        t0 = time.perf_counter()
        _dot_loop(w, v, repeats)
        best = min(best, time.perf_counter() - t0)
    return 1024 * repeats / best


def diagonal_fmas(basis):
    """FMAs of :meth:`WaveletBasis.diagonals` (both diagonals): 1D two per tap; 2D the
    axis-1 pass (two kernels per factor) and the axis-0 pass (three per tap)."""
    n, L = basis.grid.n, basis.level
    if basis.grid.dim == 1:
        offsets, _, _, _, lengths, _, _ = basis._flat
        return float(2 * np.sum(np.diff(offsets) * lengths))
    _, _, lengths, _, _ = basis._flat
    total = 0.0
    for j in range(1, L + 1):
        m = n >> j
        S_phi, S_psi = lengths[2 * (j - 1)], lengths[2 * (j - 1) + 1]
        total += 2 * n * m * (S_phi + S_psi)                       # axis 1
        blocks = [S_phi, S_psi, S_psi] + ([S_phi] if j == L else [])
        total += 3 * m * m * sum(blocks)                             # axis 0
    return total


def transform_fmas(basis):
    """FMAs of one DWT analysis or synthesis: two filters of ``F`` taps per output pair,
    over the levels (2D: along both axes)."""
    F, N = len(basis.lo), basis.grid.size
    per_level = (F * N) if basis.grid.dim == 1 else (2 * F * N)
    return per_level * sum(0.5**j if basis.grid.dim == 1 else 0.25**j for j in range(basis.level))


def _time(f, budget=0.3, max_repeats=2000):
    f()
    best, spent, k = np.inf, 0.0, 0
    while spent < budget and k < max_repeats:
        t0 = time.perf_counter()
        f()
        dt = time.perf_counter() - t0
        best, spent, k = min(best, dt), spent + dt, k + 1
    return best


def _cg_passes(solver):
    return 19 if solver.mixed else 22


def profile(E, p, metric="combined"):
    """Time and passes of every component of one first-order step at ``p`` (and of
    Newton's Hessian product and preconditioner); returns ``[(name, seconds, passes)]``
    and the number of trial steps ``T``."""
    import pywt

    import densflow as df
    from densflow.kernels import metric as MK
    from densflow.core.operators import dot

    grid = E.grid
    dim, L = grid.dim, None
    op = df.metrics.Safeguard(df.metrics.get(metric).bind(E), E, 0.1)
    bound = op.bound
    state = E.evaluate(p)
    g = state.gradient
    s = op.direction(p, g)
    slope = float(dot(s, g))
    line = E.line(state, s)
    eta, _, T = df.Armijo().search(line, slope)
    solver = next((t.solver for _, t in E.active_terms if hasattr(t, "solver")), None)
    rows = []
    if metric == "combined":
        b = bound.basis
        L = b.level
        h1, h2 = b.diagonals(p)
        lam = bound.eigenvalues(p)
        c = b.analysis(g)
        coeffs = (pywt.wavedec if dim == 1 else pywt.wavedec2)(g, b.wavelet, mode="periodization",
                                                               level=L)
        rows += [
            ("diagonals", _time(lambda: b.diagonals(p)), L + 2 if dim == 1 else 2 * L + 2,
             diagonal_fmas(b)),
            ("eigenvalues", _time(lambda: MK.eigenvalues(h1, h2, bound.a1, bound.a2, bound._a3h3,
                                                         np.empty_like(lam))), 4),
            ("analysis W^T g", _time(lambda: b.analysis(g)), 4 if dim == 1 else 5, transform_fmas(b)),
            ("synthesis W c", _time(lambda: b.synthesis(c)), 4 if dim == 1 else 5, transform_fmas(b)),
            ("pywt analysis (reference)",
             _time(lambda: (pywt.wavedec if dim == 1 else pywt.wavedec2)(
                 g, b.wavelet, mode="periodization", level=L)), None),
            ("pywt synthesis (reference)",
             _time(lambda: (pywt.waverec if dim == 1 else pywt.waverec2)(
                 coeffs, b.wavelet, mode="periodization")), None),
        ]
    rows.append(("direction (all of it)", _time(lambda: op.direction(p, g)),
                 sum(r[2] for r in rows if r[2]) + 6 if metric == "combined" else 4,
                 sum(r[3] for r in rows if len(r) > 3)))
    # the line: setup (operators applied to s), trials, new state
    if solver is not None and dim == 2:
        solver.solve(s, rtol=df.energies.LINE_RTOL)
        line_solve = 2 + solver.last_iterations * _cg_passes(solver)
    else:
        line_solve = 3
    rows += [
        ("line setup (L^+ s, A s, products)", _time(lambda: E.line(state, s)), line_solve + 2 + 5),
        (f"line search ({T} trials)", _time(lambda: df.Armijo().search(line, slope)), 4 * T),
        ("new state", _time(lambda: line.state_at(eta)), 12),
    ]
    if solver is not None and dim == 2:
        solver.solve(p - E.mu)
        refresh = 2 + solver.last_iterations * _cg_passes(solver) + 10
    else:
        refresh = 13
    rows.append(("re-evaluation / 10", _time(lambda: E.evaluate(p)) / 10, refresh / 10))
    # Newton's pieces
    v = s / np.abs(s).max()
    if solver is not None and dim == 2:
        solver.solve(v, rtol=1e-4)
        hvp = 2 + solver.last_iterations * _cg_passes(solver) + 10
    else:
        hvp = 12
    pre = op.preconditioner(p)
    rows += [
        ("Newton: Hessian product (inner rtol 1e-4)", _time(lambda: E.hessian_product(p, v, 1e-4)), hvp),
        ("Newton: preconditioner application", _time(lambda: pre(v)), 14 if dim == 1 else 16),
    ]
    rows = [r if len(r) == 4 else r + (0.0,) for r in rows]
    return rows, T


def floor_time(passes, fmas, N, bw, rate):
    """The larger of the memory floor and the FMA floor."""
    return max(passes * 8 * N / bw, fmas / rate)


def step_floor(rows, N, bw, rate):
    """Floor of one first-order step (memory and FMAs of its parts)."""
    parts = ("direction (all of it)", "line setup", "line search", "new state", "re-evaluation")
    return sum(floor_time(p, f, N, bw, rate) for name, _, p, f in rows if p and name.startswith(parts))


def step_passes(rows):
    """Floor passes of one first-order step: the direction, the line and a tenth of a
    re-evaluation (the rows of :func:`profile` that make up the step)."""
    parts = ("direction (all of it)", "line setup", "line search", "new state", "re-evaluation")
    return sum(p for name, _, p, _ in rows if p and name.startswith(parts))
