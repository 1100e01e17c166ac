"""Free energies (densflow.energies.PorousMedium, Potential, Interaction): values against
direct formulas, gradients and Hessian products against differences, stationary states
against closed forms and fixed points written here, Newton directions against dense
solves, bad input."""

import numpy as np
import pytest
from scipy.optimize import brentq

import densflow as df
from conftest import V1, V2, make_energy, random_density
from dense import difference_matrices
from densflow.energies import KL, Dirichlet, HMinus1, Interaction, PorousMedium, Potential
from densflow.newton import Newton, NewtonStep

GRIDS = [(1, 16), (2, 8)]


def coords(grid):
    c = grid.coordinates()
    return (c,) if grid.dim == 1 else c


def potential(grid):
    return V1 if grid.dim == 1 else V2


def gaussian(sign, sigma):
    """An even kernel of the displacement (1D or 2D)."""
    return lambda *d: sign * np.exp(-sum(di**2 for di in d) / (2 * sigma**2))


def green(dim, a=3.0):
    """A positive-definite even kernel: the Green's function of a^2 - d^2/dx^2 on the
    torus (per axis in 2D); its Fourier coefficients are positive at every frequency."""
    g1 = lambda d: np.cosh(a * (np.abs(d) - 0.5)) / (2 * a * np.sinh(a / 2))  # noqa: E731
    return (lambda d: g1(d)) if dim == 1 else (lambda d1, d2: g1(d1) * g1(d2))


def wrapped_displacement(a, b):
    """x_a - x_b wrapped into [-1/2, 1/2), per component (reference for the tests)."""
    d = np.asarray(a) - np.asarray(b)
    return d - np.floor(d + 0.5)


def dense_interaction(grid, W):
    """K_st = W(x_s - x_t), by the double loop over cells."""
    pts = np.stack([c.ravel() for c in coords(grid)], axis=1)
    N = grid.size
    K = np.empty((N, N))
    for s in range(N):
        for t in range(N):
            K[s, t] = W(*wrapped_displacement(pts[s], pts[t]))
    return K


def free_terms(grid):
    return {"porous": PorousMedium(grid, 2.5),
            "potential": Potential(grid, potential(grid)),
            "repulsive": Interaction(grid, green(grid.dim)),
            "attractive": Interaction(grid, gaussian(-1.0, 0.15))}


@pytest.fixture(params=GRIDS, ids=["1d", "2d"])
def grid(request):
    dim, n = request.param
    return df.Grid(n, dim)


def test_values_match_direct_formulas(grid):
    p = random_density(grid, 1)
    N = grid.size
    rho = N * p
    for m in (1.5, 2.0, 3.0):
        assert np.isclose(PorousMedium(grid, m).value(p), np.sum(rho**m) / N / (m - 1), rtol=1e-13)
    V = potential(grid)(*coords(grid))
    assert np.isclose(Potential(grid, potential(grid)).value(p), np.sum(p * V), rtol=1e-13)
    assert np.isclose(Potential(grid, V).value(p), np.sum(p * V), rtol=1e-13)
    W = gaussian(-1.0, 0.15)
    K = dense_interaction(grid, W)
    direct = 0.5 * sum(p.ravel()[s] * K[s, t] * p.ravel()[t]
                       for s in range(N) for t in range(N))
    assert np.isclose(Interaction(grid, W).value(p), direct, rtol=1e-12)
    # the array form: entry j is W at the wrapped displacement x_j
    samples = W(*[wrapped_displacement(c, 0.0) for c in coords(grid)])
    assert np.isclose(Interaction(grid, samples).value(p), direct, rtol=1e-12)


def _energies(grid):
    mu = grid.gibbs(potential(grid))
    t = free_terms(grid)
    yield "porous", 1.0 * t["porous"]
    yield "potential", 1.0 * t["potential"]
    yield "repulsive", 1.0 * t["repulsive"]
    yield "attractive", 1.0 * t["attractive"]
    yield "all_with_old", (0.3 * t["porous"] + t["potential"] + 0.5 * t["attractive"]
                           + 0.1 * KL(grid, mu) + HMinus1(grid, mu) + 1e-3 * Dirichlet(grid, mu))


