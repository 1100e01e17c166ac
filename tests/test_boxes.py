"""No-flux (Neumann) boxes: operators against dense matrices built here, the DCT solves
against dense pseudo-inverses, every metric's direction against a dense reference,
Hessian products against finite differences, closed forms of flows with reflecting
walls, the paper's experiments on the box, case files and run files."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import densflow as df
from densflow.app.case import Case, Panel
from densflow.app.cli import main
from densflow.core.box import (BoxWeightedLaplacianSolver, apply_box_laplacian_pinv,
                               box_laplacian_symbol, laplacian_box, weighted_laplacian_box)
from densflow.core.box_wavelets import default_level, extend, fold, reflected_basis
from densflow.energies import KL, Dirichlet, HMinus1
from densflow.io.recorder import read_run_file
from densflow.metrics import Combined, Safeguard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dense import difference_matrices, projected_direction, wavelet_matrix  # noqa: E402

SIZES = [(1, 12), (2, 6)]


# -- dense references -----------------------------------------------------------------
def box_line(n):
    """(n-1) x n: (D p)_e = n (p_{e+1} - p_e) on the interior edges of a line."""
    D = np.zeros((n - 1, n))
    for e in range(n - 1):
        D[e, e], D[e, e + 1] = -n, n
    return D


def box_differences(n, dim):
    """Dense D_d of the box and the index of each edge's left cell (flattened)."""
    D = box_line(n)
    if dim == 1:
        return [(D, np.arange(n - 1))]
    eye = np.eye(n)
    cells = np.arange(n * n).reshape(n, n)
    return [(np.kron(D, eye), cells[:-1, :].ravel()), (np.kron(eye, D), cells[:, :-1].ravel())]


def dense_A(n, dim):
    return sum(D.T @ D for D, _ in box_differences(n, dim))


def dense_L(mu, n, dim):
    m = mu.ravel()
    return sum(D.T @ np.diag(m[left]) @ D for D, left in box_differences(n, dim))


def box(n, dim):
    return df.Grid(n, dim, boundary="neumann")


def paper_mu(grid):
    if grid.dim == 1:
        return grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    return grid.gibbs(lambda x1, x2: np.sin(4 * np.pi * x1) * np.sin(4 * np.pi * x2))


def rough_density(grid, seed=0):
    p = 1 + 0.5 * np.random.default_rng(seed).random(grid.shape)
    return p / p.sum()


# -- the grid -------------------------------------------------------------------------
def test_box_grid_is_cell_centred_and_periodic_grids_are_unchanged():
    g = box(4, 1)
    assert np.array_equal(g.coordinates(), [0.125, 0.375, 0.625, 0.875])
    x1, x2 = box(4, 2).coordinates()
    assert np.array_equal(x1[:, 0], [0.125, 0.375, 0.625, 0.875]) and np.array_equal(x2[0], x1[:, 0])
    assert np.array_equal(df.Grid(4).coordinates(), [0, 0.25, 0.5, 0.75])
    assert repr(df.Grid(4)) == "Grid(n=4, dim=1)" and df.Grid(4).boundary == "periodic"
    assert repr(g) == "Grid(n=4, dim=1, boundary='neumann')"
    assert g != df.Grid(4) and g == box(4, 1) and hash(g) == hash(box(4, 1))
    for bad in ("dirichlet", "Neumann", None, 1):
        with pytest.raises(ValueError, match="boundary must be one of 'periodic', 'neumann'"):
            df.Grid(8, 1, boundary=bad)


