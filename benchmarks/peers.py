r"""densflow against the methods a numerical-optimisation user would reach for.

What is measured. For every problem (energy ``E = a1 HMinus1 + a2 KL + a3 Dirichlet``
on a periodic grid, ``μ ∝ exp(-V)``) and every method: outer iterations, Hessian-vector
products (second-order methods; "–" otherwise), wall time to ``E ≤ 1e-12`` and its
ratio to densflow's default (``df.solve(E, p0)`` with its defaults). ``E`` is always
densflow's own energy object, the same for every method, and a run counts as converged
only if a fresh ``E.evaluate(p).value`` of its final density is ``≤ 1e-12`` (checked
after the clock stops).

Methods. densflow: its default; the first-order ``method="gradient"`` with the combined
metric; ``method="newton"`` with each metric as preconditioner
(``Newton(preconditioner="metric")``: for energies without an H⁻¹ term the default
``method="newton"`` solves compactly instead; "n/a" when the installed densflow has
no ``method=``). Peers, written on the same energy objects with
numpy/scipy as a user would, each in its strongest reasonable form (see the docstrings
of :func:`run_lbfgs`, :func:`run_newton_cg` and :func:`run_mirror`):
L-BFGS-B on a softmax parametrisation and on ``p = q/Σq`` with ``q > 0`` bounds;
Newton-CG with exact Hessian products and a diagonally scaled Fourier preconditioner,
and unpreconditioned with a wide forcing term (0.5);
entropic mirror descent with Armijo backtracking; Newton-CG on the potential
(p = mu + L_mu phi) and a banded Newton in 1D, both in :mod:`_potential_peers`
(numpy/scipy only). densflow's ``method="newton_potential"`` runs with each of its
linear solvers ("direct", "fourier", "metric"). ``--methods`` restricts the run.

How. BLAS/OpenMP are pinned to one thread before numpy is imported, scipy.fft runs on
one worker. Per problem, every method first runs once untimed with a small iteration
cap (numba compilation, FFT plans); then ``--repeats`` rounds each run every method
once (interleaved, so that a slow phase of the machine hits all methods alike; the
order rotates from round to round) and the minimum time is kept. A method that does
not converge in its first timed round is not repeated (its time is only a lower
bound). Every run has an iteration cap and a time cap (``--time-cap`` seconds, checked
between iterations); a run that hits either is reported as not converged with its
final ``E``. Times include each method's set-up (densflow's metric binding, the
peers' preconditioner symbols) but not building the energy. With ``--burst``, a run
under :data:`BURST_BELOW` is timed as the mean of a burst of :data:`BURST` back-to-back
runs, every method alike (at a few tenths of a millisecond the timer's resolution and
the first call's cache misses otherwise weigh on a single run). With ``--malloc
pinned`` glibc keeps the memory every method frees (:func:`pin_malloc`).

Usage::

    python benchmarks/peers.py [--quick] [--only SUBSTRING] [--repeats 3] [--burst]
        [--malloc pinned] [--time-cap 60] [--json results.json] [--plot peers.png]

Prints one reStructuredText table per problem group (a ``*`` after the iterations marks
a run that did not converge) and a summary table (densflow default against the fastest
converged peer; ratio > 1 means densflow is faster). ``--json`` writes every result:
``{"tol", "repeats", "time_cap", ..., "methods": [{"name", "kind"}], "problems": [{"name",
"group", "dim", "n", "weights", "start", "potential", "results": {method: null (n/a) or
{"iters", "hvp", "cg", "inner", "time", "E", "converged", "note", ...}}}]}`` (``time`` in
seconds; for a run that did not converge, the time at which it stopped). ``--plot``
draws time to solution per problem on a log axis, one colour per method, non-converged
runs as crosses at the time they stopped.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
from functools import partial  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import scipy.fft as sfft  # noqa: E402
from scipy.optimize import Bounds, minimize  # noqa: E402

import densflow as df  # noqa: E402
from densflow.core.operators import dot, laplacian, laplacian_symbol  # noqa: E402
from _tables import print_rst_table  # noqa: E402  (benchmarks/ is on sys.path as a script)
import _potential_peers as PP  # noqa: E402

TOL = 1e-12
#: ``--burst``: runs faster than this [s] are timed as the mean of BURST runs.
BURST_BELOW = 5e-3
BURST = 4


# ----------------------------------------------------------------------------- problems
def _v_paper_1d(x):
    return np.sin(4 * np.pi * x)


def _v_paper_2d(x1, x2):
    return np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2)


def _v_contrast_1d(x):
    return 3 * np.sin(2 * np.pi * x) + 1.5 * np.cos(6 * np.pi * x)


def _v_contrast_2d(x1, x2):
    return 3 * np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2) + 1.5 * np.cos(6 * np.pi * x1)


def _energy(grid, mu, weights):
    a1, a2, a3 = weights
    terms = [(a1, df.energies.HMinus1), (a2, df.energies.KL), (a3, df.energies.Dirichlet)]
    return sum(a * cls(grid, mu) for a, cls in terms if a > 0)


def _bump(grid, x0=0.5, sigma=0.08):
    """``exp(-|x - x0|²/(2σ²)) + 1e-3·max``, normalised (periodic distance)."""
    coords = grid.coordinates()
    coords = (coords,) if grid.dim == 1 else coords
    r2 = sum(((c - x0 + 0.5) % 1.0 - 0.5) ** 2 for c in coords)
    b = np.exp(-r2 / (2 * sigma**2))
    b += 1e-3 * b.max()
    return b / b.sum()


def _w(weights):
    return "(" + ", ".join(f"{a:g}" for a in weights) + ")"


def _size(dim, n):
    return f"1D n={n}" if dim == 1 else f"2D {n}²"


class Problem:
    """A named problem; the energy and start are built on demand (large grids)."""

    def __init__(self, group, dim, n, potential, weights, start="uniform", label=None):
        self.group, self.dim, self.n = group, dim, n
        self.potential, self.weights, self.start = potential, weights, start
        self.name = label or f"{_size(dim, n)} {_w(weights)}"

    def build(self):
        grid = df.Grid(self.n, self.dim)
        mu = grid.gibbs(self.potential)
        p0 = grid.uniform() if self.start == "uniform" else _bump(grid)
        return _energy(grid, mu, self.weights), p0

    def describe(self):
        return {"name": self.name, "group": self.group, "dim": self.dim, "n": self.n,
                "weights": list(self.weights), "start": self.start,
                "potential": self.potential.__name__}


G_PAPER1 = "Paper panels, 1D n=512, V = sin 4πx"
G_PAPER2 = "Paper panels, 2D 64², V = sin 4πx1 sin 4πx2"
G_SCALE = "2D grid sizes, V = sin 4πx1 sin 4πx2, weights (1, 3e-4, 1e-4)"
G_CONTRAST = ("High contrast, V = 3 sin 2πx1 sin 2πx2 + 1.5 cos 6πx1 "
              "(1D: 3 sin 2πx + 1.5 cos 6πx)")
G_LONG = "1D n=65536, V = sin 4πx, weights (1, 1e-3, 1e-4)"


def problems():
    out = []
    for w in [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)]:
        out.append(Problem(G_PAPER1, 1, 512, _v_paper_1d, w))
    for w in [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]:
        out.append(Problem(G_PAPER2, 2, 64, _v_paper_2d, w))
    for n in (128, 256, 512):
        out.append(Problem(G_SCALE, 2, n, _v_paper_2d, (1, 3e-4, 1e-4)))
    for dim, n in ((1, 512), (2, 128), (2, 256)):
        w = (1, 1e-3, 1e-4) if dim == 1 else (1, 3e-4, 1e-4)
        v = _v_contrast_1d if dim == 1 else _v_contrast_2d
        for start in ("uniform", "bump"):
            out.append(Problem(G_CONTRAST, dim, n, v, w, start,
                               label=f"{_size(dim, n)} contrast {_w(w)}, {start} start"))
    out.append(Problem(G_LONG, 1, 2**16, _v_paper_1d, (1, 1e-3, 1e-4)))
    return out


# ------------------------------------------------------------------------------ helpers
def _terms(E):
    """``(a1, a2, a3, L_mu^+ solver or None)`` of an energy."""
    w = E.weights
    solvers = [t.solver for _, t in E.active_terms if t.kind == "wasserstein"]
    return w["wasserstein"], w["fisher_rao"], w["mahalanobis"], (solvers[0] if solvers else None)


def _outcome(iters, p, elapsed, note="", hvp=None, cg=None, extra=None):
    out = {"iters": int(iters), "hvp": None if hvp is None else int(hvp),
           "cg": None if cg is None else int(cg), "time": float(elapsed), "p": p, "note": note}
    if extra:
        out.update(extra)
    return out


class _Clock:
    """Wall clock of one run with its time cap."""

    def __init__(self, cap):
        self.cap, self.t0 = cap, time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.t0

    def stop_note(self, k, cap):
        """Why a run stops before iteration ``k`` (iteration or time cap), or ``""``."""
        if k >= cap:
            return f"iteration cap {cap}"
        if self.over():
            return f"time cap {self.cap:g} s"
        return ""

    def over(self):
        return self.elapsed() > self.cap


# ---------------------------------------------------------------------- densflow runs
def _sum(a):
    return None if a is None else int(np.sum(a))


def run_densflow(E, p0, caps, time_cap, **kw):
    """``df.solve`` with the time cap as a callback; ``kw`` are solve's keywords."""
    newton = kw.get("method") in ("newton", "newton_potential") or kw.get("method") is None
    clock = _Clock(time_cap)
    try:
        res = df.solve(E, p0, tol=TOL, max_iter=caps["newton"] if newton else caps["first"],
                       callback=lambda *a: clock.over(), **kw)
    except TypeError as exc:  # a densflow without method= (Newton being added)
        if "method" not in str(exc):
            raise
        return None
    elapsed = clock.elapsed()
    used = f"{res.info.get('method', 'gradient')}, {res.metric}"
    note = "" if res.converged else (res.message or "")
    extra = {"used": used}
    if newton:
        extra["inner"] = _sum(getattr(res, "inner_iterations", None))
    return _outcome(res.n_iter, res.p, elapsed, note, extra=extra,
                    hvp=_sum(getattr(res, "hessian_products", None)) if newton else None,
                    cg=_sum(getattr(res, "cg_iterations", None)) if newton else None)


