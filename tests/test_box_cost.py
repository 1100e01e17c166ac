"""The no-flux box's cheaper paths (issue 26, per-iteration cost): the reflected basis's
diagonals computed from the box's own cells, and the low-mode correction of the 2D
L_mu^+ preconditioner — against dense references written here."""

import numpy as np
import pytest
import scipy.fft as sfft

import densflow as df
from densflow.core.box import BoxWeightedLaplacianSolver, box_laplacian_symbol, weighted_laplacian_box
from densflow.core.box_lowmodes import MIN_N, low_mode_correction
from densflow.core.box_wavelets import extend, reflected_basis
from densflow.energies import KL, Dirichlet, HMinus1
from densflow.metrics.natural import _BoundCombined

from dense import difference_matrices, wavelet_matrix


def box(n, dim=2):
    return df.Grid(n, dim, boundary="neumann")


def paper_mu(grid, amplitude=1.0):
    if grid.dim == 1:
        return grid.gibbs(lambda x: amplitude * np.sin(4 * np.pi * x))
    return grid.gibbs(lambda a, b: amplitude * np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))


def rough(shape, seed):
    p = 1 + 0.5 * np.random.default_rng(seed).random(shape)
    return p / p.sum()


def reflection_matrix(n, dim):
    m = 2 * n
    reflect = np.zeros((m, n))
    for i in range(m):
        reflect[i, i if i < n else m - 1 - i] = 1.0
    return reflect if dim == 1 else np.kron(reflect, reflect)


# -- the reflected basis's diagonals from the box's cells ---------------------------
@pytest.mark.parametrize("n,wavelet,level", [(6, "db2", 1), (8, "db2", 3), (8, "db4", 2),
                                             (12, "db2", 2), (16, "haar", 5)])
