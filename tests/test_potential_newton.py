"""Newton in the potential (densflow.potential_newton): products, solves, minimisers, resume."""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy, random_density
from dense import difference_matrices
from densflow.kernels.potential import cyclic_band_solve, potential_hessian_band
from densflow.potential_newton import PotentialNewton, PotentialNewtonStep, applies

WEIGHTS = [(1, 1e-3, 0), (1, 0, 1e-4), (1, 1e-3, 1e-4), (1, 0, 0)]


def dense_operators(grid, w):
    Ds = difference_matrices(grid.n, grid.dim)
    L = sum(D.T @ np.diag(w.ravel()) @ D for D in Ds)
    A = sum(D.T @ D for D in Ds)
    return L, A


def dense_density_step(grid, mu, p, weights, g):
    """The density Newton step -d of E = a1 H^-1 + a2 KL + a3 Dirichlet at p on the
    mass-zero subspace: [[H, 1], [1^T, 0]] [d; lam] = [-g; 0], H = a1 L^+ + a2 diag(1/p)
    + a3 A from dense matrices."""
    a1, a2, a3 = weights
    L, A = dense_operators(grid, mu)
    H = a1 * np.linalg.pinv(L) + a2 * np.diag(1.0 / p) + a3 * A
    N = grid.size
    K = np.zeros((N + 1, N + 1))
    K[:N, :N], K[:N, N], K[N, :N] = H, 1.0, 1.0
    return -np.linalg.solve(K, np.concatenate([-g, [0.0]]))[:N]


def dense_potential_hessian(grid, mu, p, weights, nu=0.0):
    """a1 L + L (diag((a2 + nu)/p) + a3 A) L, from dense difference matrices."""
    a1, a2, a3 = weights
    L, A = dense_operators(grid, mu)
    return a1 * L + L @ (np.diag((a2 + nu) / p.ravel()) + a3 * A) @ L


def phi_gradient(E, grid, mu, phi):
    """L grad_p E at p = mu + L phi: the gradient in the potential."""
    L, _ = dense_operators(grid, mu)
    p = mu + (L @ phi.ravel()).reshape(grid.shape)
    return (L @ E.gradient(p, check=False).ravel()).reshape(grid.shape)


def step(E, **kw):
    return PotentialNewtonStep(E, df.metrics.get("combined").bind(E), PotentialNewton(**kw))


@pytest.mark.parametrize("weights", WEIGHTS)
def test_potential_hessian_products_match_finite_differences_of_the_potential_gradient(
        small_problem, weights):
    grid, mu = small_problem
    E = make_energy(grid, mu, weights)
    rng = np.random.default_rng(4)
    L, _ = dense_operators(grid, mu)
    # a potential whose density stays positive
    phi = rng.standard_normal(grid.shape)
    phi *= 0.3 * mu.min() / np.abs(L @ phi.ravel()).max()
    p = mu + (L @ phi.ravel()).reshape(grid.shape)
    v = rng.standard_normal(grid.shape)
    h = 1e-4 * np.abs(phi).max() / np.abs(v).max()  # the density moves by ~1e-5 of mu
    fd = (phi_gradient(E, grid, mu, phi + h * v) - phi_gradient(E, grid, mu, phi - h * v)) / (2 * h)
    hv, curvature = step(E, preconditioner="fourier").hessian_product(p, v)
    assert np.max(np.abs(hv - fd)) <= 1e-6 * np.max(np.abs(fd))
    dense = (dense_potential_hessian(grid, mu, p, weights) @ v.ravel()).reshape(grid.shape)
    assert np.max(np.abs(hv - dense)) <= 1e-11 * np.max(np.abs(dense))
    assert curvature == pytest.approx(float(v.ravel() @ dense.ravel()), rel=1e-11)


def _dense_phi_step(grid, mu, p, weights, b, nu=0.0):
    H = dense_potential_hessian(grid, mu, p, weights, nu)
    delta = np.linalg.lstsq(H, b.ravel(), rcond=None)[0]
    return (delta - delta.mean()).reshape(grid.shape)