def run_potential_densflow(E, p0, caps, time_cap, preconditioner):
    """``method="newton_potential"`` with one linear solver ("n/a" where it does not
    apply: no H⁻¹ term, or ``direct`` outside 1D)."""
    from densflow.potential_newton import PotentialNewton, applies
    if not applies(E) or (preconditioner == "direct" and E.grid.dim != 1):
        return None
    out = run_densflow(E, p0, caps, time_cap, method="newton_potential",
                       newton=PotentialNewton(preconditioner=preconditioner))
    return out


def run_gradient(E, p0, caps, time_cap):
    out = run_densflow(E, p0, caps, time_cap, metric="combined", method="gradient")
    if out is None:  # before method= existed, the descent was the gradient method
        out = run_densflow(E, p0, caps, time_cap, metric="combined")
    return out


# ------------------------------------------------------------------------------ L-BFGS-B
def run_lbfgs(E, p0, caps, time_cap, form="softmax", memory=10):
    r"""L-BFGS-B (scipy) on an unconstrained or bound-constrained reparametrisation.

    * ``softmax``: :math:`p = \mathrm{softmax}(z)`, :math:`\nabla_z = p\,(g - p\cdot g)`,
      started from :math:`z = \log p_0`; always a positive probability vector.
    * ``normalised``: :math:`p = q/\sum q` with bounds :math:`q \ge 10^{-300}`,
      :math:`\nabla_q = (g - p\cdot g)/\sum q`, started from :math:`q = p_0`.

    Every function call is one ``E.evaluate(p)`` (value and gradient; in 2D the H⁻¹
    term's solve to its default 1e-13). ``ftol = gtol = 0``: only reaching
    :math:`E \le 10^{-12}` (checked in the callback, which raises ``StopIteration``),
    the caps or a line-search failure stop it. ``memory=10`` (scipy's default): on
    the 1D n=512 panels 5 and 10 pairs were equally fast, 20 and 50 took a few fewer
    iterations but longer; on a 2D 64² panel 10 and 30 were within the noise.
    ``maxls=50`` instead of 20, so that a hard line search does not end the run early.
    """
    shape = p0.shape
    clock = _Clock(time_cap)
    last = {"value": math.inf, "iters": 0}

    if form == "softmax":
        def to_p(x):
            z = x.reshape(shape)
            w = np.exp(z - z.max())
            return w / w.sum()

        def fun(x):
            p = to_p(x)
            st = E.evaluate(p)
            g = st.gradient
            return st.value, (p * (g - dot(p, g))).ravel()

        x0, bounds = np.log(p0).ravel(), None
    else:
        def to_p(x):
            return x.reshape(shape) / x.sum()

        def fun(x):
            total = x.sum()
            p = x.reshape(shape) / total
            st = E.evaluate(p)
            g = st.gradient
            return st.value, ((g - dot(p, g)) / total).ravel()

        x0, bounds = p0.ravel().copy(), Bounds(np.full(p0.size, 1e-300), np.inf)

    def callback(intermediate_result):
        last["iters"] += 1
        last["value"] = intermediate_result.fun
        if intermediate_result.fun <= TOL or clock.over():
            raise StopIteration

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=callback,
                       options={"maxiter": caps["first"], "maxfun": 10 * caps["first"],
                                "maxcor": memory, "ftol": 0.0, "gtol": 0.0, "maxls": 50})
    elapsed = clock.elapsed()
    note = "" if last["value"] <= TOL else f"scipy: {res.message}"
    return _outcome(last["iters"], to_p(res.x), elapsed, note, extra={"nfev": int(res.nfev)})


