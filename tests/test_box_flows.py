"""Time-accurate flows (densflow.flow) on the no-flux box against closed forms:
reflecting-wall heat modes, Fokker–Planck relaxing to the Gibbs density, the Mahalanobis
flow of the Dirichlet energy, Barenblatt profiles near and at a wall, conservation laws,
and the box proximal operators against dense matrices."""

import math

import numpy as np
import pytest

import densflow as df
from densflow.energies import KL, Dirichlet, PorousMedium
from densflow.flows.box_operators import BoxMahalanobisProx, BoxWassersteinProx
from densflow.flows.proximal import FisherRaoProx, _edge_mean, make_proximal


def box(n, dim=1):
    return df.Grid(n, dim, boundary="neumann")


def l1(a, b):
    return float(np.abs(a - b).sum())


def orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


# ------------------------------------------------------------- operators, dense references
def dense_box_difference(n):
    """D on a line of n cells: n - 1 rows, (D p)_e = n (p_{e+1} - p_e)."""
    D = np.zeros((n - 1, n))
    for e in range(n - 1):
        D[e, e], D[e, e + 1] = -n, n
    return D


@pytest.mark.parametrize("mobility", ["arithmetic", "logarithmic"])
def test_box_wasserstein_operator_is_the_dense_centred_edge_laplacian(mobility):
    n = 7
    rng = np.random.default_rng(0)
    D = dense_box_difference(n)
    I = np.eye(n)
    # 1D
    p = rng.uniform(0.5, 2.0, n)
    a, b = p[:-1], p[1:]
    m = 0.5 * (a + b) if mobility == "arithmetic" else (a - b) / (np.log(a) - np.log(b))
    K = D.T @ np.diag(m) @ D
    prox = make_proximal("wasserstein", box(n), p, mobility)
    x = rng.standard_normal(n)
    assert np.allclose(prox.apply(x), K @ x, rtol=1e-12, atol=1e-9)
    # 2D: D_1 = D (x) I, D_2 = I (x) D on row-major (i, j)
    p2 = rng.uniform(0.5, 2.0, (n, n))
    D1, D2 = np.kron(D, I), np.kron(I, D)
    flat = p2.ravel()

    def centred(Dd):
        a = np.abs(np.minimum(Dd, 0)) @ flat / n
        b = np.maximum(Dd, 0) @ flat / n
        return 0.5 * (a + b) if mobility == "arithmetic" else (a - b) / (np.log(a) - np.log(b))

    K2 = D1.T @ np.diag(centred(D1)) @ D1 + D2.T @ np.diag(centred(D2)) @ D2
    x2 = rng.standard_normal((n, n))
    prox2 = BoxWassersteinProx(box(n, 2), p2, lambda a, b: _edge_mean(a, b, mobility))
    assert np.allclose(prox2.apply(x2).ravel(), K2 @ x2.ravel(), rtol=1e-12, atol=1e-8)
    assert abs(prox2.apply(x2).sum()) < 1e-9 * np.abs(K2).max()  # no flux through the walls


@pytest.mark.parametrize("dim", [1, 2])
def test_box_mahalanobis_operator_is_the_dense_pseudo_inverse(dim):
    n = 6
    D = dense_box_difference(n)
    A = D.T @ D if dim == 1 else np.kron(D.T @ D, np.eye(n)) + np.kron(np.eye(n), D.T @ D)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n,) * dim)
    got = BoxMahalanobisProx(box(n, dim)).apply(x)
    assert np.allclose(got.ravel(), np.linalg.pinv(A) @ x.ravel(), atol=1e-12)


def test_make_proximal_dispatches_on_the_boundary():
    p = box(8).uniform()
    assert isinstance(make_proximal("wasserstein", box(8), p, "arithmetic"), BoxWassersteinProx)
    assert isinstance(make_proximal("mahalanobis", box(8), p, "arithmetic"), BoxMahalanobisProx)
    assert isinstance(make_proximal("fisher_rao", box(8), p, "arithmetic"), FisherRaoProx)
    assert not isinstance(make_proximal("wasserstein", df.Grid(8), p, "arithmetic"),
                          BoxWassersteinProx)