def test_gradients_match_central_differences(grid):
    p = random_density(grid, 2)
    for name, E in _energies(grid):
        g = E.gradient(p)
        h = 1e-6 * p.min()
        fd = np.empty(grid.size)
        for i in range(grid.size):
            e = np.zeros(grid.size)
            e[i] = h
            e = e.reshape(grid.shape)
            fd[i] = (E.value(p + e, check=False) - E.value(p - e, check=False)) / (2 * h)
        assert np.max(np.abs(g.ravel() - fd)) <= 1e-6 * max(1.0, np.abs(fd).max()), name


def test_hessian_products_match_gradient_differences(grid):
    p = random_density(grid, 3)
    v = np.random.default_rng(4).standard_normal(grid.shape)
    v -= v.mean()
    for name, E in _energies(grid):
        h = 1e-6 * p.min() / np.abs(v).max()
        fd = (E.gradient(p + h * v, check=False) - E.gradient(p - h * v, check=False)) / (2 * h)
        hv = E.hessian_product(p, v, rtol=1e-13)
        assert np.max(np.abs(hv - fd)) <= 1e-6 * max(1e-12, np.abs(fd).max()), name
    assert np.all(Potential(grid, potential(grid)).hessian_product(p, v) == 0)


def test_lines_are_exact(grid):
    """The search-line restrictions give E(p - eta s) - E(p) and the state there."""
    p = random_density(grid, 5)
    s = np.random.default_rng(6).standard_normal(grid.shape) * p * 0.3
    s -= s.mean()
    for name, E in _energies(grid):
        st = E.evaluate(p)
        line = E.line(st, s)
        for eta in (1.0, 0.25):
            q = p - eta * s
            assert np.isclose(line.delta(eta), E.value(q, check=False) - st.value,
                              rtol=1e-9, atol=1e-14), name
            at = line.state_at(eta)
            assert np.allclose(at.gradient, E.gradient(q, check=False), rtol=1e-10, atol=1e-12)
    big = 10.0 * p / np.abs(s).max() * s  # leaves the positive orthant at eta = 1
    assert PorousMedium(grid, 2).line(PorousMedium(grid, 2).evaluate(p), big).delta(1.0, None) == np.inf


def test_energy_bookkeeping(grid):
    mu = grid.gibbs(potential(grid))
    t = free_terms(grid)
    assert (KL(grid, mu) + Dirichlet(grid, mu)).min_value == 0.0
    E = KL(grid, mu) + t["potential"]
    assert E.min_value is None and E.mu is None and E.stops_on_change
    assert E.positive_domain and (t["repulsive"] + t["potential"]).positive_domain is False
    assert not (KL(grid, mu) + t["attractive"]).convex and (1.0 * t["repulsive"]).convex
    # run files identify the new terms by their parameters
    labels = [d["term"] for d in (t["porous"] + t["potential"] + t["attractive"]).describe()]
    assert labels[0] == "PorousMedium(m=2.5)"
    assert labels[1].startswith("Potential(V sha256:") and labels[2].startswith("Interaction(W sha256:")
    other = Potential(grid, lambda *x: 1.01 * potential(grid)(*x))
    assert other.label() != labels[1]


def _mass_fixed_root(f):
    return brentq(f, -1e3, 1e3, xtol=1e-15, rtol=1e-15, maxiter=500)


@pytest.mark.parametrize("method", ["auto", "newton", "gradient"])
def test_porous_medium_with_potential_reaches_its_closed_form(grid, method):
    """rho = ((m-1)/m (C - V))^(1/(m-1)) with C fixing the mass (C > max V)."""
    m = 3.0
    V = 0.5 * potential(grid)(*coords(grid))
    E = PorousMedium(grid, m) + Potential(grid, V)
    N = grid.size

    def profile(C):
        return ((m - 1) / m * (C - V)) ** (1 / (m - 1)) / N

    C = _mass_fixed_root(lambda C: profile(max(C, V.max())).sum() - 1.0)
    assert C > V.max()
    r = df.solve(E, grid.uniform(), "combined", method=method, tol=1e-14, max_iter=300)
    assert r.converged, r.message
    assert "E_min unknown" in r.message
    assert np.max(np.abs(r.p - profile(C))) <= 1e-7 * profile(C).max()
    assert r.info["kkt_residual"] <= 1e-6