# ----------------------------------------------------------------------------- Newton-CG
def _fourier_preconditioner(E, p, a1, a2, a3, scaled):
    r"""Mass-preserving :math:`v \mapsto T F T v` approximating the inverse Hessian.

    ``scaled`` (default): :math:`T = \operatorname{diag}(\mu^{1/2})` and :math:`F` the
    Fourier multiplier :math:`1/(\alpha_1/\hat A + \alpha_2\,\overline{\mu/p} +
    \alpha_3\bar\mu\hat A)`, from :math:`L_\mu^+ \approx \mu^{-1/2}A^+\mu^{-1/2}`
    (the H⁻¹ solver's own preconditioner); :math:`T^{-1} H T^{-1}` is then close to a
    constant-coefficient operator as :math:`p \to \mu` even when μ has high contrast.
    ``scaled=False``: :math:`T = I`, symbol :math:`\alpha_1/(\bar\mu\hat A) +
    \alpha_2\,\overline{1/p} + \alpha_3\hat A`, :math:`\bar\mu = 1/N` (the textbook
    constant-coefficient form; the same for uniform μ; measured, it needs about as many
    Hessian products on the paper panels, 1.2× as many on the 1D high-contrast problems
    and 5–7× as many at 2D 128²).
    """
    grid = E.grid
    Ahat = laplacian_symbol(grid.n, grid.dim)
    axes = tuple(range(grid.dim))
    shape = p.shape
    if scaled:
        mu = E.mu
        t = np.sqrt(mu)
        c1, c2, c3 = 1.0, float(np.mean(mu / p)), float(np.mean(mu))
    else:
        t = None
        c1, c2, c3 = grid.size, float(np.mean(1.0 / p)), 1.0
    symbol = a2 * c2 + a3 * c3 * Ahat
    if a1 > 0:
        with np.errstate(divide="ignore"):
            symbol = symbol + a1 * c1 / Ahat  # +inf at k = 0
    inv = np.zeros_like(symbol)
    np.divide(1.0, symbol, out=inv, where=np.isfinite(symbol) & (symbol > 0))
    if t is None:
        inv.flat[0] = 0.0  # the multiplier alone maps onto mass zero

        def apply(r):
            return sfft.irfftn(sfft.rfftn(r, axes=axes) * inv, s=shape, axes=axes)
        return apply

    def apply(r):
        z = t * sfft.irfftn(sfft.rfftn(t * (r - r.mean()), axes=axes) * inv, s=shape, axes=axes)
        z -= z.mean()
        return z
    return apply


