"""The vectorised kernels against independent computations: PyWavelets' own transforms
and the dense diagonals ``sum_d (D_d W)^2.T p`` and ``(W^2).T p``."""

import numpy as np
import pytest
import pywt

import densflow as df
import densflow.core.operators
from densflow.core.wavelets import WaveletBasis
from dense import difference_matrices, wavelet_matrix


def _pyramid(x, wavelet, level):
    if x.ndim == 1:
        coeffs = pywt.wavedec(x, wavelet, mode="periodization", level=level)
    else:
        coeffs = pywt.wavedec2(x, wavelet, mode="periodization", level=level)
    return pywt.coeffs_to_array(coeffs)


# sizes and levels where the filter is longer than the coarsest signal, where the
# polyphase chunks (512 outputs) split, and non-power-of-two n
@pytest.mark.parametrize("dim,n,wavelet,level", [
    (1, 8, "db4", 3), (1, 48, "db3", 4), (1, 2048, "db4", None), (1, 4096, "sym5", 9),
    (1, 1024, "haar", 10), (1, 1536, "coif2", 5),
    (2, 16, "db4", 4), (2, 24, "db2", 3), (2, 128, "db4", None), (2, 64, "coif2", 6),
])
def test_transforms_match_pywavelets(dim, n, wavelet, level):
    grid = df.Grid(n, dim)
    basis = WaveletBasis(grid, wavelet, level)
    x = np.random.default_rng(n).standard_normal(grid.shape)
    ref, slices = _pyramid(x, wavelet, basis.level)
    c = basis.analysis(x)
    np.testing.assert_allclose(c, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    fmt = "wavedec" if dim == 1 else "wavedec2"
    coeffs = pywt.array_to_coeffs(ref, slices, output_format=fmt)
    back = (pywt.waverec(coeffs, wavelet, mode="periodization") if dim == 1
            else pywt.waverec2(coeffs, wavelet, mode="periodization"))
    np.testing.assert_allclose(basis.synthesis(ref), back, rtol=0, atol=1e-12 * np.abs(x).max())
    np.testing.assert_allclose(basis.synthesis(c), x, rtol=0, atol=1e-12 * np.abs(x).max())


# 1D n = 1024 with db4 at the deepest level has strides up to 128: the blocks with
# stride >= 64 take the tiled product, the finer ones the direct windows
@pytest.mark.parametrize("dim,n,wavelet,level", [
    (1, 1024, "db4", None), (1, 512, "db2", 9), (1, 96, "db3", 5),
    (2, 32, "db4", None), (2, 32, "db2", 5), (2, 24, "haar", 3),
])
def test_diagonals_match_dense_formula(dim, n, wavelet, level):
    grid = df.Grid(n, dim)
    basis = WaveletBasis(grid, wavelet, level)
    p = np.random.default_rng(3).random(grid.shape) + 0.1
    W = wavelet_matrix(n, dim, wavelet, basis.level)
    H1 = sum((D @ W) ** 2 for D in difference_matrices(n, dim)).T
    H2 = (W**2).T
    h1, h2 = basis.diagonals(p)
    ref1, ref2 = H1 @ p.ravel(), H2 @ p.ravel()
    np.testing.assert_allclose(h1.ravel(), ref1, rtol=1e-11, atol=1e-12 * ref1.max())
    np.testing.assert_allclose(h2.ravel(), ref2, rtol=1e-11, atol=1e-12 * ref2.max())
    only1, none2 = basis.diagonals(p, need_h2=False)
    assert none2 is None and np.array_equal(only1, h1)


@pytest.mark.parametrize("amplitude,mixed", [(1.0, True), (3.0, True), (6.0, False)])
def test_weighted_laplacian_solve_matches_dense_pinv(amplitude, mixed):
    # the 2D CG with its float32 preconditioner (contrast <= 1e4) or float64 one
    n = 32
    grid = df.Grid(n, 2)
    mu = grid.gibbs(lambda a, b: amplitude * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b))
    solver = densflow.core.operators.WeightedLaplacianSolver(mu, n)
    assert solver.mixed is mixed
    L = sum(D.T @ np.diag(mu.ravel()) @ D for D in difference_matrices(n, 2))
    r = np.random.default_rng(5).standard_normal(grid.shape)
    ref = (np.linalg.pinv(L) @ r.ravel()).reshape(grid.shape)
    for rtol, agree in ((1e-13, 1e-10), (1e-8, 1e-6)):
        x = solver.solve(r, rtol=rtol)
        assert abs(x.mean()) <= 1e-14 * np.abs(x).max()
        assert np.linalg.norm(x - ref) <= agree * np.linalg.norm(ref)
        residual = L @ x.ravel() - (r - r.mean()).ravel()
        assert np.linalg.norm(residual) <= 10 * rtol * np.linalg.norm(r - r.mean())


def test_vectorised_log_matches_numpy_to_an_ulp():
    from densflow.kernels.log import log_into

    rng = np.random.default_rng(11)
    specials = [1.0, 2.0, 0.5, np.sqrt(2), np.nextafter(np.sqrt(2), 0), np.nextafter(np.sqrt(2), 2),
                5e-324, 1e-310, 2.2250738585072014e-308, 1.7976931348623157e308, 0.0, -1.0,
                np.inf, np.nan]
    x = np.concatenate([rng.uniform(1e-3, 10, 5000), 10 ** rng.uniform(-300, 300, 5000),
                        rng.uniform(0.5, 2, 5000), specials])
    out = np.empty_like(x)
    log_into(x, out, np.empty(x.size, dtype=np.int64), np.empty(x.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.log(x)
    finite = np.isfinite(ref)
    ulps = np.abs(out[finite] - ref[finite]) / np.spacing(np.maximum(np.abs(ref[finite]), 1e-300))
    assert ulps.max() <= 1.0 and out[x == 1.0][0] == 0.0
    assert np.array_equal(out[~finite], ref[~finite], equal_nan=True)  # -inf, nan, inf


def test_float32_preconditioner_leaves_first_order_runs_unchanged(monkeypatch):
    # the line search's loose solves stay float64: a float32 one cost 38 instead of 27
    # steps here; the tight re-evaluations may use float32 (same steps, E to rounding)
    grid = df.Grid(64, 2)
    mu = grid.gibbs(lambda a, b: np.sin(4 * np.pi * a) * np.sin(4 * np.pi * b))
    x = grid.coordinates()
    p0 = 1 + 0.5 * np.cos(2 * np.pi * x[0]) * np.cos(2 * np.pi * x[1])
    p0 /= p0.sum()
    runs = []
    for contrast in (1e4, 0.0):
        monkeypatch.setattr(densflow.core.operators, "MIXED_PRECISION_CONTRAST", contrast)
        E = 1.0 * df.energies.HMinus1(grid, mu) + 3e-4 * df.energies.KL(grid, mu)
        assert E.terms[0][1].solver.mixed is (contrast > 0)
        runs.append(df.solve(E, p0, method="gradient", max_iter=100))
    assert runs[0].converged and runs[0].n_iter == runs[1].n_iter
    np.testing.assert_allclose(runs[0].energies, runs[1].energies, rtol=1e-6,
                               atol=1e-9 * runs[1].energies[0])  # the 1e-13 solves differ
