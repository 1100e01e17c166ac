"""The compiled kernels of Newton in the potential and of the compact Newton against
plain numpy references written here (dense matrices, finite differences, formulas)."""

import numpy as np
import pytest

import densflow as df
from conftest import V2, make_energy, random_density
from dense import difference_matrices
from densflow.kernels import compact as CK
from densflow.kernels import potential as PK
from densflow.potential_newton import PotentialNewton, PotentialNewtonStep


def dense_l(w, n, dim):
    """L_w = sum_d D_d^T diag(w) D_d."""
    return sum(D.T @ np.diag(w.ravel()) @ D for D in difference_matrices(n, dim))


def dense_hessian(w, c, a1, a3, n, dim):
    """a1 L_w + L_w (diag(c) + a3 A) L_w."""
    L, A = dense_l(w, n, dim), dense_l(np.ones_like(w), n, dim)
    return a1 * L + L @ (np.diag(c.ravel()) + a3 * A) @ L


def phi_gradient(phi, w, mu, a1, a2, a3, n):
    """a1 L phi + L (a2 log(p/mu) + a3 A (p - mu)), p = w + L phi: the gradient in the
    potential of a1 H^-1 + a2 KL + a3 Dirichlet (densities up to their constants)."""
    L, A = dense_l(w, n, 2), dense_l(np.ones_like(w), n, 2)
    p = w.ravel() + L @ phi.ravel()
    return a1 * L @ phi.ravel() + L @ (a2 * np.log(p / mu.ravel()) + a3 * A @ (p - mu.ravel()))


def _args(n, seed):
    rng = np.random.default_rng(seed)
    w = 0.5 + rng.random((n, n))
    return rng, w, 1.0 + rng.random((n, n)), rng.standard_normal((n, n))


def _product(v, w, c, has_diag, a1, a3, n):
    u, m = np.full((PK.U_ROWS, n), np.nan), np.full((PK.M_ROWS, n), np.nan)
    out = np.full((n, n), np.nan)
    curvature = PK.hessian_rows_2d(v, w, c, has_diag, a1, a3, n, u, np.empty(n), m, out)
    return out, curvature


@pytest.mark.parametrize("n", [3, 4, 7, 12])
@pytest.mark.parametrize("a1,a3,has_diag", [(1.0, 1e-2, True), (1.0, 0.0, True),
                                            (0.0, 1e-2, True), (1.0, 1e-2, False),
                                            (1.0, 0.0, False)])
def test_hessian_rows_2d_is_the_dense_l_h_l(n, a1, a3, has_diag):
    _, w, c, v = _args(n, n)
    out, curvature = _product(v, w, c, has_diag, a1, a3, n)
    ref = dense_hessian(w, c if has_diag else np.zeros_like(c), a1, a3, n, 2) @ v.ravel()
    assert np.max(np.abs(out.ravel() - ref)) <= 1e-12 * np.max(np.abs(ref))
    assert curvature == pytest.approx(float(v.ravel() @ ref), rel=1e-12)


def test_hessian_rows_2d_matches_finite_differences_of_the_gradient():
    n, a1, a2, a3 = 6, 1.0, 3e-2, 1e-3
    rng, w, _, v = _args(n, 1)
    mu = 0.5 + rng.random((n, n))
    L = dense_l(w, n, 2)
    phi = rng.standard_normal((n, n))
    phi *= 0.3 * w.min() / np.abs(L @ phi.ravel()).max()
    p = w + (L @ phi.ravel()).reshape(n, n)
    h = 1e-6 * np.abs(phi).max() / np.abs(v).max()
    fd = (phi_gradient(phi + h * v, w, mu, a1, a2, a3, n)
          - phi_gradient(phi - h * v, w, mu, a1, a2, a3, n)) / (2 * h)
    out, _ = _product(v, w, a2 / p, True, a1, a3, n)
    assert np.max(np.abs(out.ravel() - fd)) <= 1e-6 * np.max(np.abs(fd))