def _pcg(hvp, b, prec, rtol, maxit):
    """PCG from 0 for ``H x = b``; stops at ``sqrt(r·Pr) ≤ rtol·sqrt(b·Pb)``."""
    x = np.zeros_like(b)
    r = b.copy()
    z = prec(r)
    d = z.copy()
    rz = rz0 = dot(r, z)
    it = 0
    if not rz > 0:
        return x, 0
    while it < maxit:
        it += 1
        hd = hvp(d)
        dhd = dot(d, hd)
        if not dhd > 0:  # cannot happen for p > 0 (E is convex); rounding guard
            break
        alpha = rz / dhd
        x += alpha * d
        r -= alpha * hd
        z = prec(r)
        rz_new = dot(r, z)
        if rz_new <= rtol * rtol * rz0:
            break
        d *= rz_new / rz
        d += z
        rz = rz_new
    return x, it


def run_newton_cg(E, p0, caps, time_cap, scaled=True, forcing_max=1e-3, c1=1e-4,
                  cg_max=1000, boundary=0.995, tol_aware=True, precondition=True):
    r"""Inexact Newton-CG with exact Hessian products, written with numpy + scipy.fft.

    At :math:`p` with :math:`g = \nabla E`: PCG on the mass-zero subspace for
    :math:`H d = -(g - \bar g)`, :math:`H v = \alpha_1 L_\mu^+ v + \alpha_2 v/p +
    \alpha_3 A v` (projected to mass zero), :math:`L_\mu^+` by the H⁻¹ term's own solver
    (exact in 1D; CG to ``max(1e-13, 0.1 η_k)`` in 2D), :math:`A` by
    :func:`densflow.core.operators.laplacian`; preconditioner :func:`_fourier_preconditioner`.

    Forcing :math:`\eta_k = \min(10^{-3}, \max(\sqrt{E_k}, \sqrt{\tau/(10E_k)}))`,
    :math:`\tau = 10^{-12}`: :math:`\sqrt{E_k} \sim \lVert g\rVert` gives quadratic
    convergence; the second bound (densflow's Newton uses it too) stops the last step
    from solving more accurately than :math:`\tau` needs (15–30% fewer products on the
    small panels). The cap was chosen by measurement (1D n=512 and 2D 64² panels and
    high-contrast problems; caps 0.5, 0.1, 1e-2, 1e-3, 1e-4, and an adaptive cap that
    tightens after a boundary-limited step): with the textbook 0.5 or 0.1 the loose
    early directions ignore the 1/p structure of the KL Hessian, are cut to tiny steps
    by the positivity rule and the high-contrast runs stall; 1e-2 or the adaptive cap
    save 20–30% of the products on the paper panels but cost 1.3–2× on the
    high-contrast ones (1e-2 had not converged after 27 steps from the 2D 128² bump);
    1e-4 only adds products. (Eisenstat–Walker's choices are loose early, like the
    0.5 cap, and were not tried.) ``tol_aware=False`` drops the second bound.

    Globalisation: Armijo (``c1``, halving) along :math:`p + t d` from
    :math:`t = \min(1, 0.995\,t_{\max})`, :math:`t_{\max}` the largest step keeping
    :math:`p > 0`; trials in :math:`O(N)` with ``E.line``. If no step is accepted, one
    try along the preconditioned gradient, else the run stops. The state is
    re-evaluated from the density every 5 steps and before convergence is declared.

    ``precondition=False`` (with a wide ``forcing_max = 0.5``): plain CG on the
    mass-zero subspace. Without an H⁻¹ term the Hessian :math:`\alpha_2/p + \alpha_3 A`
    is well conditioned on the paper's grids (2D 64², weights (0, 3e-4, 1e-4), near μ:
    :math:`\alpha_2/p` between about 0.6 and 4.2, :math:`\alpha_3\hat A` at most 3.3),
    so CG needs a few products per step, each a stencil and no transform.
    """
    a1, a2, a3, solver = _terms(E)
    n = E.grid.n
    clock = _Clock(time_cap)
    st = E.evaluate(p0.copy())
    k = hv = cg = 0
    inner_its = [0]  # 2D: CG iterations of the inner L_mu^+ solves
    note = ""
    fresh = True
    while True:
        if st.value <= TOL:
            if fresh:
                break
            st, fresh = E.evaluate(st.p), True  # confirm on a fresh evaluation
            continue
        note = clock.stop_note(k, caps["newton"])
        if note:
            break
        p, g = st.p, st.gradient
        E_k = max(st.value, 1e-300)
        eta = min(forcing_max, max(math.sqrt(E_k), math.sqrt(TOL / (10 * E_k)) if tol_aware else 0))
        inner = max(1e-13, 0.1 * eta)
        inv_p = 1.0 / p

        def hvp(v):
            out = a3 * laplacian(v, n) if a3 else np.zeros_like(v)
            if a2:
                out += a2 * v * inv_p
            if a1:
                out += a1 * solver.solve(v, rtol=inner)
                inner_its[0] += solver.last_iterations if v.ndim == 2 else 0
            out -= out.mean()
            return out

        prec = (_fourier_preconditioner(E, p, a1, a2, a3, scaled) if precondition
                else (lambda r: r - r.mean()))
        d, its = _pcg(hvp, -(g - g.mean()), prec, eta, cg_max)
        hv += its
        cg += its
        accepted = None
        for direction in (d, None):
            if direction is None:  # fallback: preconditioned gradient
                direction = -prec(g)
            direction -= direction.mean()
            slope = dot(g, direction)
            if not slope < 0:
                continue
            neg = direction < 0
            t = 1.0
            if neg.any():
                t = min(1.0, boundary * float(np.min(p[neg] / -direction[neg])))
            line = E.line(st, -direction, positive=True)
            while t > 1e-14:
                if line.delta(t) <= c1 * t * slope:
                    accepted = line.state_at(t)
                    break
                t *= 0.5
            if accepted is not None:
                break
        if accepted is None:
            note = f"line search failed at iteration {k}"
            break
        st, fresh = accepted, False
        k += 1
        if k % 5 == 0:
            st, fresh = E.evaluate(st.p), True
    elapsed = clock.elapsed()
    return _outcome(k, st.p, elapsed, note, hvp=hv, cg=cg, extra={"inner": inner_its[0]})