@pytest.mark.parametrize("kind", ["direct", "fourier", "metric"])
@pytest.mark.parametrize("weights", WEIGHTS)
def test_potential_newton_solve_matches_a_dense_solve(small_problem, kind, weights):
    grid, mu = small_problem
    if kind == "direct" and grid.dim == 2:
        pytest.skip("the banded solve is 1D")
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 3)
    g = E.gradient(p)
    L, _ = dense_operators(grid, mu)
    b = (L @ g.ravel()).reshape(grid.shape)
    ref = _dense_phi_step(grid, mu, p, weights, b)
    op = step(E, preconditioner=kind, forcing_max=1e-12, cg_max_iter=10 * grid.size)
    delta = op.solve(p, b)
    delta -= delta.mean()
    assert np.max(np.abs(delta - ref)) <= 1e-8 * np.max(np.abs(ref))
    counts = op.stats
    if kind == "direct":
        assert counts["hessian_products"] == 1 and counts["cg_iterations"] == 0
    else:
        assert counts["hessian_products"] == counts["cg_iterations"] >= 1


@pytest.mark.parametrize("weights", [(1, 1e-3, 1e-4), (1, 0, 1e-4), (1, 1e-3, 0)])
def test_potential_direction_is_the_newton_step_in_the_density(small_problem, weights):
    """s = L delta solves the p-space Newton system H d = -(g - c 1), sum d = 0."""
    grid, mu = small_problem
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 5)
    state = E.evaluate(p)
    a1, a2, a3 = weights
    L, A = dense_operators(grid, mu)
    H = a1 * np.linalg.pinv(L) + a2 * np.diag(1.0 / p.ravel()) + a3 * A
    N = grid.size
    K = np.zeros((N + 1, N + 1))
    K[:N, :N], K[:N, N], K[N, :N] = H, 1.0, 1.0
    d_ref = np.linalg.solve(K, np.concatenate([-state.gradient.ravel(), [0.0]]))[:N]
    op = step(E, forcing_max=1e-12, cg_max_iter=10 * N)
    s = op.direction(p, state.gradient)
    assert abs(s.sum()) <= 1e-15
    assert np.max(np.abs(-s.ravel() - d_ref)) <= 1e-8 * np.max(np.abs(d_ref))
    # the line search gets L^+ s from the step: it is the exact one
    s_hint, hs = op.hint
    assert s_hint is s
    assert np.allclose(hs.ravel(), np.linalg.pinv(L) @ s.ravel(), rtol=0,
                       atol=1e-9 * np.abs(hs).max())


@pytest.mark.parametrize("n,b", [(9, 1), (12, 2), (16, 3), (64, 3)])
def test_cyclic_band_solve_matches_a_dense_pseudo_inverse(n, b):
    rng = np.random.default_rng(n)
    # a symmetric positive semidefinite cyclic band with the constants as null space:
    # a weighted graph Laplacian on the cycle with edges up to distance b
    H = np.zeros((n, n))
    for k in range(1, b + 1):
        wts = rng.uniform(0.5, 2.0, n)
        for i in range(n):
            j = (i + k) % n
            H[i, i] += wts[i]
            H[j, j] += wts[i]
            H[i, j] -= wts[i]
            H[j, i] -= wts[i]
    band = np.zeros((n, 2 * b + 1))
    for i in range(n):
        for k in range(-b, b + 1):
            band[i, k + b] = H[i, (i + k) % n]
    rhs = rng.standard_normal(n)
    rhs -= rhs.mean()
    out = np.empty(n)
    assert cyclic_band_solve(band, rhs, out)
    assert np.allclose(out, np.linalg.pinv(H) @ rhs, rtol=0, atol=1e-11 * np.abs(out).max())


def test_potential_hessian_band_is_the_dense_hessian():
    grid = df.Grid(16, 1)
    mu = grid.gibbs(V1)
    p = random_density(grid, 8)
    weights = (0.7, 1e-3, 1e-4)
    band = potential_hessian_band(mu, weights[1] / p, weights[0], weights[2], grid.n)
    H = dense_potential_hessian(grid, mu, p, weights)
    full = np.zeros_like(H)
    for i in range(grid.n):
        for k in range(-3, 4):
            full[i, (i + k) % grid.n] += band[i, k + 3]
    assert np.allclose(full, H, rtol=0, atol=1e-12 * np.abs(H).max())


def _two_reference_energy(grid, weights):
    """An H^-1 term on mu1 and KL/Dirichlet on mu2: the minimiser is neither."""
    a1, a2, a3 = weights
    mu1 = grid.gibbs(V1 if grid.dim == 1 else V2)
    mu2 = grid.gibbs((lambda x: np.cos(2 * np.pi * x)) if grid.dim == 1
                     else (lambda x1, x2: np.cos(2 * np.pi * x1) + 0.5 * np.sin(2 * np.pi * x2)))
    E = a1 * df.energies.HMinus1(grid, mu1)
    if a2:
        E = E + a2 * df.energies.KL(grid, mu2)
    if a3:
        E = E + a3 * df.energies.Dirichlet(grid, mu2)
    return E