# --------------------------------------------------------------------------- closed forms
def cosine_modes(grid, t):
    """Heat flow with reflecting walls: cos(k pi x) decays as exp(-k^2 pi^2 t)."""
    x = grid.coordinates()
    if grid.dim == 1:
        rho = (1 + 0.5 * np.exp(-np.pi**2 * t) * np.cos(np.pi * x)
               + 0.3 * np.exp(-9 * np.pi**2 * t) * np.cos(3 * np.pi * x))
    else:
        rho = (1 + 0.3 * np.exp(-np.pi**2 * t) * np.cos(np.pi * x[0])
               + 0.2 * np.exp(-5 * np.pi**2 * t) * np.cos(np.pi * x[0]) * np.cos(2 * np.pi * x[1]))
    return rho / rho.sum()


def test_heat_flow_with_reflecting_walls_1d_space_order_and_mass():
    T, errs = 0.02, []
    for n in (32, 64, 128):
        grid = box(n)
        r = df.flow(KL(grid, grid.uniform()), cosine_modes(grid, 0), T, dt=T / 200)
        errs.append(l1(r.p, cosine_modes(grid, T)))
        assert abs(r.p.sum() - 1) < 1e-13
    assert np.all(orders(errs) >= 1.8), (errs, orders(errs))
    # each mode's amplitude from the DCT of the finest run (cell centres: DCT-II)
    from scipy.fft import dct
    c = dct(grid.size * r.p, type=2, norm="ortho") * np.sqrt(2.0 / grid.n)
    assert c[1] == pytest.approx(0.5 * np.exp(-np.pi**2 * T), rel=2e-3)
    assert c[3] == pytest.approx(0.3 * np.exp(-9 * np.pi**2 * T), rel=1e-2)


@pytest.mark.parametrize("scheme, low", [("bdf2", 1.8), ("euler", 0.9)])
def test_heat_flow_with_reflecting_walls_time_order(scheme, low):
    grid = box(512)
    T = 0.02
    E = KL(grid, grid.uniform())
    errs = [l1(df.flow(E, cosine_modes(grid, 0), T, dt=T / m, scheme=scheme).p,
               cosine_modes(grid, T)) for m in (5, 10, 20)]
    assert np.all(orders(errs) >= low), (errs, orders(errs))


def test_heat_flow_with_reflecting_walls_2d():
    T, errs = 0.01, []
    for n in (8, 16, 32):
        grid = box(n, 2)
        r = df.flow(KL(grid, grid.uniform()), cosine_modes(grid, 0), T, dt=T / 100)
        errs.append(l1(r.p, cosine_modes(grid, T)))
        assert abs(r.p.sum() - 1) < 1e-13
    assert np.all(orders(errs) >= 1.8), (errs, orders(errs))


@pytest.mark.parametrize("dim", [1, 2])
def test_fokker_planck_relaxes_to_the_gibbs_density(dim):
    grid = box(48 if dim == 1 else 16, dim)
    x = grid.coordinates()
    if dim == 1:
        V = lambda x: 2.0 * x + np.sin(3 * np.pi * x)  # noqa: E731  (tilted: mass piles at 0)
        p0 = np.exp(-((x - 0.8) / 0.1) ** 2) + 0.05
    else:
        V = lambda a, b: 2.0 * a + np.cos(2 * np.pi * b)  # noqa: E731
        p0 = np.exp(-((x[0] - 0.8) ** 2 + (x[1] - 0.3) ** 2) / 0.02) + 0.05
    p0 /= p0.sum()
    mu = grid.gibbs(V)
    E = KL(grid, mu)
    r = df.flow(E, p0, 3.0, rtol=1e-6, save_every=1)
    assert l1(r.p, mu) < 1e-6, l1(r.p, mu)
    assert np.abs(r.densities.sum(axis=tuple(range(1, dim + 1))) - 1).max() < 1e-12
    assert np.all(np.diff(r.energies) <= 1e-12)
    # exponential relaxation: most of the distance is gone a third of the way in
    early = r.densities[np.searchsorted(r.times, 1.0)]
    assert l1(early, mu) < 1e-2 * l1(p0, mu)


@pytest.mark.parametrize("scheme, low", [("bdf2", 1.8), ("euler", 0.9)])
def test_mahalanobis_flow_of_dirichlet_on_the_box(scheme, low):
    grid = box(12, 2)
    mu = grid.gibbs(lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))
    p0 = np.random.default_rng(3).uniform(0.5, 1.5, grid.shape)
    p0 /= p0.sum()
    T = 0.5
    exact = mu + np.exp(-T) * (p0 - mu)
    errs = [l1(df.flow(Dirichlet(grid, mu), p0, T, metric="mahalanobis", dt=T / m,
                       scheme=scheme).p, exact) for m in (10, 20, 40)]
    assert np.all(orders(errs) >= low), (errs, orders(errs))