# ------------------------------------------------------------------------ mirror descent
def run_mirror(E, p0, caps, time_cap, t0=1e3, c1=1e-4, grow=2.0):
    r"""Entropic mirror descent (exponentiated gradient) with Armijo backtracking.

    :math:`p^+ = p\,e^{-t(g - c)}/Z` (``c = p·g``, shifted by the max before ``exp``),
    :math:`t` from the last accepted step × 2 (first ``1e3``), halved until
    :math:`E(p^+) \le E(p) + c_1\, g\cdot(p^+ - p)`. Each trial is a full
    ``E.evaluate`` (the path is curved, so no O(N) line restriction).
    """
    clock = _Clock(time_cap)
    st = E.evaluate(p0.copy())
    t = t0 / grow
    k = 0
    note = ""
    with np.errstate(all="ignore"):
        while st.value > TOL:
            note = clock.stop_note(k, caps["first"])
            if note:
                break
            p, g = st.p, st.gradient
            c = dot(p, g)
            t *= grow
            accepted = None
            while t > 1e-30:
                u = -t * (g - c)
                u -= u.max()
                q = p * np.exp(u)
                q /= q.sum()
                trial = E.evaluate(q)
                if trial.value - st.value <= c1 * dot(g, q - p) and trial.value < st.value:
                    accepted = trial
                    break
                t *= 0.5
            if accepted is None:
                note = f"line search failed at iteration {k}"
                break
            st = accepted
            k += 1
    elapsed = clock.elapsed()
    return _outcome(k, st.p, elapsed, note)


