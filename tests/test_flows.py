"""Time-accurate flows (densflow.flow) against closed forms, an independent
method-of-lines reference, observed orders, conservation laws and bad input."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import densflow as df
from densflow.core.operators import LinearSolveError
from densflow.core.state import State
from densflow.energies import KL, Dirichlet
from densflow.flows import FlowNewton


def orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


def l1(a, b):
    return float(np.abs(a - b).sum())


def heat_start(grid):
    x = grid.coordinates()
    if grid.dim == 1:
        rho = 1 + 0.5 * np.cos(2 * np.pi * x)
    else:
        rho = 1 + 0.3 * np.cos(2 * np.pi * x[0]) + 0.2 * np.cos(2 * np.pi * (x[0] + 2 * x[1]))
    return rho / rho.sum()


def heat_exact(grid, t):
    """Each Fourier mode k of the initial density decays as exp(-4 pi^2 |k|^2 t)."""
    x = grid.coordinates()
    if grid.dim == 1:
        rho = 1 + 0.5 * np.exp(-4 * np.pi**2 * t) * np.cos(2 * np.pi * x)
    else:
        rho = (1 + 0.3 * np.exp(-4 * np.pi**2 * t) * np.cos(2 * np.pi * x[0])
               + 0.2 * np.exp(-20 * np.pi**2 * t) * np.cos(2 * np.pi * (x[0] + 2 * x[1])))
    return rho / rho.sum()


# --------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("scheme, low", [("bdf2", 1.8), ("euler", 0.9)])
def test_heat_flow_time_order_against_closed_form(scheme, low):
    grid = df.Grid(1024, 1)  # space error ~3e-7, below the smallest time error here
    p0, T = heat_start(grid), 0.02
    E = KL(grid, grid.uniform())
    errs = [l1(df.flow(E, p0, T, dt=T / m, scheme=scheme).p, heat_exact(grid, T))
            for m in (5, 10, 20, 40)]
    assert np.all(orders(errs) >= low), (errs, orders(errs))
    assert np.all(orders(errs) <= low + 0.4)


def test_heat_flow_2d_modes_and_space_order():
    T, errs = 0.01, []
    for n in (8, 16, 32, 64):
        grid = df.Grid(n, 2)
        r = df.flow(KL(grid, grid.uniform()), heat_start(grid), T, dt=T / 100)
        errs.append(l1(r.p, heat_exact(grid, T)))
    assert np.all(orders(errs) >= 1.8), (errs, orders(errs))
    # each mode's amplitude, from the FFT of the finest run
    grid = df.Grid(64, 2)
    r = df.flow(KL(grid, grid.uniform()), heat_start(grid), T, dt=T / 100)
    rho_hat = np.fft.fft2(grid.size * r.p) / grid.size
    a1 = 2 * abs(rho_hat[1, 0])
    a2 = 2 * abs(rho_hat[1, 2])
    assert a1 == pytest.approx(0.3 * np.exp(-4 * np.pi**2 * T), rel=2e-3)
    assert a2 == pytest.approx(0.2 * np.exp(-20 * np.pi**2 * T), rel=1e-2)


@pytest.mark.parametrize("scheme, low", [("bdf2", 1.8), ("euler", 0.9)])
def test_fisher_rao_flow_of_kl_is_exact_per_cell(scheme, low):
    grid = df.Grid(32, 1)
    x = grid.coordinates()
    mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    p0 = np.exp(np.cos(2 * np.pi * x))
    p0 /= p0.sum()
    T = 0.5
    log_p = np.exp(-T) * np.log(p0) + (1 - np.exp(-T)) * np.log(mu)  # + c(t)
    exact = np.exp(log_p) / np.exp(log_p).sum()
    errs = [l1(df.flow(KL(grid, mu), p0, T, metric="fisher_rao", dt=T / m, scheme=scheme).p, exact)
            for m in (10, 20, 40, 80)]
    assert np.all(orders(errs) >= low), (errs, orders(errs))


@pytest.mark.parametrize("scheme, low", [("bdf2", 1.8), ("euler", 0.9)])
def test_mahalanobis_flow_of_dirichlet(scheme, low):
    grid = df.Grid(16, 2)
    mu = grid.gibbs(lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))
    rng = np.random.default_rng(3)
    p0 = rng.uniform(0.5, 1.5, grid.shape)
    p0 /= p0.sum()
    T = 0.5
    exact = mu + np.exp(-T) * (p0 - mu)
    errs = [l1(df.flow(Dirichlet(grid, mu), p0, T, metric="mahalanobis", dt=T / m,
                       scheme=scheme).p, exact) for m in (10, 20, 40, 80)]
    assert np.all(orders(errs) >= low), (errs, orders(errs))


# ------------------------------------------------- Fokker-Planck: an independent reference
def spectral_fokker_planck(n, V, dV, rho0, T):
    """Pseudo-spectral method of lines for rho_t = (rho_x + rho V_x)_x on the torus."""
    k = 2j * np.pi * np.fft.fftfreq(n, 1.0 / n)

    def ddx(f):
        return np.real(np.fft.ifft(k * np.fft.fft(f)))

    def rhs(t, rho):
        return ddx(ddx(rho) + rho * dV)

    eye = np.eye(n)
    jac = np.array([rhs(0, e) for e in eye]).T  # linear right-hand side
    sol = solve_ivp(rhs, (0, T), rho0, method="Radau", jac=jac, rtol=1e-12, atol=1e-13)
    return sol.y[:, -1]


def test_fokker_planck_space_order_against_method_of_lines():
    V = lambda x: 1.5 * np.sin(2 * np.pi * x)  # noqa: E731
    dV = lambda x: 3 * np.pi * np.cos(2 * np.pi * x)  # noqa: E731
    rho0 = lambda x: np.exp(np.cos(2 * np.pi * (x - 0.3))) / 1.2660658777520082  # noqa: E731
    T, n_ref = 0.05, 128
    x_ref = np.arange(n_ref) / n_ref
    ref = spectral_fokker_planck(n_ref, V, dV(x_ref), rho0(x_ref), T)
    errs = []
    for n in (8, 16, 32, 64):
        grid = df.Grid(n, 1)
        x = grid.coordinates()
        p0 = rho0(x) / rho0(x).sum()
        r = df.flow(KL(grid, grid.gibbs(V)), p0, T, rtol=1e-9, atol=1e-10)
        errs.append(float(np.mean(np.abs(grid.size * r.p - ref[:: n_ref // n]))))
    assert np.all(orders(errs) >= 1.8), (errs, orders(errs))
    assert errs[-1] < 1e-3


# ------------------------------------------------------------- porous medium (test energy)
class PorousMediumTest:
    """U(rho) = rho^m/(m-1) in continuum units (a private stand-in for the real term)."""

    def __init__(self, grid, m):
        self.grid, self.m = grid, m

    def evaluate(self, p):
        r = p.size * p
        return State(p, float(np.sum(r**self.m) / (self.m - 1) / p.size),
                     self.m / (self.m - 1) * r ** (self.m - 1))

    def hessian_product(self, p, v):
        return self.m * (p.size * p) ** (self.m - 2) * p.size * v


def barenblatt(x, t, m, C):
    a = 1.0 / (m + 1)
    k = a * (m - 1) / (2 * m)
    return t**-a * np.maximum(C - k * x**2 * t ** (-2 * a), 0) ** (1 / (m - 1))


def test_porous_medium_follows_barenblatt():
    m, t0, T = 2.0, 1e-3, 4e-3
    xf = np.linspace(-0.5, 0.5, 100001)
    C = brentq(lambda c: np.trapezoid(barenblatt(xf, t0, m, c), xf) - 1, 1e-6, 100)
    assert np.sqrt(C * 2 * m * (m + 1) / (m - 1)) * T ** (1 / (m + 1)) < 0.45  # support inside
    errs = []
    for n in (64, 128, 256):
        grid = df.Grid(n, 1)
        xc = grid.coordinates() - 0.5
        p0 = barenblatt(xc, t0, m, C) + 1e-9
        r = df.flow(PorousMediumTest(grid, m), p0 / p0.sum(), T, t0=t0, rtol=1e-6)
        exact = barenblatt(xc, T, m, C)
        errs.append(l1(r.p, exact / exact.sum()))
        assert r.converged and r.p.min() > 0
    assert errs[0] > errs[1] > errs[2] and errs[2] < 2e-4, errs


# ------------------------------------------------------- conservation, positivity, energy
@pytest.mark.parametrize("metric", ["wasserstein", "fisher_rao", "mahalanobis"])
def test_mass_positivity_and_energy_decrease_with_euler(metric):
    grid = df.Grid(24, 2)
    mu = grid.gibbs(lambda a, b: 3 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b))
    rng = np.random.default_rng(0)
    p0 = rng.uniform(0.01, 2.0, grid.shape)
    p0 /= p0.sum()
    E = KL(grid, mu) + 1e-4 * Dirichlet(grid, mu)
    r = df.flow(E, p0, 0.2, metric=metric, dt=0.02, scheme="euler", save_every=1)
    assert r.converged and not r.failed
    assert np.max(np.abs(r.densities.sum(axis=(1, 2)) - 1)) < 1e-13
    assert r.densities.min() > 0
    assert np.all(np.diff(r.energies) <= 1e-14 * abs(r.energies[0]))
    assert r.energies[-1] < 0.9 * r.energies[0]


def test_adaptive_steps_reach_equilibrium_in_few_steps():
    grid = df.Grid(32, 2)
    mu = grid.gibbs(lambda a, b: 2 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b))
    x1, x2 = grid.coordinates()
    p0 = np.exp(-((x1 - 0.3) ** 2 + (x2 - 0.6) ** 2) / 0.02) + 0.01
    p0 /= p0.sum()
    r = df.flow(KL(grid, mu), p0, 2.0, rtol=1e-4)
    assert r.converged and r.n_steps < 200
    assert l1(r.p, mu) < 1e-6  # the flow relaxes to the Gibbs density
    assert r.steps[-1] > 100 * r.steps[0]


def test_adaptive_error_follows_rtol():
    grid = df.Grid(32, 1)
    x = grid.coordinates()
    mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    p0 = np.exp(np.cos(2 * np.pi * x))
    p0 /= p0.sum()
    T = 0.5
    log_p = np.exp(-T) * np.log(p0) + (1 - np.exp(-T)) * np.log(mu)
    exact = np.exp(log_p) / np.exp(log_p).sum()
    runs = [df.flow(KL(grid, mu), p0, T, metric="fisher_rao", rtol=rtol, atol=1e-2 * rtol)
            for rtol in (1e-3, 1e-5, 1e-7)]
    errs = [l1(r.p, exact) for r in runs]
    # error per step: the global error of BDF2 falls like rtol^(2/3) (21x per 2 decades)
    assert errs[0] > 10 * errs[1] > 100 * errs[2], errs
    assert errs[2] < 1e-5
    assert all(np.all(r.errors <= 1) for r in runs)


# ------------------------------------------------------------------ saving and callbacks
def test_save_times_are_hit_exactly_and_frames_stay_bounded():
    grid = df.Grid(16, 1)
    E = KL(grid, grid.uniform())
    p0 = heat_start(grid)
    r = df.flow(E, p0, 0.1, dt=0.003, save_times=[0.0, 0.01, 0.055, 0.1])
    assert np.array_equal(r.times, [0.0, 0.01, 0.055, 0.1])
    assert r.densities.shape == (4, 16)
    ref = df.flow(E, p0, 0.055, dt=0.003, save_times=[0.01, 0.055]).p  # same steps
    assert np.array_equal(r.densities[2], ref)
    # 8 frames of 16 cells fit in 8 * 16 * 8 bytes: every other frame dropped past that
    r = df.flow(E, p0, 0.1, dt=0.001, save_every=1, max_memory=8 * 16 * 8)
    assert 4 <= len(r.times) <= 9 and r.info["frames_thinned"] >= 1
    assert r.times[0] == 0.0 and r.times[-1] == pytest.approx(0.1)
    steps = np.round(r.times[:-1] / 0.001).astype(int)
    assert len(set(np.diff(steps))) == 1  # evenly spaced in steps


def test_on_step_sees_every_step_and_can_stop():
    grid = df.Grid(16, 1)
    seen = []

    def on_step(k, t, p, info):
        seen.append((k, t, info["newton"]))
        return k == 5

    r = df.flow(KL(grid, grid.uniform()), heat_start(grid), 1.0, dt=0.01, on_step=on_step)
    assert not r.converged and not r.failed and "on_step" in r.message
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5] and r.n_steps == 5
    assert r.t == pytest.approx(0.05)
    assert len(r.newton_iterations) == len(r.cg_iterations) == 5


# ------------------------------------------------------------------ failures and bad input
class Flaky:
    """KL whose evaluation fails like an inner solve on chosen calls."""

    def __init__(self, grid, fail_on):
        self.kl, self.grid, self.calls, self.fail_on = KL(grid, grid.uniform()), grid, 0, fail_on

    def evaluate(self, p):
        self.calls += 1
        if self.fail_on(self.calls):
            raise LinearSolveError("inner solve failed (test)")
        return self.kl.evaluate(p)

    def hessian_product(self, p, v):
        return self.kl.hessian_product(p, v)


def test_failures_are_cut_retried_then_reported():
    grid = df.Grid(16, 1)
    p0 = heat_start(grid)
    r = df.flow(Flaky(grid, lambda c: c == 4), p0, 0.05, dt=0.01)
    assert r.converged and r.info["failed_attempts"] == 1
    assert r.t == pytest.approx(0.05)
    r = df.flow(Flaky(grid, lambda c: c > 6), p0, 0.05, dt=0.01)
    assert r.failed and not r.converged
    assert "numerical failure" in r.message and "LinearSolveError" in r.message
    assert r.p.sum() == pytest.approx(1, abs=1e-14) and r.t < 0.05


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(metric="combined"), ValueError, "metric"),
    (dict(scheme="rk4"), ValueError, "scheme"),
    (dict(dt=-1.0), ValueError, "dt"),
    (dict(t_end=0.0), ValueError, "t_end"),
    (dict(t_end=np.nan), ValueError, "t_end"),
    (dict(rtol=0.0), ValueError, "rtol"),
    (dict(dt=0.1, atol=1e-6), ValueError, "atol"),
    (dict(save_times=[0.5, 2.0]), ValueError, "save_times"),
    (dict(save_times=[0.5, 0.2]), ValueError, "save_times"),
    (dict(save_every=2, save_times=[0.5]), ValueError, "save_every"),
    (dict(save_every=0), ValueError, "save_every"),
    (dict(mobility="harmonic"), ValueError, "mobility"),
    (dict(newton=3), TypeError, "newton"),
    (dict(on_step=5), TypeError, "on_step"),
    (dict(p0=np.ones(16)), ValueError, "p0"),
    (dict(p0=np.ones(8) / 8), ValueError, "p0"),
    (dict(energy=object()), TypeError, "energy"),
    (dict(metric="combined"), ValueError, "combined.*approximate inverse Hessian.*no PDE"),
])
def test_bad_input_is_refused_with_its_name(kwargs, exc, words):
    grid = df.Grid(16, 1)
    args = dict(energy=KL(grid, grid.uniform()), p0=grid.uniform(), t_end=1.0, dt=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        df.flow(**args)


def test_newton_settings_are_checked():
    with pytest.raises(ValueError, match="max_newton"):
        FlowNewton(max_newton=0)
    with pytest.raises(ValueError, match="boundary"):
        FlowNewton(boundary=1.5)


def _dense(apply, shape):
    """The matrix of the linear map ``apply`` on arrays of ``shape`` (column by column)."""
    size = int(np.prod(shape))
    cols = []
    for j in range(size):
        e = np.zeros(size)
        e[j] = 1.0
        cols.append(np.asarray(apply(e.reshape(shape))).ravel())
    return np.array(cols).T


@pytest.mark.parametrize("which", ["kl+potential", "porous"])
def test_screened_newton_direction_solves_the_potential_newton_system(which):
    """pcg_diagonal's direction solves tau K (I + tau H K) delta = -tau K w, checked
    against a dense least-squares solve of that system, and agrees with pcg_potential."""
    from densflow.flows.krylov import diagonal_mobility, pcg_diagonal, pcg_potential
    from densflow.flows.proximal import WassersteinProx

    grid = df.Grid(8, 2)
    x1, x2 = grid.coordinates()
    rng = np.random.default_rng(3)
    p = np.exp(0.8 * np.sin(2 * np.pi * x1) + 0.3 * rng.standard_normal(grid.shape))
    p /= p.sum()
    if which == "porous":
        energy = df.energies.PorousMedium(grid, 3) + df.energies.Potential(grid, lambda a, b: np.cos(2 * np.pi * a))
        q_exact = 1.0 / (3 * grid.size * (grid.size * p))  # 1 / (m N rho^(m-2))
    else:
        energy = 0.7 * KL(grid, grid.gibbs(lambda a, b: np.sin(2 * np.pi * b)))
        q_exact = p / 0.7
    p_star = p * (1 + 0.1 * np.cos(2 * np.pi * x2))
    prox = WassersteinProx(grid, p_star / p_star.sum())
    tau = 3e-3
    w = rng.standard_normal(grid.shape)
    grad = tau * prox.apply(w)
    q = diagonal_mobility(energy, p)
    np.testing.assert_allclose(q, q_exact, rtol=1e-12)
    settings = FlowNewton(cg_max_iter=500, forcing_min=1e-13)
    delta, its = pcg_diagonal(prox, q, tau, w, grad, 1e-11, settings)
    K = _dense(prox.apply, grid.shape)
    H = np.diag(1.0 / q_exact.ravel())
    hess = tau * K + tau * tau * K @ H @ K
    ref = np.linalg.lstsq(hess, -grad.ravel(), rcond=1e-13)[0]
    ref -= ref.mean()
    np.testing.assert_allclose(delta.ravel(), ref, atol=1e-7 * np.abs(ref).max())
    other, _ = pcg_potential(energy, prox, p, tau, grad, 1e-11, settings)
    np.testing.assert_allclose(other, delta, atol=1e-7 * np.abs(ref).max())
    assert its < 60


def test_diagonal_mobility_is_none_for_non_diagonal_hessians():
    from densflow.flows.krylov import diagonal_mobility

    grid = df.Grid(8, 2)
    p = grid.uniform()
    assert diagonal_mobility(Dirichlet(grid, grid.uniform()), p) is None
    assert diagonal_mobility(KL(grid, grid.uniform()) + Dirichlet(grid, grid.uniform()), p) is None
    assert diagonal_mobility(df.energies.Potential(grid, lambda a, b: a), p) is None


def test_screened_and_general_newton_give_the_same_flow():
    """The two Newton solvers reach the same BDF2 trajectory (within a tenth of its time
    error: the Newton tolerance follows the local error), the screened one with fewer CG
    iterations on a high-contrast start."""
    grid = df.Grid(32, 2)
    x1, x2 = grid.coordinates()
    p0 = np.exp(-((x1 - 0.3) ** 2 + (x2 - 0.6) ** 2) / (2 * 0.1**2)) + 0.05
    p0 /= p0.sum()
    E = KL(grid, grid.gibbs(lambda a, b: 2 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b)))
    a = df.flow(E, p0, 0.01, dt=1e-3)
    b = df.flow(E, p0, 0.01, dt=1e-3, newton=FlowNewton(screened=False))
    assert a.converged and b.converged and a.n_steps == b.n_steps == 10
    fine = df.flow(E, p0, 0.01, dt=2.5e-4)
    assert l1(a.p, b.p) < 0.1 * l1(a.p, fine.p)
    assert a.cg_iterations.sum() < b.cg_iterations.sum()


def test_forcing_is_eisenstat_walker_after_the_first_iteration():
    from densflow.flows.krylov import forcing

    s = FlowNewton()
    assert forcing(1.0, np.inf, 1e-3, s) == pytest.approx(1e-4)  # 0.1 tol / res
    assert forcing(0.5, 1.0, 1e-3, s) == pytest.approx(0.1)  # 0.9 (1/2)^2, capped at 0.1
    assert forcing(0.1, 1.0, 1e-3, s) == pytest.approx(9e-3)  # 0.9 (1/10)^2
    assert forcing(1e-9, 1.0, 1e-20, s) == pytest.approx(s.forcing_min)


def _fp_step_problem(n=16):
    """A stiff Fokker–Planck Euler step on an n² torus: ``(energy, prox, q, tau, grid)``."""
    from densflow.flows.proximal import WassersteinProx

    grid = df.Grid(n, 2)
    x1, x2 = grid.coordinates()
    q = np.exp(-((x1 - 0.3) ** 2 + (x2 - 0.6) ** 2) / (2 * 0.1**2)) + 0.05
    q /= q.sum()
    energy = KL(grid, grid.gibbs(lambda a, b: 2 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b)))
    return energy, WassersteinProx(grid, q), q, 2.5e-3, grid


@pytest.mark.parametrize("rule", ["residual", "objective", "first"])
def test_warm_start_ranking(rule):
    """Two starts near the step's solution: ``fine`` (a checkerboard in phi, the mode
    that tau K amplifies most) and ``smooth`` (a cos 2 pi x mode), scaled so that fine's
    residual is 10 times smooth's. Phi grows like the residual times the perturbation,
    so fine has the lower objective. With a tolerance between the two residuals, the
    residual ranking takes smooth and needs no Newton iteration; the objective ranking
    takes fine, and so does ``"first"`` (fine is tried first): Newton has work to do."""
    from densflow.flows.step import solve_step

    energy, prox, q, tau, grid = _fp_step_problem()
    exact = solve_step(energy, prox, q, tau, np.zeros(grid.shape), 1e-12, 1.0,
                       FlowNewton(max_newton=40, forcing_min=1e-12))
    assert exact.converged

    def objective_and_residual(phi):
        kphi = prox.apply(phi)
        p = q - tau * kphi
        st = energy.evaluate(p)
        res = np.sqrt(np.mean((q.size * tau * prox.apply(phi - st.gradient)) ** 2))
        return st.value + 0.5 * tau * float(np.vdot(phi, kphi)), res

    i, j = np.indices(grid.shape)
    checker = (-1.0) ** (i + j)
    mode = np.cos(2 * np.pi * grid.coordinates()[0])
    smooth = exact.phi + 1e-2 * mode
    _, res_smooth = objective_and_residual(smooth)
    _, res_unit = objective_and_residual(exact.phi + 1e-6 * checker)
    fine = exact.phi + 1e-6 * checker * 10 * res_smooth / res_unit
    obj_fine, res_fine = objective_and_residual(fine)
    obj_smooth, _ = objective_and_residual(smooth)
    assert 8 * res_smooth < res_fine < 12 * res_smooth
    assert obj_fine < obj_smooth
    out = solve_step(energy, prox, q, tau, fine, 3 * res_smooth, 1.0, FlowNewton(warm_start=rule),
                     candidates=(smooth,))
    assert out.converged
    assert (out.newton == 0) == (rule == "residual")
    assert out.residual <= 3 * res_smooth
    if rule == "residual":
        np.testing.assert_allclose(out.phi, smooth - smooth.mean(), atol=1e-14)


def test_warm_start_never_above_the_zero_potential():
    """A start of smaller residual but larger Phi than the zero potential (an error in a
    smooth mode, where Phi grows like res^2 / lambda) is passed over for the zero
    potential: the implicit Euler step then starts at Phi = F(p_k), and the energy
    cannot increase."""
    from densflow.flows.step import solve_step

    energy, prox, q, tau, grid = _fp_step_problem()
    exact = solve_step(energy, prox, q, tau, np.zeros(grid.shape), 1e-12, 1.0,
                       FlowNewton(max_newton=40, forcing_min=1e-12))

    def objective_and_residual(phi):
        kphi = prox.apply(phi)
        st = energy.evaluate(q - tau * kphi)
        res = np.sqrt(np.mean((q.size * tau * prox.apply(phi - st.gradient)) ** 2))
        return st.value + 0.5 * tau * float(np.vdot(phi, kphi)), res

    zero = np.zeros(grid.shape)
    smooth = exact.phi + 1.7 * np.cos(2 * np.pi * grid.coordinates()[0])
    (obj_s, res_s), (obj_0, res_0) = objective_and_residual(smooth), objective_and_residual(zero)
    assert res_s < res_0 and obj_s > obj_0 == pytest.approx(energy.evaluate(q).value, abs=0)
    out = solve_step(energy, prox, q, tau, smooth, 10.0, 1.0, FlowNewton(), candidates=(zero,))
    assert out.converged and out.newton == 0
    assert not np.any(out.phi) and np.array_equal(out.p, q)


def test_warm_start_must_be_a_known_rule():
    with pytest.raises(ValueError, match="warm_start"):
        FlowNewton(warm_start="smallest")


def test_residual_warm_start_keeps_newton_per_step_mesh_independent():
    """Fixed BDF2 steps of T/20 from a Gaussian (the flows benchmark's Fokker–Planck
    problem): the six stiff first steps need no more Newton iterations at 512² than at
    128² with the residual ranking, and fewer than ranked by Phi at 512² (12 against 16
    when written)."""
    counts = {}
    for n in (128, 512):
        energy, _, p0, _, _ = _fp_step_problem(n)
        for rule in ("residual", "objective"):
            r = df.flow(energy, p0, 6 * 2.5e-3, dt=2.5e-3, newton=FlowNewton(warm_start=rule))
            assert r.converged
            counts[n, rule] = int(r.newton_iterations.sum())
    assert counts[512, "residual"] <= counts[128, "residual"]
    assert counts[512, "residual"] < counts[512, "objective"]