def test_entropy_with_attractive_interaction_matches_a_fixed_point_iteration():
    """p = exp(-(K p)/eps) / Z, by a damped fixed-point iteration written here."""
    grid = df.Grid(64, 1)
    eps, sigma = 0.3, 0.1
    W = lambda d: -np.exp(-d**2 / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)  # noqa: E731
    K = dense_interaction(grid, W)
    x = grid.coordinates()
    p = np.exp(0.3 * np.cos(2 * np.pi * x))
    p /= p.sum()
    for _ in range(5000):
        q = np.exp(-(K @ p) / eps)
        q /= q.sum()
        if np.max(np.abs(q - p)) < 1e-15:
            break
        p = 0.5 * p + 0.5 * q
    assert np.max(np.abs(q - p)) < 1e-14 and p.max() > 2 / grid.size  # an aggregate
    E = eps * KL(grid, grid.uniform()) + Interaction(grid, W)
    start = np.exp(0.3 * np.cos(2 * np.pi * x))
    for metric in ("fisher_rao", "combined"):
        r = df.solve(E, start / start.sum(), metric, tol=1e-15, max_iter=100)
        assert r.converged, r.message

        if metric == "fisher_rao":  # diagonal: keeps the start's symmetry x -> -x
            assert np.max(np.abs(r.p - p)) <= 1e-8 * p.max(), metric
            assert r.info["kkt_residual"] <= 1e-5  # (log p in cells of p ~ 1e-5 / N)
        else:
            # the wavelets are not symmetric: the aggregate may settle a fraction of a
            # cell off, along the nearly flat translation mode; same energy
            assert abs(r.energies[-1] - E.value(p)) <= 1e-12


def test_repulsive_interaction_with_potential_matches_its_fourier_solution(grid):
    """K p + V = c: p_hat(k) = -V_hat(k) / W_hat(k) for k != 0, p_hat(0) = 1."""
    W = green(grid.dim)
    samples = W(*[wrapped_displacement(c, 0.0) for c in coords(grid)])
    W_hat = np.fft.fftn(samples).real
    assert W_hat.min() > 0
    V = potential(grid)(*coords(grid))
    delta = np.fft.ifftn(-np.fft.fftn(V) / W_hat).real
    delta -= delta.mean()
    scale = 0.5 / (grid.size * np.abs(delta).max())  # keeps p_ref within 1/N +- 50 %
    V, p_ref = scale * V, 1.0 / grid.size + scale * delta
    E = Interaction(grid, W) + Potential(grid, V)
    for metric in ("combined", "mahalanobis"):
        r = df.solve(E, grid.uniform(), metric, tol=1e-15, max_iter=200)
        assert r.converged, r.message
        assert np.max(np.abs(r.p - p_ref)) <= 1e-8 * p_ref.max(), metric


def _dense_hessian(E, p):
    N = E.grid.size
    cols = [E.hessian_product(p, np.eye(N)[i].reshape(E.grid.shape), rtol=1e-14).ravel()
            for i in range(N)]
    return np.array(cols).T


@pytest.mark.parametrize("metric", ["combined", "wasserstein", "fisher_rao", "mahalanobis"])
def test_preconditioned_newton_direction_matches_a_dense_solve(grid, metric):
    mu = grid.gibbs(potential(grid))
    t = free_terms(grid)
    N = grid.size
    cases = {"porous": t["porous"] + t["potential"],
             "repulsive": 1e-2 * KL(grid, mu) + t["repulsive"] + t["potential"],
             "attractive(convex here)": 1.0 * KL(grid, mu) + 0.1 * t["attractive"]}
    for name, E in cases.items():
        p = random_density(grid, 7)
        g = E.gradient(p)
        H = _dense_hessian(E, p)
        # an independent dense Hessian from the formulas
        if name == "porous":
            ref = np.diag(2.5 * N * (N * p.ravel()) ** 0.5)
        elif name == "repulsive":
            ref = 1e-2 * np.diag(1 / p.ravel()) + dense_interaction(grid, green(grid.dim))
        else:
            ref = np.diag(1 / p.ravel()) - 0.1 * dense_interaction(grid, gaussian(1.0, 0.15))
        assert np.allclose(H, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max()), name
        KKT = np.zeros((N + 1, N + 1))
        KKT[:N, :N], KKT[:N, N], KKT[N, :N] = ref, 1.0, 1.0
        d_ref = np.linalg.solve(KKT, np.concatenate([-g.ravel(), [0.0]]))[:N].reshape(grid.shape)
        tight = Newton(forcing_max=1e-10, cg_max_iter=10 * N, damping_tries=0)
        op = NewtonStep(E, df.metrics.get(metric).bind(E), tight)
        s = op.direction(p, g)
        assert abs(s.sum()) <= 1e-14
        assert np.max(np.abs(-s - d_ref)) <= 1e-7 * np.max(np.abs(d_ref)), (name, metric)
        if metric == "combined":  # the free energies' default: the inverse diagonal
            from densflow.free_newton import FreeNewtonStep
            from densflow.metrics.diagonal import HessianDiagonal

            op = FreeNewtonStep(E, HessianDiagonal(df.metrics.get(metric).bind(E), E), tight)
            s = op.direction(p, g)
            assert abs(s.sum()) <= 1e-14
            assert np.max(np.abs(-s - d_ref)) <= 1e-7 * np.max(np.abs(d_ref)), (name, "diagonal")