# ------------------------------------------------------------------ the potential peers
def run_potential_peer(E, p0, caps, time_cap, forcing_max=1e-2):
    """Newton–CG on the potential (:func:`_potential_peers.potential_newton_cg`); "n/a"
    without an H⁻¹ term."""
    a1, a2, a3, _ = _terms(E)
    if not a1:
        return None
    clock = _Clock(time_cap)
    with np.errstate(all="ignore"):
        p, k, hv, note = PP.potential_newton_cg((a1, a2, a3), E.mu, p0, TOL, caps["newton"],
                                                clock.over, forcing_max=forcing_max)
    return _outcome(k, p, clock.elapsed(), note, hvp=hv, cg=hv)


def run_banded_peer(E, p0, caps, time_cap):
    """Banded Newton (:func:`_potential_peers.banded_newton_1d`); "n/a" in 2D."""
    if E.grid.dim != 1:
        return None
    clock = _Clock(time_cap)
    with np.errstate(all="ignore"):
        p, k, note = PP.banded_newton_1d(E, p0, TOL, caps["newton"], clock.over)
    return _outcome(k, p, clock.elapsed(), note)


# ------------------------------------------------------------------------------- methods
NEWTON_METRICS = ("combined", "wasserstein", "fisher_rao", "mahalanobis")
POTENTIAL_SOLVERS = ("direct", "fourier", "metric")


def methods(args):
    """``[(name, kind, run)]``, ``run(E, p0, caps, time_cap)``; kind is "default",
    "densflow" or "peer" (the summary compares the default with the peers)."""
    out = [("densflow default", "default", run_densflow),
           ("densflow gradient/combined", "densflow", run_gradient)]
    for m in NEWTON_METRICS:  # PCG preconditioned by the metric (not the compact solve)
        out.append((f"densflow newton/{m}", "densflow",
                    partial(run_densflow, metric=m, method="newton",
                            newton=df.newton.Newton(preconditioner="metric"))))
    for k in POTENTIAL_SOLVERS:
        out.append((f"densflow newton_potential/{k}", "densflow",
                    partial(run_potential_densflow, preconditioner=k)))
    out += [("L-BFGS-B softmax", "peer", partial(run_lbfgs, form="softmax")),
            ("L-BFGS-B normalised", "peer", partial(run_lbfgs, form="normalised")),
            ("Newton-CG Fourier" + ("" if args.nk_precond == "scaled" else " (plain)"), "peer",
             partial(run_newton_cg, scaled=args.nk_precond == "scaled")),
            ("Newton-CG unpreconditioned, forcing 0.5", "peer",
             partial(run_newton_cg, precondition=False, forcing_max=0.5)),
            ("mirror descent", "peer", run_mirror),
            ("Newton-CG potential", "peer", run_potential_peer),
            ("banded Newton (1D)", "peer", run_banded_peer)]
    if args.methods:
        keep = [m.strip() for m in args.methods.split(",")]
        out = [o for o in out if o[1] == "default" or any(k in o[0] for k in keep)]
    return out