@pytest.mark.parametrize("dim,n", [(1, 64), (2, 16)])
@pytest.mark.parametrize("weights", [(1, 1e-3, 1e-4), (1, 1e-3, 0), (1, 0, 1e-4)])
def test_potential_and_density_newton_reach_the_same_minimiser(dim, n, weights):
    grid = df.Grid(n, dim)
    E = _two_reference_energy(grid, weights)
    assert E.min_value is None and applies(E)
    p0 = grid.uniform()
    ref = df.solve(E, p0, method="newton", tol=None, gtol=1e-30, max_iter=40,
                   newton=df.newton.Newton(forcing_max=1e-10, cg_max_iter=5000))
    pot = df.solve(E, p0, method="newton_potential", tol=None, gtol=1e-30, max_iter=40,
                   newton=PotentialNewton(forcing_max=1e-10, cg_max_iter=5000))
    assert pot.info["method"] == "newton_potential"
    # the first-order condition holds at both: the gradient is constant
    spread = np.ptp(E.gradient(p0))
    for res in (ref, pot):
        assert np.ptp(E.gradient(res.p)) <= 1e-8 * spread
    # a dense reference: Newton with the exact dense gradient and Hessian from pot.p
    a1, a2, a3 = weights
    mu1, mu2 = E.active_terms[0][1].mu.ravel(), E.active_terms[-1][1].mu.ravel()
    L, A = dense_operators(grid, mu1.reshape(grid.shape))
    Lp = np.linalg.pinv(L)
    q = pot.p.ravel().copy()
    N = grid.size
    for _ in range(3):
        g = a1 * Lp @ (q - mu1) + a2 * (np.log(q / mu2) + 1) + a3 * A @ (q - mu2)
        H = a1 * Lp + a2 * np.diag(1 / q) + a3 * A
        K = np.zeros((N + 1, N + 1))
        K[:N, :N], K[:N, N], K[N, :N] = H, 1.0, 1.0
        q = q + np.linalg.solve(K, np.concatenate([-g, [0.0]]))[:N]
    dense = q.reshape(grid.shape)
    scale = dense.max()
    assert np.max(np.abs(pot.p - dense)) <= 1e-12 * scale
    # 1D: the two Newtons agree to rounding; 2D: the density Newton's gradient holds the
    # H^-1 term's CG solve (relative residual 1e-13), which moves its minimiser by ~1e-9
    assert np.max(np.abs(ref.p - dense)) <= (1e-12 if dim == 1 else 1e-8) * scale


def test_default_method_is_the_potential_where_there_is_an_h_minus_1_term():
    grid = df.Grid(64, 1)
    mu = grid.gibbs(V1)
    for weights, method in (((1, 1e-3, 1e-4), "newton_potential"), ((0, 1e-3, 1e-4), "newton")):
        res = df.solve(make_energy(grid, mu, weights), grid.uniform(), tol=1e-12)
        assert res.converged and res.info["method"] == method
    with pytest.raises(ValueError, match="needs an energy with an HMinus1 term"):
        df.solve(make_energy(grid, mu, (0, 1e-3, 1e-4)), grid.uniform(), method="newton_potential")
    with pytest.raises(ValueError, match="preconditioner must be one of"):
        PotentialNewton(preconditioner="jacobi")
    with pytest.raises(ValueError, match="'direct' needs a 1D energy"):
        df.solve(make_energy(df.Grid(8, 2), df.Grid(8, 2).gibbs(V2), (1, 1e-3, 0)),
                 df.Grid(8, 2).uniform(), method="newton_potential",
                 newton=PotentialNewton(preconditioner="direct"))