def test_combined_metric_uses_each_terms_declared_curvature():
    """lambda_i = 1 / (1/(H2 q)_i + alpha max(0, w_i^T K w_i)), q = 1/(m N rho^(m-2))."""
    from dense import wavelet_matrix

    grid = df.Grid(16, 1)
    p = random_density(grid, 8)
    N, m = grid.size, 2.5
    E = PorousMedium(grid, m) + 0.7 * Interaction(grid, gaussian(1.0, 0.15)) + Interaction(
        grid, gaussian(-0.2, 0.05))
    Wm = wavelet_matrix(16, 1, "db4", df.metrics.Combined().bind(E).basis.level)
    q = 1.0 / (m * N * (N * p) ** (m - 2))
    K1 = dense_interaction(grid, gaussian(1.0, 0.15))
    K2 = dense_interaction(grid, gaussian(-0.2, 0.05))
    h2 = (Wm**2).T @ q
    d = 0.7 * np.maximum(0, np.einsum("si,st,ti->i", Wm, K1, Wm)) + np.maximum(
        0, np.einsum("si,st,ti->i", Wm, K2, Wm))
    lam_ref = 1.0 / (1.0 / h2 + d)
    bound = df.metrics.Combined().bind(E)
    lam = bound.eigenvalues(p)
    M_ref = Wm @ np.diag(lam_ref) @ Wm.T
    v = np.random.default_rng(9).standard_normal(16)
    assert np.allclose(bound.apply(p, v), M_ref @ v, rtol=1e-10, atol=1e-12 * np.abs(M_ref @ v).max())
    assert lam.shape == (16,)


def test_bad_input_names_the_argument():
    grid = df.Grid(8, 1)
    for m in (1, 0.5, -2, np.inf, np.nan, True, "2"):
        with pytest.raises(ValueError, match="m must be a finite number > 1"):
            PorousMedium(grid, m)
    with pytest.raises(ValueError, match="V must be finite"):
        Potential(grid, lambda x: np.where(x > 0.5, np.inf, 0.0))
    with pytest.raises(ValueError, match="V must be a callable or an array of the grid's shape"):
        Potential(grid, np.zeros(7))
    with pytest.raises(ValueError, match="W must be finite"):
        Interaction(grid, np.full(8, np.nan))
    with pytest.raises(ValueError, match=r"W must be a callable or an array of the grid's shape"):
        Interaction(grid, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="W must be even"):
        Interaction(grid, lambda d: d + 1.0)
    with pytest.raises(ValueError, match="W must be even in displacement component 2"):
        Interaction(df.Grid(8, 2), lambda d1, d2: np.exp(d2) + d1**2)
    with pytest.raises(TypeError, match="W must hold real numbers"):
        Interaction(grid, np.zeros(8, dtype=complex))