@pytest.mark.parametrize("metric", ["wasserstein", "fisher_rao", "mahalanobis"])
def test_mass_positivity_and_energy_decrease_on_the_box(metric):
    grid = box(16, 2)
    mu = grid.gibbs(lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))
    p0 = np.random.default_rng(5).uniform(0.2, 1.8, grid.shape)
    p0 /= p0.sum()
    E = KL(grid, mu) + 1e-4 * Dirichlet(grid, mu)
    r = df.flow(E, p0, 0.05, metric=metric, dt=0.005, scheme="euler", save_every=1)
    assert r.converged
    assert np.abs(r.densities.sum(axis=(1, 2)) - 1).max() < 1e-12
    assert r.densities.min() > 0
    values = np.array([E.value(p) for p in r.densities])
    assert np.all(np.diff(values) <= 1e-14)


# ------------------------------------------------------------------------------ Barenblatt
M = 2.0
ALPHA = 1 / (M + 1)
K = ALPHA * (M - 1) / (2 * M)
Q = 1 / (M - 1)
C = (math.sqrt(math.pi / K) * math.gamma(Q + 1) / math.gamma(Q + 1.5)) ** (-1 / (Q + 0.5))


def barenblatt(x, t, centre):
    """The unit-mass Barenblatt profile of rho_t = (rho^2)_xx on the line."""
    return t**-ALPHA * np.maximum(C - K * (x - centre) ** 2 * t ** (-2 * ALPHA), 0) ** Q


def time_of_radius(r):
    return (r / math.sqrt(C / K)) ** (1 / ALPHA)


def test_barenblatt_near_a_wall_until_its_support_touches_it_then_mass_is_kept():
    centre, t0, t1 = 0.2, time_of_radius(0.05), time_of_radius(0.19)
    errs, com = [], []
    for n in (64, 128, 256):
        grid = box(n)
        x = grid.coordinates()
        p0 = barenblatt(x, t0, centre) + 1e-9
        r = df.flow(PorousMedium(grid, M), p0 / p0.sum(), t1, t0=t0, rtol=1e-6)
        exact = barenblatt(x, t1, centre)
        errs.append(l1(r.p, exact / exact.sum()))
        assert r.converged and r.p.min() > 0
        # after the support reaches the wall (radius 0.2): no flux through it
        after = df.flow(PorousMedium(grid, M), r.p, time_of_radius(0.4), t0=t1, rtol=1e-5)
        assert abs(after.p.sum() - 1) < 1e-13
        com.append(float((after.p * x).sum()))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3, errs
    # the wall pushes the mass away: its centre leaves x = 0.2 (free space keeps it there)
    assert com[-1] > centre + 0.02, com
    assert abs(com[-1] - com[-2]) < 1e-4


def test_barenblatt_centred_on_a_wall_is_exact_while_the_wall_is_in_its_support():
    """The even Barenblatt profile centred at x = 0 has no flux there: its half is an
    exact solution on the box however far its support crosses the wall. Its mass is 1/2;
    the unit-mass box density :math:`2B(x, s)` solves :math:`\rho_t = (\rho^2)_{xx}` with
    :math:`ds/dt = 2`, so the flow runs for half the Barenblatt time."""
    t0, t1 = time_of_radius(0.2), time_of_radius(0.8)
    errs = []
    for n in (64, 128, 256):
        grid = box(n)
        x = grid.coordinates()
        p0 = barenblatt(x, t0, 0.0) + 1e-9
        r = df.flow(PorousMedium(grid, M), p0 / p0.sum(), t0 + (t1 - t0) / 2, t0=t0, rtol=1e-6)
        exact = barenblatt(x, t1, 0.0)
        errs.append(l1(r.p, exact / exact.sum()))
        assert abs(r.p.sum() - 1) < 1e-13
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3, errs