# -- operators against dense matrices -------------------------------------------------
@pytest.mark.parametrize("dim,n", SIZES)
def test_box_operators_match_dense_matrices(dim, n):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n,) * dim)
    mu = rough_density(box(n, dim))
    assert np.allclose(laplacian_box(x, n).ravel(), dense_A(n, dim) @ x.ravel(), rtol=1e-13, atol=1e-10)
    L = dense_L(mu, n, dim)
    assert np.allclose(weighted_laplacian_box(x, mu, n).ravel(), L @ x.ravel(), rtol=1e-13, atol=1e-12)
    # no flux through the walls: both annihilate constants and conserve the sum
    assert np.allclose(L @ np.ones(n**dim), 0, atol=1e-12) and abs((L @ x.ravel()).sum()) < 1e-10
    # the DCT-II diagonalises A with the eigenvalues sum_d (2n sin(pi k_d / 2n))^2
    assert np.allclose(np.sort(box_laplacian_symbol(n, dim).ravel()),
                       np.linalg.eigvalsh(dense_A(n, dim)), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("dim,n", SIZES)
def test_box_solves_match_dense_pseudo_inverses(dim, n):
    grid = box(n, dim)
    r = np.random.default_rng(2).standard_normal(grid.shape)
    Apinv = np.linalg.pinv(dense_A(n, dim))
    got = apply_box_laplacian_pinv(r, symbol=box_laplacian_symbol(n, dim))
    assert np.allclose(got.ravel(), Apinv @ r.ravel(), rtol=1e-11, atol=1e-14)
    mu = rough_density(grid, seed=3)
    Lpinv = np.linalg.pinv(dense_L(mu, n, dim))
    solver = BoxWeightedLaplacianSolver(mu, n)
    want = Lpinv @ r.ravel()
    assert np.allclose(solver.solve(r).ravel(), want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


def test_box_cg_at_a_larger_size_reaches_its_tolerance():
    grid = box(48, 2)
    mu = paper_mu(grid)
    r = np.random.default_rng(4).standard_normal(grid.shape)
    x = BoxWeightedLaplacianSolver(mu, grid.n, rtol=1e-12).solve(r)
    res = weighted_laplacian_box(x, mu, grid.n) - (r - r.mean())
    assert np.linalg.norm(res) <= 1.01e-12 * np.linalg.norm(r - r.mean()) and abs(x.mean()) < 1e-15


# -- energies -------------------------------------------------------------------------
@pytest.mark.parametrize("dim,n", SIZES)
def test_box_energies_values_gradients_and_hessian_products(dim, n):
    grid = box(n, dim)
    mu, p = rough_density(grid, 5), rough_density(grid, 6)
    r = (p - mu).ravel()
    E1, E2, E3 = HMinus1(grid, mu), KL(grid, mu), Dirichlet(grid, mu)
    assert np.isclose(E1.value(p), 0.5 * r @ np.linalg.pinv(dense_L(mu, n, dim)) @ r, rtol=1e-10)
    assert np.isclose(E3.value(p), 0.5 * r @ dense_A(n, dim) @ r, rtol=1e-12)
    E = HMinus1(grid, mu) + 1e-3 * KL(grid, mu) + 1e-4 * Dirichlet(grid, mu)
    v = np.random.default_rng(7).standard_normal(grid.shape) * p
    h = 1e-6
    fd = (E.value(p + h * v, check=False) - E.value(p - h * v, check=False)) / (2 * h)
    assert np.isclose(fd, np.sum(E.gradient(p) * v), rtol=1e-6)
    hv = (E.gradient(p + h * v, check=False) - E.gradient(p - h * v, check=False)) / (2 * h)
    assert np.allclose(E.hessian_product(p, v), hv, rtol=1e-5, atol=1e-6 * np.abs(hv).max())


# -- metrics against dense references -------------------------------------------------
def dense_box_combined(p, n, dim, weights, wavelet, level):
    """E^T W diag(lambda(E p)) W^T E: the reflected basis (2n points per axis, the box's
    spacing 1/n), lambda from the even extension of p, folded back."""
    a1, a2, a3 = weights
    m = 2 * n
    W = wavelet_matrix(m, dim, wavelet, level)
    Ds = [D / 2 for D in difference_matrices(m, dim)]  # spacing 1/n, not 1/2n
    reflect = np.zeros((m, n))
    for i in range(m):
        reflect[i, i if i < n else m - 1 - i] = 1.0
    R = reflect if dim == 1 else np.kron(reflect, reflect)
    P = R @ p.ravel()
    DW2 = [(D @ W) ** 2 for D in Ds]
    h1, h2, h3 = sum(DW2).T @ P, (W**2).T @ P, sum(d.sum(axis=0) for d in DW2)
    with np.errstate(divide="ignore"):
        den = a3 * h3 + (np.where(h1 > 0, a1 / np.where(h1 > 0, h1, 1), np.inf) if a1 else 0) \
            + (a2 / h2 if a2 else 0)
    lam = np.where(np.isfinite(den) & (den > 0), 1 / den, 0.0)
    E = R / np.sqrt(2**dim)
    return E.T @ W @ np.diag(lam) @ W.T @ E


WEIGHTS = [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)]


@pytest.mark.parametrize("dim,n", [(1, 16), (2, 8)])
@pytest.mark.parametrize("weights", WEIGHTS)
def test_box_directions_match_dense_references(dim, n, weights):
    grid = box(n, dim)
    mu, p = paper_mu(grid), rough_density(grid, 8)
    a1, a2, a3 = weights
    E = a1 * HMinus1(grid, mu) + a2 * KL(grid, mu) + a3 * Dirichlet(grid, mu)
    g = E.gradient(p)
    level = 2
    dense = {
        "wasserstein": dense_L(p, n, dim),
        "fisher_rao": np.diag(p.ravel()),
        "mahalanobis": np.linalg.pinv(dense_A(n, dim)),
        "combined": dense_box_combined(p, n, dim, weights, "db2", level),
    }
    metrics = {"wasserstein": "wasserstein", "fisher_rao": "fisher_rao",
               "mahalanobis": "mahalanobis", "combined": Combined("db2", level)}
    for name, M in dense.items():
        s = df.metrics.get(metrics[name]).bind(E).direction(p, g)
        want = projected_direction(M, g)
        assert np.allclose(s, want, rtol=1e-9, atol=1e-9 * np.abs(want).max()), name
        assert abs(s.sum()) < 1e-15 * np.abs(s).sum() + 1e-300 and np.sum(s * g) >= 0


@pytest.mark.parametrize("dim,n", [(1, 16), (2, 8)])
@pytest.mark.parametrize("weights", WEIGHTS)
def test_box_newton_direction_matches_a_dense_solve(dim, n, weights):
    # the default method on the box is Newton in the density preconditioned by the metric
    from densflow.newton import Newton, NewtonStep

    grid = box(n, dim)
    mu, p = paper_mu(grid), rough_density(grid, 9)
    a1, a2, a3 = weights
    E = a1 * HMinus1(grid, mu) + a2 * KL(grid, mu) + a3 * Dirichlet(grid, mu)
    g = E.gradient(p)
    N = grid.size
    H = (a1 * np.linalg.pinv(dense_L(mu, n, dim)) + a2 * np.diag(1 / p.ravel())
         + a3 * dense_A(n, dim))
    K = np.zeros((N + 1, N + 1))
    K[:N, :N], K[:N, N], K[N, :N] = H, 1.0, 1.0
    want = np.linalg.solve(K, np.concatenate([g.ravel(), [0.0]]))[:N]
    tight = Newton(forcing_max=1e-10, cg_max_iter=10 * N, damping_tries=0)
    step = NewtonStep(E, Combined("db2", 2).bind(E), tight)
    assert step.kind == "metric"  # (the compact solve is periodic only)
    s = step.direction(p, g)
    assert np.allclose(s.ravel(), want, rtol=0, atol=1e-8 * np.abs(want).max())
    assert abs(s.sum()) <= 1e-15 and step.stats["cg_iterations"] >= 1
    assert df.solve(E, p, tol=1e-12).info["method"] == "newton"


def test_box_combined_operator_is_symmetric_psd_and_reflection_helpers_are_adjoint():
    grid = box(8, 2)
    rng = np.random.default_rng(9)
    u, v = rng.standard_normal((16, 16)), rng.standard_normal((8, 8))
    assert np.isclose(np.sum(extend(v) * u), np.sum(v * fold(u)), rtol=1e-13)
    mu = paper_mu(grid)
    E = HMinus1(grid, mu) + 1e-3 * KL(grid, mu) + 1e-4 * Dirichlet(grid, mu)
    op = Combined().bind(E).operator(rough_density(grid))
    M = np.array([op(e.reshape(8, 8)).ravel() for e in np.eye(64)])
    assert np.allclose(M, M.T, atol=1e-12 * np.abs(M).max())
    assert np.linalg.eigvalsh(M).min() > -1e-12 * np.abs(M).max()


def test_box_levels_and_bad_levels():
    assert default_level(512) == 9 and default_level(64) == 6 and default_level(48) == 5
    assert default_level(3) == 1 and reflected_basis(box(3, 1)).level == 1  # odd n works
    grid = box(24, 1)
    E = 1.0 * KL(grid, grid.uniform())
    with pytest.raises(ValueError, match=r"level=5 is more than the no-flux box with n=24 can "
                                         r"take.*2n=48.*levels that work for n=24: 1..4"):
        Combined(level=5).bind(E)
    assert Combined(level=4).bind(E).basis.level == 4


def test_safeguard_and_newton_on_the_box():
    grid = box(32, 1)
    mu = paper_mu(grid)
    E = HMinus1(grid, mu) + 1e-3 * KL(grid, mu) + 1e-4 * Dirichlet(grid, mu)
    x = grid.coordinates()
    p0 = np.exp(-((x - 0.1) / 0.05) ** 2) + 1e-12  # a bump near a wall, nearly empty elsewhere
    p0 /= p0.sum()
    for metric in ("combined", "wasserstein", "fisher_rao", "mahalanobis"):
        bound = Safeguard(df.metrics.get(metric).bind(E), E)
        g = E.gradient(p0)
        s = bound.direction(p0, g)
        assert abs(s.sum()) < 1e-14 and np.sum(s * g) > 0, metric
        res = df.solve(E, p0, metric=metric, tol=1e-12, max_iter=100)
        assert res.converged and res.energies[-1] <= 1e-12, (metric, res.message)
        assert np.isclose(res.p.sum(), 1, rtol=0, atol=1e-14)


# -- closed forms with reflecting walls ------------------------------------------------
def heat_flow_error(n, t_end=0.05, a=0.3):
    """The Wasserstein flow of the entropy on the box against the heat equation with
    reflecting walls: rho = 1 + a e^{-pi^2 t} cos(pi x)."""
    grid = box(n, 1)
    x = grid.coordinates()
    entropy = KL(grid, grid.uniform())
    bound = df.metrics.get("wasserstein").bind(1.0 * entropy)

    def rhs(_, p):
        return -bound.apply(p, entropy.gradient(p, check=False))

    p0 = (1 + a * np.cos(np.pi * x)) / n
    sol = solve_ivp(rhs, (0, t_end), p0, method="BDF", rtol=1e-10, atol=1e-14)
    rho = n * sol.y[:, -1]
    assert abs(sol.y[:, -1].sum() - 1) < 1e-12  # no mass crosses the walls
    return np.abs(rho - (1 + a * np.exp(-np.pi**2 * t_end) * np.cos(np.pi * x))).max()


def test_heat_flow_with_reflecting_walls_decays_like_cos_modes():
    errors = [heat_flow_error(n) for n in (16, 32, 64)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    # the node mobility of the optimisation metric is first order in space
    assert errors[-1] < 5e-3 and np.all(orders > 0.8), (errors, orders)


def test_fokker_planck_on_the_box_relaxes_to_the_gibbs_density():
    grid = box(32, 1)
    mu = grid.gibbs(lambda x: 3 * (x - 0.2) ** 2)  # its minimum near a wall
    term = KL(grid, mu)  # entropy + potential, up to a constant
    bound = df.metrics.get("wasserstein").bind(1.0 * term)
    sol = solve_ivp(lambda _, p: -bound.apply(p, term.gradient(p, check=False)), (0, 3),
                    grid.uniform(), method="BDF", rtol=1e-10, atol=1e-14)
    p = sol.y[:, -1]
    assert abs(p.sum() - 1) < 1e-12 and np.abs(p - mu).max() < 1e-6 * mu.max()


# -- the paper's experiments on the box ------------------------------------------------
PAPER = {1: (512, [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)]),
         2: (64, [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)])}