def test_box_diagonals_match_the_dense_reflected_basis(n, wavelet, level):
    grid = box(n)
    basis = reflected_basis(grid, wavelet, level)
    p = rough(grid.shape, n)
    h1, h2 = basis.box_diagonals(p)
    W = wavelet_matrix(2 * n, 2, wavelet, level)
    Ds = [D / 2 for D in difference_matrices(2 * n, 2)]  # the box's spacing 1/n
    P = reflection_matrix(n, 2) @ p.ravel()
    want1 = sum(((D @ W) ** 2).T @ P for D in Ds)
    want2 = (W**2).T @ P
    assert np.allclose(h1.ravel(), want1, rtol=1e-12, atol=1e-14 * np.abs(want1).max())
    assert np.allclose(h2.ravel(), want2, rtol=1e-12, atol=1e-14 * np.abs(want2).max())
    only1, none2 = basis.box_diagonals(p, need_h2=False)
    assert none2 is None and np.array_equal(only1, h1)
    # 1D: from the box's cells (the reflection built inside the kernel), against the
    # generic kernel on the formed reflection (checked densely in test_box_direction_1d)
    line = box(n, 1)
    b1 = reflected_basis(line, wavelet, min(level, 2))
    q = rough(line.shape, n + 1)
    for got, want in zip(b1.box_diagonals(q), b1.diagonals(extend(q))):
        assert np.allclose(got, want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("n,level", [(80, None), (72, 2), (136, 3)])
def test_box_diagonals_in_several_chunks_match_the_reflection(n, level):
    # more axis-1 outputs than one chunk (COLUMN_CHUNK) at the fine levels: against the
    # generic periodic kernel on the formed reflection (itself checked densely)
    from densflow.kernels.box_diagonals import COLUMN_CHUNK
    assert n > COLUMN_CHUNK
    basis = reflected_basis(box(n), "db4", level)
    p = rough((n, n), n)
    for got, want in zip(basis.box_diagonals(p), basis.diagonals(extend(p))):
        assert np.allclose(got, want, rtol=1e-12, atol=1e-15 * np.abs(want).max())


def test_reflected_eigenvalues_from_the_box_density_equal_those_of_the_reflection():
    # the reflected basis takes the box density (2D: diagonals from the box's cells) or
    # its formed reflection (the generic periodic kernel); a Fisher-Rao-like term with a
    # mobility other than p (porous medium) takes the second branch of the eigenvalues
    grid = box(16)
    mu = paper_mu(grid)
    basis = reflected_basis(grid, "db4", None)
    p = rough(grid.shape, 3)
    for E in (HMinus1(grid, mu) + 1e-3 * KL(grid, mu) + 1e-4 * Dirichlet(grid, mu),
              HMinus1(grid, mu) + 1e-2 * df.energies.PorousMedium(grid, m=2)):
        bound = _BoundCombined(basis, E)
        fast, generic = bound.eigenvalues(p), bound.eigenvalues(extend(p))
        assert fast.shape == generic.shape == (32, 32)
        assert np.allclose(fast, generic, rtol=1e-12, atol=0)


# -- the low-mode correction of the L_mu^+ preconditioner --------------------------
def dense_operator(f, n):
    cols = []
    for k in range(n * n):
        e = np.zeros(n * n)
        e[k] = 1.0
        cols.append(f(e.reshape(n, n)).ravel())
    return np.array(cols).T


def corrected_preconditioner(solver):
    """v -> P B_Z P v (P removes the mean), the preconditioner of the solver's CG
    (float64 transforms) as the CG applies it to its mean-zero residuals."""
    corr, s = solver.correction, solver._inv_sqrt_mu

    def apply(v):
        z = s * solver._precondition(s * (v - v.mean()), solver._inv_symbol, corr)
        return z - z.mean()
    return apply


def test_low_mode_correction_is_symmetric_positive_and_low_rank():
    n = MIN_N
    grid = box(n)
    mu = paper_mu(grid)
    solver = BoxWeightedLaplacianSolver(mu, n)
    assert solver.correction is not None
    BZ = dense_operator(corrected_preconditioner(solver), n)
    s = 1 / np.sqrt(mu)
    plain = dense_operator(lambda v: s * sfft.idctn(sfft.dctn(s * v, norm="ortho")
                                                    * solver._inv_symbol, norm="ortho"), n)
    Pm = np.eye(n * n) - 1.0 / (n * n)
    plain = Pm @ plain @ Pm
    assert np.allclose(BZ, BZ.T, atol=1e-12 * np.abs(BZ).max())
    Q = np.linalg.qr(Pm)[0][:, : n * n - 1]  # the mass-zero subspace
    assert np.linalg.eigvalsh(Q.T @ BZ @ Q).min() > 0
    # B_Z - B = F Z (G^-1 - I) Z^T F^T: rank at most the number of modes
    sv = np.linalg.svd(BZ - plain, compute_uv=False)
    assert np.sum(sv > 1e-10 * sv[0]) <= solver.correction.middle.shape[0]
    # G = Z^T C Z is the Galerkin matrix of C = F^T L F on the DCT block
    corr, b = solver.correction, solver.correction.block
    half = np.sqrt(solver._inv_symbol)
    Z = corr.basis / np.where(half[:b, :b] > 0, half[:b, :b], 1).reshape(-1, 1)
    C = np.empty((Z.shape[1],) * 2)
    for j in range(Z.shape[1]):
        h = np.zeros((n, n))
        h[:b, :b] = Z[:, j].reshape(b, b)
        v = sfft.idctn(h * half, norm="ortho") / np.sqrt(mu)
        Cz = sfft.dctn(weighted_laplacian_box(v, mu, n) / np.sqrt(mu), norm="ortho") * half
        C[:, j] = Z.T @ Cz[:b, :b].ravel()
    assert np.allclose(np.linalg.inv(corr.middle + np.eye(C.shape[0])), C, rtol=1e-8,
                       atol=1e-10 * np.abs(C).max())


def test_corrected_solve_matches_the_dense_pseudo_inverse_on_a_rough_weight():
    n = 24
    grid = box(n)
    mu = grid.gibbs(lambda a, b: 3 * np.sin(6 * np.pi * a + 1) * np.cos(10 * np.pi * b))
    line = np.diff(np.eye(n), axis=0) * n  # (n - 1) x n: n (x_{i+1} - x_i)
    cells = np.arange(n * n).reshape(n, n)
    D = [np.kron(line, np.eye(n)), np.kron(np.eye(n), line)]
    left = [cells[:-1, :].ravel(), cells[:, :-1].ravel()]  # each edge's left cell
    L = sum(Dd.T @ np.diag(mu.ravel()[ld]) @ Dd for Dd, ld in zip(D, left))
    r = rough(grid.shape, 5) - 1.0 / n**2
    solver = BoxWeightedLaplacianSolver(mu, n, rtol=1e-12)
    assert solver.correction is not None
    got = solver.solve(r)
    want = np.linalg.pinv(L) @ (r - r.mean()).ravel()
    assert np.allclose(got.ravel(), want, rtol=1e-8, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("n", [32, 64, 128])
def test_corrected_cg_needs_about_the_torus_iterations(n):
    # without the correction 32-34 iterations to 1e-13 on the paper's mu at every size
    # (the torus: 12-14); with it 15-17 (measured); the count must not grow with n
    grid = box(n)
    mu = paper_mu(grid)
    r = 1.0 / grid.size - mu
    solver = BoxWeightedLaplacianSolver(mu, n)
    x = solver.solve(r)
    assert solver.last_iterations <= 20
    res = weighted_laplacian_box(x, mu, n) - (r - r.mean())
    assert np.linalg.norm(res) <= 1e-12 * np.linalg.norm(r - r.mean())
    again = BoxWeightedLaplacianSolver(mu, n).solve(r)
    assert np.array_equal(x, again)  # the same subspace every time: resumes stay bit-identical


def test_small_boxes_are_not_corrected():
    grid = box(MIN_N - 1)
    assert low_mode_correction(paper_mu(grid), lambda x, m: weighted_laplacian_box(x, m, m.shape[0]),
                               lambda m: box_laplacian_symbol(m, 2)) is None
    solver = BoxWeightedLaplacianSolver(paper_mu(grid), grid.n)
    assert solver.correction is None