def test_resume_refuses_a_changed_exponent_potential_or_kernel(tmp_path):
    from densflow.io.recorder import ResumeError

    grid = df.Grid(16, 1)
    V = lambda x: np.cos(2 * np.pi * x)  # noqa: E731
    W = gaussian(-1.0, 0.1)
    base = PorousMedium(grid, 3) + Potential(grid, V) + 0.1 * Interaction(grid, W)
    path = tmp_path / "run.h5"
    r = df.solve(base, grid.uniform(), max_iter=2, out=path)
    again = df.solve(PorousMedium(grid, 3) + Potential(grid, V) + 0.1 * Interaction(grid, W),
                     grid.uniform(), max_iter=2, out=path, resume=True)
    assert np.array_equal(again.energies, r.energies)
    changed = {"m": PorousMedium(grid, 3.5) + Potential(grid, V) + 0.1 * Interaction(grid, W),
               "V": PorousMedium(grid, 3) + Potential(grid, lambda x: V(x) + 1e-9)
               + 0.1 * Interaction(grid, W),
               "W": PorousMedium(grid, 3) + Potential(grid, V) + 0.1 * Interaction(grid, gaussian(-1.0, 0.11))}
    for name, E in changed.items():
        with pytest.raises(ResumeError, match="energy_terms"):
            df.solve(E, grid.uniform(), max_iter=2, out=path, resume=True)


def test_case_files_take_free_energy_terms():
    from densflow.app.case import Case, Panel

    grid = df.Grid(32, 1)
    case = Case(grid=grid, potential="0", p0="exp(0.5*cos(2*pi*x))", panels=[
        Panel((0, 0, 0), ["combined"], terms="PorousMedium(3) + Potential('cos(2*pi*x)')"),
        Panel((0, 0.3, 0), ["fisher_rao"], terms="Interaction('-exp(-x**2 / (2*0.1**2))')")])
    E = case.energy(case.panels[0])
    x = grid.coordinates()
    assert [d["term"] for d in E.describe()][3] == "PorousMedium(m=3.0)"
    assert np.isclose(E.value(grid.uniform()), 1.0 / 2 + np.sum(np.cos(2 * np.pi * x)) / 32)
    assert case.run_attributes(case.panels[1])["terms_recipe"].startswith("Interaction(")
    E2 = case.energy(case.panels[1])
    ref = 0.3 * KL(grid, grid.uniform()) + Interaction(grid, gaussian(-1.0, 0.1))
    p = random_density(grid, 3)
    assert np.isclose(E2.value(p), ref.value(p), rtol=1e-13)
    with pytest.raises(ValueError, match="m must be a finite number > 1"):
        Case(grid=grid, potential="0", panels=[Panel((0, 0, 0), ["combined"], terms="PorousMedium(0.5)")])
    with pytest.raises(ValueError, match="W must be even"):
        Case(grid=grid, potential="0", panels=[Panel((0, 0, 0), ["combined"], terms="Interaction('x')")])


# --- free energies' default: diagonal preconditioner along exponential curves ---------

def test_exponential_curve_changes_match_direct_differences(grid):
    """ExponentialLine: q stays a positive probability vector, delta = E(q) - E(p) as
    evaluated directly, and d/deta delta at 0 = -s.g (central differences)."""
    from densflow.energies.mirror import ExponentialLine

    rng = np.random.default_rng(3)
    p = random_density(grid, rng)
    E = 0.2 * KL(grid, grid.uniform()) + PorousMedium(grid, 2.5) + Potential(grid, potential(grid)) \
        + Interaction(grid, gaussian(-1, 0.1))
    st = E.evaluate(p)
    s = p * rng.standard_normal(grid.shape)
    s -= s.sum() * p
    line = ExponentialLine(E, st, s)
    for eta in (1e-3, 0.3, 1.0, 4.0):
        q = line.state_at(eta).p
        assert np.all(q > 0) and abs(q.sum() - 1) < 1e-14
        direct = E.value(q) - E.value(p)
        assert line.delta(eta) == pytest.approx(direct, rel=1e-9, abs=1e-14)
        assert line.state_at(eta).value == pytest.approx(E.value(q), rel=1e-12)
        assert np.allclose(line.state_at(eta).gradient, E.gradient(q), rtol=1e-10, atol=1e-12)
    h = 1e-5
    slope = (ExponentialLine(E, st, s).delta(h) - ExponentialLine(E, st, s).delta(-h)) / (2 * h)
    assert slope == pytest.approx(-float(np.sum(s * st.gradient)), rel=1e-6)


