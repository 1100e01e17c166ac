r"""Time-accurate flows: densflow.flow against peers written here.

Problems (``--problem``). ``fokker-planck``: 2D Fokker–Planck :math:`\partial_t\rho =
\nabla\cdot(\nabla\rho + \rho\nabla V)` on the unit torus, :math:`V = 2\sin 2\pi x_1
\sin 2\pi x_2`, from a Gaussian bump (width 0.1) on a floor of 0.05, to ``T = 0.05``.
``porous-medium``: :math:`\partial_t\rho = \Delta\rho^2` (the Wasserstein flow of
``PorousMedium(grid, 2)``) from the same start to ``T = 0.005``. Every method integrates
the same semi-discrete system, the centred finite-volume flux :math:`\dot p = -\sum_d
D_d^\top(m_d \odot D_d u(p))`, :math:`u` the energy's gradient (:math:`\log p + V`,
:math:`2Np`), :math:`m_d` the arithmetic mean of the two cells of an edge, so the error
measured is the time integration's: L¹ distance at ``T`` to a reference of the same
discretisation computed by densflow's BDF2 with ``rtol = 1e-8`` (up to 128² checked
against ``solve_ivp`` Radau at ``rtol = 1e-10``; the output prints that difference). The
space error of each grid against the next finer one is printed too.

Methods (each with its accuracy knob swept, cheapest first, until L¹ ≤ ``--target``;
then timed ``--repeats`` times in all, interleaved, minimum kept). **Every run is
stopped after** ``--cap`` **seconds** (SIGALRM) and reported as "> cap"; rows are
printed as soon as they are done:

* densflow ``flow`` with ``scheme="bdf2"`` and ``"euler"``, adaptive (``rtol`` swept by
  factors of 10^(1/2)) and fixed (``dt = T/m``, ``m`` doubled);
* MOL: ``scipy.integrate.solve_ivp(method="BDF")`` with the analytic sparse Jacobian
  (``rtol`` swept, ``atol = rtol/100`` per unit of ρ);
* explicit Euler from its stability limit, :math:`dt = 1.9/|\lambda_{\max}|` of the
  Jacobian at ``p0`` (ARPACK), halved until the target is met;
* implicit Euler, fully implicit (mobility at the new state), Newton with a sparse
  direct solve (SuperLU) per iteration, ``dt = T/m`` swept (the LJKO way).

One thread (BLAS/OpenMP pinned before numpy is imported; scipy.fft on one worker).
A second table (``--step-sizes``; empty to skip): densflow's cost per BDF2 step, Newton
and CG iterations from 64² to 1024² (fixed ``dt = T/20``), both problems, with the
log–log slope of time per step against N. ``--adaptive-table N``: steps against
accuracy (at ``T`` and the largest over ``[0, T]``) of adaptive and fixed BDF2 at N².

Usage::

    python benchmarks/flows.py [--problem fokker-planck|porous-medium] [--sizes 128 256 512]
        [--step-sizes 64 128 256 512 1024] [--target 1e-4] [--repeats 3] [--cap 120]
        [--skip-peers-above 512] [--steps-only] [--adaptive-table N]
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import densflow as df  # noqa: E402
from densflow.energies import KL, PorousMedium  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _tables import print_rst_table  # noqa: E402

T = 0.05
#: Final time of the porous-medium problem (its fastest diffusivity, 2 rho at the bump's
#: peak, is about 20 times the Fokker-Planck one).
T_PM = 0.005


def V(a, b):
    return 2.0 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b)


def start(grid):
    x1, x2 = grid.coordinates()
    p0 = np.exp(-((x1 - 0.3) ** 2 + (x2 - 0.6) ** 2) / (2 * 0.1**2)) + 0.05
    return p0 / p0.sum()


def problem(n):
    """Fokker–Planck: ``(grid, p0, energy, finite volume, T)``."""
    grid = df.Grid(n, 2)
    x1, x2 = grid.coordinates()
    v = V(x1, x2).ravel()
    fv = FiniteVolume(n, lambda p: np.log(p) + v, lambda p: 1.0 / p)
    return grid, start(grid), KL(grid, grid.gibbs(V)), fv, T


def porous_problem(n):
    """Porous medium :math:`\partial_t\rho = \Delta\rho^2` (the Wasserstein flow of
    ``PorousMedium(grid, 2)``, :math:`\delta F/\delta p = 2\rho = 2Np`)."""
    grid = df.Grid(n, 2)
    N = grid.size
    fv = FiniteVolume(n, lambda p: 2.0 * N * p, lambda p: np.full(p.shape, 2.0 * N))
    return grid, start(grid), PorousMedium(grid, 2), fv, T_PM


PROBLEMS = {"fokker-planck": problem, "porous-medium": porous_problem}


# ------------------------------------------------------------------ the semi-discrete system
class FiniteVolume:
    r""":math:`f(p) = -\sum_d D_d^\top(m_d\odot D_d u(p))` (``u`` the energy's gradient,
    ``du`` its derivative, a diagonal) and its sparse Jacobian."""

    def __init__(self, n, u, du):
        self.n, self.u, self.du = n, u, du
        N = n * n
        P = sp.diags([np.ones(n - 1), np.ones(1)], [1, -(n - 1)], shape=(n, n), format="csr")
        eye = sp.identity(n, format="csr")
        self.S = [sp.kron(P, eye, format="csr"), sp.kron(eye, P, format="csr")]
        I = sp.identity(N, format="csr")
        self.D = [n * (S - I) for S in self.S]
        self.DT = [D.T.tocsr() for D in self.D]
        self.I = I

    def rhs(self, t, p):
        u = self.u(p)
        out = np.zeros_like(p)
        for S, D, DT in zip(self.S, self.D, self.DT):
            m = 0.5 * (p + S @ p)
            out -= DT @ (m * (D @ u))
        return out

    def jac(self, t, p):
        u = self.u(p)
        J = None
        for S, D, DT in zip(self.S, self.D, self.DT):
            m = 0.5 * (p + S @ p)
            part = DT @ sp.diags(m) @ D @ sp.diags(self.du(p)) + DT @ sp.diags(D @ u) @ (0.5 * (self.I + S))
            J = part if J is None else J + part
        return (-J).tocsc()


def run_mol(fv, p0, T, rtol):
    N = p0.size
    sol = solve_ivp(fv.rhs, (0, T), p0.ravel(), method="BDF", jac=fv.jac, rtol=rtol,
                    atol=rtol * 1e-2 / N)
    return sol.y[:, -1].reshape(p0.shape), {"steps": sol.t.size - 1, "nfev": sol.nfev,
                                             "nlu": sol.nlu}


def run_explicit(fv, p0, T, dt):
    p = p0.ravel().copy()
    m = int(np.ceil(T / dt))
    h = T / m
    for _ in range(m):
        p = p + h * fv.rhs(0, p)
    return p.reshape(p0.shape), {"steps": m}


def explicit_limit(fv, p0):
    lam = spla.eigs(fv.jac(0, p0.ravel()), k=1, which="LM", return_eigenvectors=False, tol=1e-3)
    return 1.9 / abs(lam[0])


def run_implicit_direct(fv, p0, T, m):
    """Fully implicit Euler; Newton with SuperLU on R(p) = p - p_k - h f(p)."""
    h = T / m
    p = p0.ravel().copy()
    newton = 0
    for _ in range(m):
        pk = p.copy()
        for _ in range(30):
            R = p - pk - h * fv.rhs(0, p)
            if np.linalg.norm(R, 1) <= 1e-10:
                break
            J = (fv.I - h * fv.jac(0, p)).tocsc()
            d = spla.splu(J).solve(-R)
            t = 1.0
            neg = d < 0
            if np.any(neg):
                t = min(1.0, 0.995 * float(np.min(p[neg] / -d[neg])))
            p = p + t * d
            newton += 1
    return p.reshape(p0.shape), {"steps": m, "newton": newton}


def run_densflow(E, p0, T, scheme, rtol=None, dt=None):
    r = df.flow(E, p0, T, scheme=scheme, rtol=rtol, dt=dt, atol=None if rtol is None else rtol * 1e-2)
    return r.p, {"steps": r.n_steps, "newton": int(r.newton_iterations.sum()),
                 "cg": int(r.cg_iterations.sum()), "rejected": r.info["rejected"]}


# ------------------------------------------------------------------ sweeps
RTOLS = [10 ** (-k / 2) for k in range(2, 19)]
MS = [2**k for k in range(1, 16)]


class Capped(Exception):
    """A run stopped at its time cap."""


def _alarm(signum, frame):
    raise Capped()


def timed(fn, cap=None):
    """``(seconds, fn())``; with ``cap``, ``(inf, None)`` for a run stopped after ``cap`` s."""
    if cap is not None:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, cap)
    t = time.perf_counter()
    try:
        out = fn()
    except Capped:
        return np.inf, None
    finally:
        if cap is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return time.perf_counter() - t, out


def sweep(make, knobs, ref, target, cap):
    """First knob (cheapest first) whose run meets the target: (knob, time, err, info);
    a run stopped at the cap ends the sweep with time ``inf``."""
    last = None
    for knob in knobs:
        t, out = timed(lambda: make(knob), cap)
        if out is None:
            return (knob, np.inf, np.inf, {})
        p, info = out
        err = float(np.abs(p - ref).sum())
        last = (knob, t, err, info)
        if err <= target:
            return last
    return last


def compare(kind, n, target, repeats, with_peers, cap):
    grid, p0, E, fv, T = PROBLEMS[kind](n)
    run_densflow(E, p0, T, "bdf2", dt=T / 4)  # compile
    t_ref, (ref, _) = timed(lambda: run_densflow(E, p0, T, "bdf2", rtol=1e-8))
    note = f"reference: densflow bdf2 rtol=1e-8 ({t_ref:.1f} s)"
    if n <= 128:
        sol = solve_ivp(fv.rhs, (0, T), p0.ravel(), method="Radau", jac=fv.jac, rtol=1e-10,
                        atol=1e-14, t_eval=[T])
        note += f"; vs solve_ivp Radau rtol=1e-10: L1 {np.abs(sol.y[:, -1] - ref.ravel()).sum():.1e}"
    print(f"\n{kind} {n}x{n}, T = {T}: {note}", flush=True)
    methods = {
        "densflow bdf2 adaptive": (lambda r: run_densflow(E, p0, T, "bdf2", rtol=r), RTOLS),
        "densflow bdf2 fixed": (lambda m: run_densflow(E, p0, T, "bdf2", dt=T / m), MS),
        "densflow euler adaptive": (lambda r: run_densflow(E, p0, T, "euler", rtol=r), RTOLS),
        "densflow euler fixed": (lambda m: run_densflow(E, p0, T, "euler", dt=T / m), MS),
    }
    if with_peers:
        dt_lim = explicit_limit(fv, p0)
        methods.update({
            "MOL solve_ivp BDF sparse": (lambda r: run_mol(fv, p0, T, r), RTOLS),
            "explicit Euler (limit/2^k)": (lambda dt: run_explicit(fv, p0, T, dt),
                                           [dt_lim / 2**k for k in range(8)]),
            "implicit Euler Newton+LU": (lambda m: run_implicit_direct(fv, p0, T, m), MS),
        })
    names = list(methods)
    chosen = {}
    for name in names:
        chosen[name] = sweep(methods[name][0], methods[name][1], ref, target, cap)
        knob, t0, err, _ = chosen[name]
        state = f"> cap {cap:g} s" if not np.isfinite(t0) else f"{t0:.2f} s, L1 {err:.1e}"
        print(f"  swept {name}: {state}", flush=True)
    times = {name: [] for name in methods}
    for rnd in range(repeats - 1):  # the sweep's run is the first repeat
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            knob, t0, err, info = chosen[name]
            if err > target:
                continue
            t, _ = timed(lambda: methods[name][0](knob), cap)
            times[name].append(t)
    rows = []

    def best_time(name):
        knob, t0, err, info = chosen[name]
        return min([t0] + times[name]) if err <= target else np.inf

    peers = [k for k in names if not k.startswith("densflow")]
    best_peer = min((best_time(k) for k in peers), default=np.nan)
    for name in names:
        knob, t0, err, info = chosen[name]
        ok = err <= target
        kn = f"{knob:.1e}" if isinstance(knob, float) else f"T/{knob}"
        if not np.isfinite(t0):
            tcol, ecol = f"> {cap:g} (cap)", "–"
        else:
            tcol, ecol = f"{best_time(name) if ok else t0:.3f}", f"{err:.1e}" + ("" if ok else " *")
        per = info.get("newton", 0) / max(1, info.get("steps", 1))
        if ok and np.isfinite(best_peer):
            ratio = f"{best_peer / best_time(name):.1f}"
        elif ok and peers:  # every peer missed the target or hit the cap
            ratio = f"> {cap / best_time(name):.0f}"
        else:
            ratio = "–"
        rows.append([name, kn, ecol, tcol, str(info.get("steps", "")),
                     f"{per:.2f}" if "newton" in info else "–", ratio])
    print(f"\n{kind} {n}x{n}: time to L1 <= {target:g} at T = {T}; ratio = fastest peer / "
          "method (> 1: faster than every peer); * = target missed; > cap: stopped")
    print_rst_table(["method", "knob", "L1 error", "time [s]", "steps", "Newton/step", "ratio"], rows)
    sys.stdout.flush()
    return ref


# ------------------------------------------------------------------ cost per step
def step_costs(sizes, repeats):
    """Time per BDF2 step (fixed steps, 20 of them), Newton and CG iterations; each
    row printed when it is done."""
    rows, series = [], {"fokker-planck": [], "porous-medium": []}
    header = ["problem", "grid", "ms/step", "Newton/step", "max", "CG/Newton"]
    print("\ndensflow BDF2, fixed steps (20 steps): cost per step", flush=True)
    for n in sizes:
        for kind in series:
            grid, p0, energy, _, T_kind = PROBLEMS[kind](n)
            dt = T_kind / 20
            df.flow(energy, p0, dt * 2, dt=dt)  # compile
            best = np.inf
            for _ in range(repeats):
                t, r = timed(lambda: df.flow(energy, p0, 20 * dt, dt=dt))
                best = min(best, t)
            per = best / r.n_steps
            series[kind].append(per)
            rows.append([kind, f"{n}^2", f"{1e3 * per:.1f}", f"{r.newton_iterations.mean():.2f}",
                         str(int(r.newton_iterations.max())),
                         f"{r.cg_iterations.sum() / max(1, r.newton_iterations.sum()):.1f}"])
            print("  " + "  ".join(rows[-1]), flush=True)
    print_rst_table(header, rows)
    N = np.array(sizes, dtype=float) ** 2
    for label, s in series.items():
        keep = N >= 128**2
        if keep.sum() >= 2:
            slope = np.polyfit(np.log(N[keep]), np.log(np.array(s)[keep]), 1)[0]
            print(f"{label}: log-log slope of time per step against N (128^2 and up): {slope:.2f}")
    sys.stdout.flush()


# ------------------------------------------------------------------ adaptive against fixed
def adaptive_table(kind, n):
    """Steps against accuracy, adaptive and fixed BDF2: the L1 error at ``T`` and its
    maximum over 33 equally spaced times of ``[0, T]``."""
    grid, p0, E, _, T_kind = PROBLEMS[kind](n)
    checks = np.linspace(0.0, T_kind, 33)
    ref = df.flow(E, p0, T_kind, rtol=1e-9, atol=1e-11, save_times=checks).densities
    rows = []
    runs = [(f"fixed T/{m}", dict(dt=T_kind / m)) for m in (32, 64, 128, 256)]
    runs += [(f"adaptive rtol={r:.0e}", dict(rtol=r, atol=r * 1e-2)) for r in (1e-3, 1e-4, 1e-5, 1e-6)]
    print(f"\n{kind} {n}x{n}: BDF2 steps against accuracy (L1 at T and max L1 over [0, T])",
          flush=True)
    for label, opts in runs:
        r = df.flow(E, p0, T_kind, save_times=checks, **opts)
        errs = np.abs(r.densities - ref).reshape(len(checks), -1).sum(axis=1)
        rows.append([label, str(r.n_steps), str(r.info["rejected"]), f"{errs[-1]:.1e}",
                     f"{errs.max():.1e}", f"{checks[int(errs.argmax())]:.4f}"])
        print("  " + "  ".join(rows[-1]), flush=True)
    print_rst_table(["run", "steps", "rejected", "L1 at T", "max L1", "at t"], rows)
    sys.stdout.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="fokker-planck")
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 256])
    ap.add_argument("--step-sizes", type=int, nargs="*", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--target", type=float, default=1e-4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-peers-above", type=int, default=512)
    ap.add_argument("--cap", type=float, default=120.0,
                    help="stop any single run after this many seconds (reported as > cap)")
    ap.add_argument("--steps-only", action="store_true")
    ap.add_argument("--adaptive-table", type=int, default=0, metavar="N",
                    help="print steps against accuracy of adaptive and fixed BDF2 at N^2 and stop")
    args = ap.parse_args(argv)
    try:
        import scipy.fft as sfft
        sfft.set_workers(1)
    except AttributeError:
        pass
    if args.adaptive_table:
        adaptive_table(args.problem, args.adaptive_table)
        return
    if not args.steps_only:
        prev = None
        for n in args.sizes:
            ref = compare(args.problem, n, args.target, args.repeats, n <= args.skip_peers_above,
                          args.cap)
            if prev is not None:
                coarse, pn = prev
                err = np.abs(coarse - ref[:: n // pn, :: n // pn] * (n // pn) ** 2).sum()
                print(f"space error of {pn}^2 against {n}^2 (L1 on the coarse cells): {err:.1e}",
                      flush=True)
            prev = (ref, n)
    if args.step_sizes:
        step_costs(args.step_sizes, args.repeats)


if __name__ == "__main__":
    main()