@pytest.mark.parametrize("dim", [1, 2])
def test_paper_experiments_on_the_box(dim):
    n, panels = PAPER[dim]
    counts = {}
    for boundary in ("periodic", "neumann"):
        grid = df.Grid(n, dim, boundary=boundary)
        mu = paper_mu(grid)
        for w in panels:
            E = w[0] * HMinus1(grid, mu) + w[1] * KL(grid, mu) + w[2] * Dirichlet(grid, mu)
            first = df.solve(E, grid.uniform(), metric="combined", method="gradient",
                             safeguard=None, tol=1e-12, max_iter=1000)
            assert first.converged and first.energies[-1] <= 1e-12
            counts[boundary, w] = first.n_iter
            if boundary == "neumann":
                newton = df.solve(E, grid.uniform(), metric="combined", tol=1e-12)
                assert newton.converged and newton.n_iter <= 15, (w, newton.n_iter)
    for w in panels:
        assert counts["neumann", w] <= 1.5 * counts["periodic", w], (w, counts)


# -- case files and run files ----------------------------------------------------------
CASE = '''import densflow as df
from densflow.app.case import Case, Panel

case = Case(title="box", grid=df.Grid(32, dim=1), potential="sin(4*pi*x)", boundary={b!r},
            panels=[Panel((1, 1e-3, 0), ["wasserstein", "combined"])], tol=1e-12,
            max_iter=100, method="gradient")
'''