def test_hessian_diagonal_preconditioner_inverts_the_dense_diagonal(grid):
    """Q = 1 / diag(H), the dense Hessian's diagonal (columns by differences of
    gradients), with the attractive interaction's negative diagonal clipped at 0 and a
    repulsive one kept; P v = Q (v - c 1) has zero sum."""
    from densflow.metrics.diagonal import HessianDiagonal

    rng = np.random.default_rng(4)
    p = random_density(grid, rng)
    N = grid.size
    for sign in (-1, 1):
        E = 0.1 * KL(grid, grid.uniform()) + 0.5 * PorousMedium(grid, 3) + Interaction(
            grid, gaussian(sign, 0.1))
        e = np.zeros(N)
        diag = np.empty(N)
        for i in range(N):
            e[:] = 0.0
            e[i] = 1.0
            diag[i] = E.hessian_product(p, e.reshape(grid.shape)).ravel()[i]
        W0 = gaussian(sign, 0.1)(*(np.zeros(1),) * grid.dim)[0]
        expected = diag - W0 + max(0.0, W0)
        pre = HessianDiagonal(None, E)
        assert np.allclose(pre.diagonal(p).ravel(), expected, rtol=1e-12)
        v = rng.standard_normal(grid.shape)
        out = pre.preconditioner(p)(v)
        w = 1.0 / expected.reshape(grid.shape)
        assert np.allclose(out, w * (v - np.sum(w * v) / w.sum()), rtol=1e-12, atol=1e-300)
        assert abs(out.sum()) <= 1e-12 * np.abs(out).sum()