def test_barenblatt_centred_in_a_corner_of_the_square_box_is_exact():
    """2D, m = 2: the radial Barenblatt profile centred at the corner (0, 0) is even in
    both coordinates, so its quarter is exact on the box. Its mass is 1/4; the unit-mass
    density 4B solves the equation with ds/dt = 4^(m-1) = 4. Second order in space."""
    d = 2
    alpha = d / (d * (M - 1) + 2)
    beta = alpha / d
    k = alpha * (M - 1) / (2 * M * d)
    c = (math.pi / (k * (Q + 1))) ** (-1 / (Q + d / 2))

    def profile(r2, t):
        return t**-alpha * np.maximum(c - k * r2 * t ** (-2 * beta), 0) ** Q

    t0, t1 = ((radius / math.sqrt(c / k)) ** (1 / beta) for radius in (0.3, 0.8))
    errs = []
    for n in (16, 32):
        grid = box(n, 2)
        x = grid.coordinates()
        r2 = x[0] ** 2 + x[1] ** 2
        p0 = profile(r2, t0) + 1e-6
        r = df.flow(PorousMedium(grid, M), p0 / p0.sum(), t0 + (t1 - t0) / 4, t0=t0, rtol=1e-5)
        exact = profile(r2, t1)
        assert r.converged and abs(r.p.sum() - 1) < 1e-13
        errs.append(l1(r.p, exact / exact.sum()))
    # measured: 6.7e-3, 1.8e-3 (and 4.3e-4 at 64^2)
    assert orders(errs)[0] >= 1.7 and errs[-1] < 2.5e-3, errs


# ------------------------------------------------------------------- multigrid Newton systems
@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
@pytest.mark.parametrize("dim", [1, 2])
def test_multigrid_screened_direction_solves_the_potential_newton_system(boundary, dim):
    """The screened solve preconditioned by the multigrid (2D: cycles; 1D: exact) gives
    the Newton direction of the general form, solved independently by pcg_potential, for
    the porous medium (q/p* far from constant) on both boundaries."""
    from densflow.flows.krylov import diagonal_mobility, pcg_diagonal, pcg_potential
    from densflow.flows.step import FlowNewton

    n = 32 if dim == 2 else 64
    grid = df.Grid(n, dim, boundary=boundary)
    x = grid.coordinates()
    x1 = x if dim == 1 else x[0]
    rng = np.random.default_rng(5)
    p = np.exp(-((x1 - 0.3) ** 2) / 0.02) + 0.01 + 0.002 * rng.random(grid.shape)
    p /= p.sum()
    energy = PorousMedium(grid, 3)
    prox = make_proximal("wasserstein", grid, p * (1 + 0.05 * rng.random(grid.shape)), "arithmetic")
    tau = 1e-3
    w = rng.standard_normal(grid.shape) + 7.0  # a gauge constant: must not matter
    grad = tau * prox.apply(w)
    q = diagonal_mobility(energy, p)
    settings = FlowNewton(cg_max_iter=400, forcing_min=1e-12)
    mg = prox.screened_multigrid(tau, q)
    delta, its = pcg_diagonal(prox, q, tau, w, grad, 1e-10, settings, mg)
    ref, _ = pcg_potential(energy, prox, p, tau, grad, 1e-11, settings)
    assert np.abs(delta - ref).max() <= 1e-6 * np.abs(ref).max()
    assert its <= (2 if dim == 1 else 30)


def test_porous_medium_box_flow_same_with_and_without_multigrid():
    """The porous medium on the box: the multigrid-preconditioned screened form and the
    general form (multigrid=False) give the same BDF2 flow (to a tenth of its time error),
    the former with fewer CG iterations."""
    from densflow.flows.step import FlowNewton

    grid = box(32, 2)
    x1, x2 = grid.coordinates()
    p0 = np.exp(-((x1 - 0.2) ** 2 + (x2 - 0.6) ** 2) / (2 * 0.1**2)) + 0.05
    p0 /= p0.sum()
    E = PorousMedium(grid, 2)
    a = df.flow(E, p0, 0.002, dt=2e-4)
    b = df.flow(E, p0, 0.002, dt=2e-4, newton=FlowNewton(multigrid=False))
    fine = df.flow(E, p0, 0.002, dt=5e-5)
    assert a.converged and b.converged
    assert l1(a.p, b.p) < 0.1 * l1(a.p, fine.p)
    assert a.cg_iterations.sum() < b.cg_iterations.sum()
    assert abs(a.p.sum() - 1) < 1e-13


def test_flow_newton_multigrid_must_be_a_bool():
    from densflow.flows.step import FlowNewton

    with pytest.raises(ValueError, match="multigrid"):
        FlowNewton(multigrid=1)