def test_case_boundary_run_file_inspect_plot_and_resume(tmp_path, capsys):
    path = tmp_path / "boxcase.py"
    path.write_text(CASE.format(b="neumann"))
    h5 = tmp_path / "box.h5"
    assert main(["run", str(path), "-o", str(h5), "-q"]) == 0
    runs = read_run_file(str(h5)).runs
    assert [r.attrs["grid_boundary"] for r in runs] == ["neumann", "neumann"]
    assert all(r.converged for r in runs)
    x = (np.arange(32) + 0.5) / 32
    mu = np.exp(-np.sin(4 * np.pi * x))
    assert np.allclose(runs[1].p_final, mu / mu.sum(), rtol=1e-4, atol=0)  # cell centres
    capsys.readouterr()
    assert main(["inspect", str(h5)]) == 0
    assert "boundary: neumann (no-flux box)" in capsys.readouterr().out
    assert main(["plot", str(h5), "-o", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").stat().st_size > 0
    # the same case on the torus may not resume the box's runs
    path.write_text(CASE.format(b="periodic"))
    capsys.readouterr()
    assert main(["run", str(path), "-o", str(h5), "--resume", "-q"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume run 'panel1/wasserstein'" in err and "recorded grid_boundary = 'neumann'" in err


def test_case_boundary_errors():
    panels = [Panel((1, 0, 0), ["combined"])]
    with pytest.raises(ValueError, match="Case boundary must be one of"):
        Case(grid=df.Grid(8), potential="x", panels=panels, boundary="walls")
    with pytest.raises(ValueError, match="contradicts its grid's boundary 'neumann'"):
        Case(grid=box(8, 1), potential="x", panels=panels, boundary="periodic")
    case = Case(grid=df.Grid(8), potential="x", panels=panels, boundary="neumann")
    assert case.grid == box(8, 1) and np.isclose(case.mu[0] / case.mu[-1], np.exp(7 / 8))