@pytest.mark.parametrize("eps", [0.1, 0.05])
def test_default_reaches_the_kkt_residual_on_2d_aggregation(eps):
    """The issue's criterion max |grad E - mean grad E| <= 1e-6 in at most 20 steps, with
    solve's defaults, on a 2D aggregation-diffusion problem whose minimiser holds cells
    of p < 1e-14 / N; and the fixed point p = exp(-(K p)/eps) / Z holds in every cell."""
    grid = df.Grid(32, 2)
    sigma = 0.2
    W = lambda d1, d2: -np.exp(-(d1**2 + d2**2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)  # noqa: E731
    E = eps * KL(grid, grid.uniform()) + Interaction(grid, W)
    x1, x2 = grid.coordinates()
    p0 = np.exp(0.5 * (np.cos(2 * np.pi * x1) + np.cos(2 * np.pi * x2)))
    kkt = []
    r = df.solve(E, p0 / p0.sum(), tol=0.0, max_iter=20,
                 callback=lambda k, p, *_: kkt.append(E.kkt_residual(E.evaluate(p))) or kkt[-1] <= 1e-6)
    assert kkt[-1] <= 1e-6, kkt
    assert r.p.min() * grid.size < 1e-14  # tails the straight Newton line reaches slowly
    Kp = Interaction(grid, W).gradient(r.p, check=False)
    q = np.exp(-Kp / eps)
    q /= q.sum()
    assert np.max(np.abs(np.log(r.p) - np.log(q))) <= 1e-6 / eps * 2


def test_the_default_on_free_energies_is_recorded_and_newton_keeps_the_metric():
    """'auto' on a free energy: diagonal preconditioner, exponential curves (recorded in
    the setup); method='newton' and energies with a reference measure keep the metric's
    Newton on straight lines."""
    from densflow.gridproblem import prepare

    grid = df.Grid(32)
    free = 0.1 * KL(grid, grid.uniform()) + Interaction(grid, gaussian(-1, 0.1))
    setup = prepare(free, grid.uniform(), tol=1e-12).setup
    assert setup["method"] == "newton"
    assert setup["newton_preconditioner"] == "diagonal" and setup["newton_line"] == "exponential"
    two_references = KL(grid, grid.gibbs(V1)) + Dirichlet(grid, grid.uniform())
    for energy, method in ((free, "newton"), (KL(grid, grid.gibbs(V1)), "auto"), (two_references, "auto")):
        setup = prepare(energy, grid.uniform(), tol=1e-12, method=method).setup
        assert "newton_line" not in setup and setup.get("newton_preconditioner") != "diagonal"


def test_exponential_curve_never_empties_a_cell():
    """A step that would push cells below e^-700 leaves them at that floor: the energy
    stays finite (porous medium and KL are +inf at p = 0) and the mass is 1."""
    from densflow.energies.mirror import LOG_FLOOR, ExponentialLine

    grid = df.Grid(64)
    E = 0.1 * KL(grid, grid.uniform()) + PorousMedium(grid, 2)
    p = grid.uniform()
    s = np.zeros(grid.shape)
    s[:8] = 1e3 * p[:8]  # u = 1000 in eight cells
    s -= s.sum() * p
    line = ExponentialLine(E, E.evaluate(p), s)
    q = line.state_at(5.0).p
    assert np.all(q[:8] == pytest.approx(np.exp(-LOG_FLOOR), rel=1e-12))
    assert abs(q.sum() - 1.0) < 1e-14 and np.isfinite(line.delta(5.0))
    assert line.delta(5.0) == pytest.approx(E.value(q) - E.value(p), rel=1e-10)


def test_free_newton_direction_is_accurate_in_nearly_empty_cells():
    """With the default forcing (PCG stops at a relative residual of 1e-2 in the Q-norm,
    blind to cells of p ~ 1e-12 / N), the Jacobi correction makes the step's entries in
    those cells (what the exponential curve reads as changes of log p) match a dense
    KKT solve to 1e-3 relative, where the uncorrected step is off by more than 5 %."""
    from densflow.free_newton import FreeNewtonStep
    from densflow.metrics.diagonal import HessianDiagonal

    grid = df.Grid(32)
    N = grid.size
    p = random_density(grid, 11)
    tail = np.arange(N) % 5 == 0
    p[tail] = 1e-12 / N * (1 + np.arange(tail.sum()))
    p /= p.sum()
    W = gaussian(1, 0.2)  # repulsive: the Hessian is positive definite
    E = 0.05 * KL(grid, grid.uniform()) + Interaction(grid, W)
    g = E.gradient(p)
    H = 0.05 * np.diag(1 / p) + dense_interaction(grid, W)
    assert np.linalg.eigvalsh(H).min() > 0
    KKT = np.zeros((N + 1, N + 1))
    KKT[:N, :N], KKT[:N, N], KKT[N, :N] = H, 1.0, 1.0
    d_ref = np.linalg.solve(KKT, np.concatenate([-g, [0.0]]))[:N]
    errors = {}
    for step in (NewtonStep, FreeNewtonStep):
        op = step(E, HessianDiagonal(df.metrics.get("combined").bind(E), E), Newton())
        s = op.direction(p, g)
        assert abs(s.sum()) <= 1e-15
        errors[step] = np.max(np.abs(-s[tail] - d_ref[tail]) / np.abs(d_ref[tail]))
    assert errors[FreeNewtonStep] <= 1e-3 and errors[NewtonStep] >= 5e-2, errors


def test_the_free_energies_default_resumes_bit_for_bit(tmp_path):
    """Interrupted after 3 steps and resumed from the snapshot at 2, the default's run
    (exponential curves, diagonal preconditioner) repeats the uninterrupted one bit for
    bit: its direction depends on the density alone."""
    from densflow.io.recorder import Recorder

    grid = df.Grid(32, 2)
    W = lambda a, b: -np.exp(-(a * a + b * b) / (2 * 0.04)) / (2 * np.pi * 0.04)  # noqa: E731
    E = 0.05 * KL(grid, grid.uniform()) + Interaction(grid, W)
    x1, x2 = grid.coordinates()
    p0 = np.exp(0.5 * (np.cos(2 * np.pi * x1) + np.cos(2 * np.pi * x2)))
    p0 /= p0.sum()

    def run(path, stop_at=None, resume=False):
        def interrupt(k, *args):
            if k == stop_at:
                raise KeyboardInterrupt
            return False

        with Recorder(path, mode="a", snapshot_every=2) as rec:
            return df.solve(E, p0, out=rec.run("run"), resume=resume, callback=interrupt)

    whole = run(tmp_path / "whole.h5")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut.h5", stop_at=3)
    resumed = run(tmp_path / "cut.h5", resume=True)
    assert whole.converged and whole.n_iter >= 4
    assert resumed.info["resumed_from"] == 2
    assert np.array_equal(resumed.energies, whole.energies) and np.array_equal(resumed.p, whole.p)