@pytest.mark.parametrize("dim", [1, 2])
def test_potential_newton_converges_quadratically_and_mesh_independently(dim):
    counts = []
    for n in ((128, 512) if dim == 1 else (32, 64)):
        grid = df.Grid(n, dim)
        E = make_energy(grid, grid.gibbs(V1 if dim == 1 else V2),
                        (1, 1e-3, 1e-4) if dim == 1 else (1, 3e-4, 1e-4))
        # forcing_last = forcing_max: the classical forcing (the default's last step
        # solves only as far as tol needs, which is not a quadratic step)
        res = df.solve(E, grid.uniform(), tol=1e-12, newton=PotentialNewton(forcing_last=1e-2))
        assert res.converged and res.info["method"] == "newton_potential"
        assert np.all(res.inner_iterations == 0)
        counts.append(res.n_iter)
        e = res.energies
        # quadratic: the last energy is at most a constant times the square of the one before
        assert e[-1] <= 10 * e[-2] ** 2 / e[0] + 1e-15
    assert counts[1] <= counts[0] + 1


def test_potential_newton_resumed_after_a_crash_at_a_snapshot_is_bit_identical(tmp_path):
    from densflow.io.recorder import read_run_file

    grid = df.Grid(64, 2)
    mu = grid.gibbs(lambda x1, x2: 3 * np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2))
    E = make_energy(grid, mu, (1, 3e-4, 1e-4))
    x1, x2 = grid.coordinates()
    p0 = np.exp(-((x1 - 0.5) ** 2 + (x2 - 0.5) ** 2) / 0.01) + 1e-3
    p0 /= p0.sum()
    # more steps than a snapshot interval; forcing_cut < forcing_max: the solve's length
    # depends on whether its step would be cut, a function of the state alone
    settings = PotentialNewton(forcing_max=0.5, forcing_cut=0.2)
    kw = dict(tol=1e-12, method="newton_potential", newton=settings, max_iter=30)
    ref = df.solve(E, p0, **kw)
    assert ref.n_iter == 30

    def crash(k, *args):
        if k == 13:  # after the snapshot of iteration 10
            raise RuntimeError("simulated crash")

    path = tmp_path / "p.h5"
    with pytest.raises(RuntimeError):
        df.solve(E, p0, out=path, callback=crash, **kw)
    res = df.solve(E, p0, out=path, resume=True, **kw)
    whole = df.solve(E, p0, out=tmp_path / "w.h5", **kw)
    assert res.info["resumed_from"] == 10
    for other in (res, whole):
        for key in ("energies", "p", "cg_iterations", "hessian_products", "inner_iterations"):
            assert np.array_equal(getattr(other, key), getattr(ref, key)), key
    run, = read_run_file(path).runs
    assert run.attrs["method"] == "newton_potential"
    assert run.attrs["newton_preconditioner"] == "fourier"
    with pytest.raises(ValueError, match="newton_preconditioner"):
        df.solve(E, p0, out=path, resume=True, **{**kw, "newton": PotentialNewton(
            forcing_max=0.5, forcing_cut=0.2, preconditioner="metric")})
    with pytest.raises(ValueError, match="newton_forcing_cut"):
        df.solve(E, p0, out=path, resume=True, **{**kw, "newton": PotentialNewton(forcing_max=0.5)})


def test_potential_newton_keeps_the_globalisation_of_the_density_newton():
    """Nearly empty cells take the metric's step; a failed line search falls back."""
    grid = df.Grid(128, 1)
    mu = grid.gibbs(V1)
    E = make_energy(grid, mu, (1, 1e-3, 1e-4))
    p0 = random_density(grid, 2)
    p0[5] = 1e-14
    p0 /= p0.sum()
    res = df.solve(E, p0, tol=1e-12)
    assert res.converged and res.info["method"] == "newton_potential"
    assert res.hessian_products[0] == 0  # the revival step is the metric's
    calls = []

    class Broken(PotentialNewtonStep):
        def solve(self, p, b, gap=None, nu=0.0):
            return -super().solve(p, b, gap, nu)  # an ascent direction

        def fallback(self, p, g):
            calls.append(1)
            return super().fallback(p, g)

    from densflow.gridproblem import NEWTON_LINE_SEARCH, make_bound
    from densflow.optim.loop import descend

    op = Broken(E, df.metrics.Safeguard(df.metrics.get("combined").bind(E), E),
                PotentialNewton(direct_form="band"))  # (solve: the band's linear solve)
    p = random_density(grid, 6)
    bound = make_bound(E, p, op, "combined", NEWTON_LINE_SEARCH, 5)
    out = descend(bound, 1e-12, None, 5, None, None, False, 0.0)
    assert len(calls) == 5 and out.n_iter == 5 and out.energies[-1] < out.energies[0]
    assert np.all(out.decrements > 0)