# ----------------------------------------------------------------------------- measuring
def measure(problem, meths, args):
    E, p0 = problem.build()
    caps = {"first": args.max_iter, "newton": args.newton_max_iter}
    warm = {"first": 3, "newton": 2}
    for _, _, run in meths:  # untimed warm-up: numba compilation, FFT plans, basis set-up
        run(E, p0, warm, args.time_cap)
    best = {}
    for rep in range(args.repeats):
        shift = rep % len(meths)  # rotate the order: no method is always first or last
        for name, _, run in meths[shift:] + meths[:shift]:
            if rep > 0 and (best[name] is None or not best[name]["converged"]):
                continue  # n/a, or not converged: its time is only a lower bound
            out = run(E, p0, caps, args.time_cap)
            if out is None:
                best[name] = None
                continue
            if args.burst and out["time"] < BURST_BELOW:
                more = [run(E, p0, caps, args.time_cap)["time"] for _ in range(BURST - 1)]
                out["time"] = (out["time"] + sum(more)) / BURST
            p = out.pop("p")
            with np.errstate(all="ignore"):
                out["E"] = float(E.value(p, check=False))  # fresh, outside the clock
            out["converged"] = bool(out["E"] <= TOL)
            if out["converged"]:
                out["note"] = ""
            elif not out["note"]:
                out["note"] = "stopped above tol"
            prev = best.get(name)
            # a converged run beats any other, then the fastest
            if prev is None or (out["converged"], -out["time"]) > (prev["converged"],
                                                                  -prev["time"]):
                best[name] = out
        print(f"#   {problem.name}: round {rep + 1} done", flush=True)
    return best


# ------------------------------------------------------------------------------- output
def _fmt_time(t):
    if t is None:
        return "–"
    if t < 1:
        return f"{t * 1e3:.3g} ms"
    return f"{t:.3g} s"


def group_table(group, rows_in):
    rows = []
    for problem, results in rows_in:
        ref = results.get("densflow default")
        ref_t = ref["time"] if ref and ref["converged"] else None
        for name, r in results.items():
            label = name
            if r is None:
                rows.append([problem.name, label, "n/a", "n/a", "n/a", "n/a"])
                continue
            if name == "densflow default" and r.get("used"):
                label = f"{name} ({r['used']})"
            hv = "–" if r["hvp"] is None else str(r["hvp"])
            if r["converged"]:
                t = _fmt_time(r["time"])
                ratio = f"{r['time'] / ref_t:.2f}" if ref_t else "–"
                its = str(r["iters"])
            else:
                t = f"not conv. (E={r['E']:.1e}, {_fmt_time(r['time'])})"
                ratio = "–"
                its = f"{r['iters']}*"
            rows.append([problem.name, label, its, hv, t, ratio])
    print()
    print(group)
    print()
    print_rst_table(["problem", "method", "iterations", "Hv products", "time to E ≤ 1e-12",
                     "time / default"], rows)


def summary_table(all_results, kinds):
    rows = []
    for problem, results in all_results:
        ref = results.get("densflow default")
        ref_ok = ref is not None and ref["converged"]
        peers = [(n, r) for n, r in results.items()
                 if kinds[n] == "peer" and r is not None and r["converged"]]
        if peers:
            name, r = min(peers, key=lambda nr: nr[1]["time"])
            peer_cell, peer_t = name, _fmt_time(r["time"])
            ratio = f"{r['time'] / ref['time']:.2f}" if ref_ok else "–"
        else:
            peer_cell, peer_t, ratio = "none converged", "–", "> 1" if ref_ok else "–"
        ref_cell = (_fmt_time(ref["time"]) if ref_ok else
                    ("n/a" if ref is None else f"not conv. (E={ref['E']:.1e})"))
        rows.append([problem.name, ref_cell, peer_cell, peer_t, ratio])
    print()
    print("Summary: densflow default against the fastest converged peer "
          "(ratio = peer time / densflow time; > 1: densflow is faster)")
    print()
    print_rst_table(["problem", "densflow default", "fastest peer", "peer time", "ratio"], rows)


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_json(path, all_results, kinds, args):
    doc = {"tol": TOL, "repeats": args.repeats, "time_cap": args.time_cap,
           "burst": bool(args.burst),
           "max_iter": args.max_iter, "newton_max_iter": args.newton_max_iter,
           "nk_precond": args.nk_precond, "densflow_version": df.__version__,
           "methods": [{"name": n, "kind": k} for n, k in kinds.items()],
           "problems": []}
    for problem, results in all_results:
        entry = problem.describe()
        entry["results"] = {name: None if r is None else {k: _json_value(v) for k, v in r.items()}
                            for name, r in results.items()}
        doc["problems"].append(entry)
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)