@pytest.mark.parametrize("single", [False, True])
def test_hessian_cg_update_2d_is_the_product_and_the_cg_update(single):
    n, a1, a3, rz, inv_rho = 8, 1.0, 1e-2, 0.7, 0.25
    rng, w, c, d = _args(n, 2)
    x, r, scale = rng.standard_normal((n, n)), rng.standard_normal((n, n)), 1 / np.sqrt(w)
    t = np.empty((n, n), dtype=np.float32 if single else float)
    x1, r1 = x.copy(), r.copy()
    hd = np.empty((n, n))
    curvature, big = PK.hessian_cg_update_2d(d, w, c, True, a1, a3, n, np.empty((n, n)),
                                             np.empty(n), np.empty((n, n)), hd, x1, r1, rz,
                                             scale, t, inv_rho)
    ref = (dense_hessian(w, c, a1, a3, n, 2) @ d.ravel()).reshape(n, n)
    assert np.allclose(hd, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert curvature == pytest.approx(float(np.sum(d * ref)), rel=1e-12)
    alpha = rz / np.sum(d * ref)
    assert np.allclose(x1, x + alpha * d, rtol=1e-13, atol=1e-13)
    assert np.allclose(r1, r - alpha * ref, rtol=1e-12, atol=1e-12)
    want_t = scale * (r - alpha * ref) * inv_rho
    assert np.allclose(t, want_t, rtol=1e-6 if single else 1e-12, atol=0)
    assert big == np.max(np.abs(scale * r1))
    # a direction of no curvature (rounding only) leaves x and r alone
    x2, r2 = x.copy(), r.copy()
    zero = PK.hessian_cg_update_2d(np.zeros((n, n)), w, c, True, a1, a3, n,
                                   np.empty((n, n)), np.empty(n), np.empty((n, n)), hd, x2, r2,
                                   rz, scale, t, inv_rho)
    assert zero == (0.0, 1.0) and np.array_equal(x2, x) and np.array_equal(r2, r)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("first", [True, False])
def test_cg_direction_is_the_preconditioned_direction(dtype, first):
    rng = np.random.default_rng(3)
    m, rho, rz_old = 50, 3.0, 2.5
    zraw, scale = rng.standard_normal(m).astype(dtype), 0.5 + rng.random(m)
    r, d = rng.standard_normal(m), rng.standard_normal(m)
    d1 = d.copy()
    rz = PK.cg_direction(zraw, scale, r, d1, rz_old, first, rho)
    z = rho * scale * zraw.astype(float)
    assert rz == pytest.approx(float(r @ z), rel=1e-13)
    want = z if first else z + (r @ z / rz_old) * d
    assert np.allclose(d1, want, rtol=1e-13, atol=1e-13)


def test_fourier_multiplier_is_the_inverse_symbol():
    n, a1, c2, c3 = 16, 1.0, 0.3, 2e-4
    k = np.arange(n)
    full = 4.0 * n**2 * np.sin(np.pi * k / n) ** 2
    A = full[:, None] + full[None, : n // 2 + 1]
    s = A * (a1 + A * (c2 + c3 * A))
    want = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    for dtype in (np.float64, np.float32):
        out = np.empty(A.shape, dtype=dtype)
        PK.fourier_multiplier(A.reshape(-1), a1, c2, c3, out.reshape(-1))
        assert out[0, 0] == 0.0
        assert np.allclose(out, want.astype(dtype), rtol=1e-6 if dtype == np.float32 else 1e-15,
                           atol=0)


@pytest.mark.parametrize("weights", [(1, 3e-4, 1e-4), (1, 0, 1e-4), (1, 3e-4, 0)])
@pytest.mark.parametrize("mixed", [False, True])
def test_pcg_solves_the_dense_newton_system(weights, mixed, monkeypatch):
    import densflow.potential_newton as PN

    monkeypatch.setattr(PN, "MIXED", mixed)
    n = 8
    grid = df.Grid(n, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, weights)
    p = random_density(grid, 7)
    rng = np.random.default_rng(8)
    b = rng.standard_normal(grid.shape)
    b -= b.mean()
    op = PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                             PotentialNewton(preconditioner="fourier", forcing_max=1e-12,
                                             cg_max_iter=10 * grid.size))
    assert op.mixed == mixed
    op.stats = {"hessian_products": 0, "cg_iterations": 0, "inner_iterations": 0}
    x = op.solve(p, b)
    H = dense_hessian(mu, weights[1] / p, weights[0], weights[2], n, 2)
    ref = np.linalg.lstsq(H, b.ravel(), rcond=None)[0]
    ref -= ref.mean()
    assert np.max(np.abs(x.ravel() - x.mean() - ref)) <= 1e-8 * np.max(np.abs(ref))
    assert op.stats["hessian_products"] == op.stats["cg_iterations"] >= 2
    # the multiplier is kept for its (p, nu) and made anew for another
    m1 = op._multiplier(p, 0.0)
    assert op._multiplier(p, 0.0) is m1 and op._multiplier(p, 0.5) is not m1
    assert op._multiplier(p.copy(), 0.0) is not m1


@pytest.mark.parametrize("n,a3", [(3, 1e-2), (8, 1e-2), (16, 1e-3), (8, 0.0)])
def test_compact_jacobi_cg_2d_solves_the_mass_zero_system(n, a3):
    rng = np.random.default_rng(n)
    c = 1.0 + rng.random(n * n)
    g = rng.standard_normal(n * n)
    x = np.empty(n * n)
    its, _ = CK.jacobi_cg(g, c, a3, n, 1e-12, 0.0, 10 * n * n, x)
    # H x = g - kappa 1, sum x = 0, with H = diag(c) + a3 A
    H = np.diag(c) + a3 * dense_l(np.ones((n, n)), n, 2)
    m = n * n
    K = np.zeros((m + 1, m + 1))
    K[:m, :m], K[:m, m], K[m, :m] = H, 1.0, 1.0
    ref = np.linalg.solve(K, np.concatenate([g, [0.0]]))[:m]
    assert 1 <= its <= 10 * n * n
    assert abs(x.sum()) <= 1e-12 * np.abs(x).sum()
    assert np.max(np.abs(x - ref)) <= 1e-9 * np.max(np.abs(ref))
    # a loose forcing stops no later, after at least one iteration
    loose = np.empty(n * n)
    its_loose, _ = CK.jacobi_cg(g, c, a3, n, 0.5, 0.0, 10 * n * n, loose)
    assert 1 <= its_loose <= its


def test_compact_value_terms_are_made_once_per_energy():
    import densflow.newton_compact as NC

    grid = df.Grid(8, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, (0, 3e-4, 1e-4))
    terms = NC._value_terms(E)
    assert NC._value_terms(E) is terms
    other = make_energy(grid, mu, (0, 3e-4, 2e-4))
    assert NC._value_terms(other)[2] == pytest.approx(2e-4) and terms[2] == pytest.approx(1e-4)
    # the compact value is the energy up to its constant: differences agree
    p, q = random_density(grid, 1), random_density(grid, 2)
    step = df.newton.NewtonStep(E, df.metrics.get("combined").bind(E), df.newton.Newton())
    assert step._value(p) - step._value(q) == pytest.approx(E.value(p) - E.value(q),
                                                             rel=1e-9, abs=1e-15)


def test_kkt_residual_and_min_value_against_their_formulas():
    grid = df.Grid(8, 2)
    mu = grid.gibbs(V2)
    E = make_energy(grid, mu, (1, 3e-4, 1e-4))
    state = E.evaluate(random_density(grid, 4))
    g = state.gradient
    assert E.kkt_residual(state) == np.max(np.abs(g - g.mean()))
    assert E.min_value == 0.0 and E.min_value == 0.0  # the second from the kept result
    other = df.energies.KL(grid, mu) + df.energies.Dirichlet(grid, random_density(grid, 5))
    assert other.min_value is None and other.min_value is None


@pytest.mark.parametrize("dim,n", [(1, 9), (2, 3), (2, 7)])
def test_compact_relative_value_is_its_formula(dim, n):
    rng = np.random.default_rng(dim * n)
    q, m, b = 0.5 + rng.random(n**dim), rng.standard_normal(n**dim), rng.standard_normal(n**dim)
    a2, a3 = 0.3, 2e-2
    A = dense_l(np.ones((n,) * dim), n, dim)
    want = a2 * np.sum(q * (np.log(q) - m)) + 0.5 * a3 * q @ A @ q - q @ b
    got = CK.relative_value(q, np.log(q), a2, m, a3, b, n, dim)
    assert got == pytest.approx(want, rel=1e-12)


def test_kernel_inputs_are_read_only_views_that_leave_the_caller_writeable():
    from densflow.kernels.energy import _in

    a = np.random.default_rng(0).random((4, 5))
    v = _in(a)
    assert np.shares_memory(a, v) and v.shape == (20,)
    assert a.flags.writeable and not v.flags.writeable
    b = np.asfortranarray(a)  # not C-contiguous: a copy in C order
    assert np.array_equal(_in(b), a.ravel()) and b.flags.writeable
    c = np.arange(6)  # integers: converted
    assert _in(c).dtype == np.float64 and np.array_equal(_in(c), c)
    d = a[:, ::2]  # a strided view: copied, not viewed
    assert np.array_equal(_in(d), d.ravel()) and not np.shares_memory(_in(d), a)