def test_steps_that_positivity_would_cut_are_solved_tighter_and_mesh_independently():
    # high-contrast mu, a bump start: loose CG iterates would empty cells and be cut by
    # the fraction-to-the-boundary rule; forcing_cut solves those steps further
    # 64² and 128²: 5 steps against 9 and 12 with forcing_cut = 1 (at 32², 5 against 6
    # and a last energy of 6e-13: a change of rounding can add a step there)
    counts = []
    for n in (64, 128):
        grid = df.Grid(n, 2)
        x1, x2 = grid.coordinates()
        mu = grid.gibbs(lambda x1, x2: 3 * np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2)
                        + 1.5 * np.cos(6 * np.pi * x1))
        E = make_energy(grid, mu, (1, 3e-4, 1e-4))
        p0 = np.exp(-((x1 - 0.5) ** 2 + (x2 - 0.5) ** 2) / (2 * 0.08**2))
        p0 += 1e-3 * p0.max()
        p0 /= p0.sum()
        res = df.solve(E, p0, tol=1e-12)
        loose = df.solve(E, p0, tol=1e-12, newton=PotentialNewton(forcing_cut=1.0))
        assert res.converged and loose.converged and E.value(res.p) <= 1e-12
        assert res.n_iter < loose.n_iter
        assert res.steps[0] > loose.steps[0] and np.all(res.steps[1:] == 1.0)
        counts.append(res.n_iter)
    assert counts[1] <= 1.3 * counts[0]  # mesh independence: at most 30 % more steps
    with pytest.raises(ValueError, match="forcing_cut must lie in"):
        PotentialNewton(forcing_cut=0.0)


def test_float32_preconditioner_only_where_w_over_p_is_mild_and_it_changes_little():
    import densflow.potential_newton as PN

    grid = df.Grid(32, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, (1, 3e-4, 1e-4))
    op = PotentialNewtonStep(E, df.metrics.get("combined").bind(E), PotentialNewton())
    assert op.kind == "fourier" and op.mixed
    p = random_density(grid, 11)
    assert op._mild(p)
    floor = p.copy()
    floor[:4] *= 1e-6  # nearly empty cells: w/p spans more than MIXED_CONTRAST
    floor /= floor.sum()
    assert not op._mild(floor)
    g = E.gradient(p)
    s32 = op.direction(p, g, 1.0).copy()
    try:
        PN.MIXED = False
        op64 = PotentialNewtonStep(E, df.metrics.get("combined").bind(E), PotentialNewton())
        assert not op64.mixed
        s64 = op64.direction(p, g, 1.0)
    finally:
        PN.MIXED = True
    # the same Newton step to the forcing term's accuracy (1e-2), rounding far below it
    assert np.max(np.abs(s32 - s64)) <= 1e-4 * np.max(np.abs(s64))


@pytest.mark.parametrize("weights", [(1, 3e-4, 0), (1, 3e-4, 1e-4)])
def test_potential_newton_from_a_nearly_vanishing_2d_start(weights):
    # a bump floored at 1e-6 of its maximum: the first solves reach cg_max_iter and the
    # run depends on their truncated iterates (10 outer steps; 42-143 were seen when
    # the float32 preconditioner's rounding entered them)
    grid = df.Grid(64, 2)
    E = make_energy(grid, grid.gibbs(V2), weights)
    x1, x2 = grid.coordinates()
    bump = np.exp(-((x1 - 0.5) ** 2 + (x2 - 0.5) ** 2) / (2 * 0.15**2))
    bump[np.abs(x1 - 0.5) > 1 / 3] = 1e-6 * bump.max()
    bump = np.maximum(bump, 1e-6 * bump.max())
    res = df.solve(E, bump / bump.sum(), tol=1e-12)
    assert res.converged and res.info["method"] == "newton_potential" and res.n_iter <= 12


def _eager_and_lazy(monkeypatch, run):
    """``run()`` with the metric bound lazily (counting binds), then eagerly."""
    from densflow import gridproblem

    monkeypatch.setattr(gridproblem.LazyBound, "binds", 0)
    lazy = run()
    binds = gridproblem.LazyBound.binds
    monkeypatch.setattr(gridproblem, "_lazy_applies", lambda *a: False)
    eager = run()
    assert gridproblem.LazyBound.binds == binds  # the eager run made no LazyBound
    return lazy, eager, binds