def plot(path, all_results, kinds, time_cap):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    names = list(kinds)
    cmap = plt.get_cmap("tab10")
    colours = {n: cmap(i % 10) for i, n in enumerate(names)}
    markers = {"default": "D", "densflow": "o", "peer": "s"}
    nprob = len(all_results)
    fig, ax = plt.subplots(figsize=(9.5, max(4.0, 1.2 + 0.42 * nprob)), dpi=100)
    offsets = np.linspace(-0.34, 0.34, len(names))
    for i, (problem, results) in enumerate(all_results):
        y0 = nprob - 1 - i
        for j, n in enumerate(names):
            r = results.get(n)
            if r is None:
                continue
            y = y0 + offsets[j]
            if r["converged"]:
                ax.plot(r["time"], y, markers[kinds[n]], color=colours[n], ms=5.5)
            else:
                ax.plot(max(r["time"], 1e-4), y, "x", color=colours[n], ms=6, mew=1.6)
        if i:
            ax.axhline(y0 + 0.5, color="0.85", lw=0.6)
    ax.set_xscale("log")
    ax.set_yticks(range(nprob))
    ax.set_yticklabels([p.name for p, _ in reversed(all_results)], fontsize=7.5)
    ax.set_ylim(-0.6, nprob - 0.4)
    ax.set_xlabel("wall time to E ≤ 1e-12 [s] (min of repeats, one thread)")
    ax.grid(axis="x", which="major", color="0.9", lw=0.6)
    handles = [Line2D([], [], ls="", marker=markers[kinds[n]], color=colours[n], label=n)
               for n in names]
    handles.append(Line2D([], [], ls="", marker="x", color="0.3", mew=1.6,
                          label=f"not converged (iteration or {time_cap:g} s cap;\n"
                                "placed at the time it stopped)"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    ax.set_title("Time to solution: densflow (circles, default ◆) vs peers (squares)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------- main
def pin_malloc():
    """glibc's ``mallopt``: arrays up to 32 MiB (its largest mmap threshold) come from
    the heap and freed memory is never returned to the system. The methods share one
    process, so otherwise a run's page faults depend on what the method before it
    freed and glibc trimmed (measured at 2D 256²: 0 to 1,900 faults for the same run).
    Every method runs under the same setting."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3
    if not (libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold,
                                                                     2**31 - 1)):
        raise RuntimeError("mallopt refused the setting")
    print("# malloc pinned: mmap threshold 32 MiB, no trim", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the problems whose name contains this")
    ap.add_argument("--quick", action="store_true", help="only the 1D n=512 and 2D 64² problems")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-cap", type=float, default=60.0, help="seconds per run")
    ap.add_argument("--burst", action="store_true",
                    help=f"time runs under {BURST_BELOW * 1e3:g} ms as the mean of {BURST} "
                         "back-to-back runs")
    ap.add_argument("--max-iter", type=int, default=100_000,
                    help="iteration cap of the first-order methods")
    ap.add_argument("--newton-max-iter", type=int, default=200,
                    help="iteration cap of the Newton methods")
    ap.add_argument("--nk-precond", choices=("scaled", "plain"), default="scaled",
                    help="Newton-CG peer's Fourier preconditioner (see run_newton_cg)")
    ap.add_argument("--methods", default="",
                    help="comma-separated substrings: run only the methods whose name contains "
                         "one of them (and the default)")
    ap.add_argument("--malloc", choices=("default", "pinned"), default="default",
                    help="pinned: glibc keeps freed memory (mmap threshold 32 MiB, no trim), "
                         "so that no method faults pages another one freed (see pin_malloc)")
    ap.add_argument("--json", help="write all results to this JSON file")
    ap.add_argument("--plot", help="draw time to solution per problem to this PNG")
    args = ap.parse_args()
    if args.malloc == "pinned":
        pin_malloc()

    selected = [p for p in problems()
                if args.only in p.name and (not args.quick or (p.dim, p.n) in ((1, 512), (2, 64)))]
    meths = methods(args)
    kinds = {name: kind for name, kind, _ in meths}
    all_results = []
    for problem in selected:
        print(f"# {problem.name}", flush=True)
        all_results.append((problem, measure(problem, meths, args)))

    groups = []
    for problem, _ in all_results:
        if problem.group not in groups:
            groups.append(problem.group)
    for group in groups:
        group_table(group, [(p, r) for p, r in all_results if p.group == group])
    summary_table(all_results, kinds)
    if args.json:
        write_json(args.json, all_results, kinds, args)
    if args.plot:
        plot(args.plot, all_results, kinds, args.time_cap)


if __name__ == "__main__":
    main()