def _same_run(a, b):
    for key in ("energies", "p", "decrements", "cg_iterations", "hessian_products"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def test_default_1d_solve_without_fallback_never_binds_the_metric(monkeypatch, tmp_path):
    from densflow.io.recorder import read_run_file

    grid = df.Grid(512, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 1e-4))
    paths = iter([tmp_path / "lazy.h5", tmp_path / "eager.h5"])
    lazy, eager, binds = _eager_and_lazy(
        monkeypatch, lambda: df.solve(E, grid.uniform(), tol=1e-12, out=next(paths)))
    assert lazy.converged and lazy.info["method"] == "newton_potential"
    assert binds == 0 and np.all(lazy.hessian_products == 1)  # direct solves only
    _same_run(lazy, eager)
    (a,), (b,) = read_run_file(tmp_path / "lazy.h5").runs, read_run_file(tmp_path / "eager.h5").runs
    assert a.attrs.keys() == b.attrs.keys() and "metric_level" in a.attrs
    for key in set(a.attrs) - {"wall_time", "created", "started", "finished", "densflow_version"}:
        np.testing.assert_array_equal(a.attrs[key], b.attrs[key], err_msg=key)  # NaN == NaN
    # a lazily bound metric is still what the eager bind gives: the same basis level
    level = df.metrics.get("combined").bind(E).basis.level
    assert a.attrs["metric_level"] == level
    # the setup is made only when read (a recorded run), and then is what was recorded
    from densflow import gridproblem

    made = []
    real = gridproblem.setup_attributes
    monkeypatch.setattr(gridproblem, "setup_attributes", lambda *a: made.append(1) or real(*a))
    df.solve(E, grid.uniform(), tol=1e-12)
    assert made == []
    setup = gridproblem.prepare(E, grid.uniform(), tol=1e-12).setup
    assert made == [] and dict(setup) == dict(setup) and made == [1]
    assert set(a.attrs) >= set(setup) and set(setup) >= {"metric_level", "newton_preconditioner"}
    for key in setup:
        np.testing.assert_array_equal(setup[key], a.attrs[key], err_msg=key)


def test_revival_and_fallback_bind_the_metric_once_and_step_as_an_eager_bind(monkeypatch):
    from densflow import gridproblem
    from densflow.gridproblem import NEWTON_LINE_SEARCH, LazyBound, make_bound
    lazy_applies = gridproblem._lazy_applies
    from densflow.optim.loop import descend

    grid = df.Grid(128, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 1e-4))
    p0 = random_density(grid, 2)
    p0[5] = 1e-14  # nearly empty: the first step is the metric's revival step
    p0 /= p0.sum()
    lazy, eager, binds = _eager_and_lazy(monkeypatch, lambda: df.solve(E, p0, tol=1e-12))
    assert lazy.converged and lazy.hessian_products[0] == 0 and binds == 1
    _same_run(lazy, eager)

    class Broken(PotentialNewtonStep):  # an ascent direction: every step falls back
        def solve(self, p, b, gap=None, nu=0.0):
            return -super().solve(p, b, gap, nu)

    def run(inner):
        op = Broken(E, df.metrics.Safeguard(inner, E), PotentialNewton(direct_form="band"))
        bound = make_bound(E, random_density(grid, 6), op, "combined", NEWTON_LINE_SEARCH, 5)
        return descend(bound, 1e-12, None, 5, None, None, False, 0.0)

    monkeypatch.setattr(LazyBound, "binds", 0)
    metric = df.metrics.get("combined")
    a, b = run(LazyBound(metric, E)), run(metric.bind(E))
    assert LazyBound.binds == 1 and a.n_iter == 5 and a.energies[-1] < a.energies[0]
    _same_run(a, b)
    assert lazy_applies(metric, E, None)
    assert not lazy_applies(metric, E, PotentialNewton(preconditioner="metric"))
    assert not lazy_applies(df.metrics.get("wasserstein"), E, None)

    class Plain(df.energies.Dirichlet):  # a term that does not declare its wavelet diagonal
        diagonal_is_h3 = False
        wavelet_diagonal = df.energies.Term.wavelet_diagonal

    bare = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0)) + 1e-4 * Plain(grid, grid.gibbs(V1))
    monkeypatch.setattr(gridproblem, "_lazy_applies", lazy_applies)  # lazy binds again
    with pytest.raises(NotImplementedError):  # refused before the run, as by an eager bind
        df.solve(bare, random_density(grid, 6), tol=1e-12, method="newton_potential")
