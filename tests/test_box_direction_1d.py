"""The no-flux box's 1D combined metric in one compiled call
(:func:`densflow.kernels.box.reflected_direction_1d`) and the reflected basis's 1D
diagonals from the box's cells (:func:`densflow.kernels.box_diagonals.reflected_diagonals_1d`:
phases built per chunk of outputs, two-row dots for the coarsest blocks) — against dense
references written here and against the path through the formed reflection."""

import numpy as np
import pytest

import densflow as df
from densflow.core.box_wavelets import extend, fold, reflected_basis
from densflow.energies import KL, Dirichlet, HMinus1
from densflow.metrics import Combined
from densflow.metrics.massfix import mass_fix

from dense import difference_matrices, projected_direction, wavelet_matrix


def reflection(n):
    R = np.zeros((2 * n, n))
    for i in range(2 * n):
        R[i, i if i < n else 2 * n - 1 - i] = 1.0
    return R


def dense_diagonals(p, n, wavelet, level):
    """(H1 P, H2 P) of the reflected basis at P = reflection of p, densely (the box's
    spacing 1/n on the 2n reflected points)."""
    W = wavelet_matrix(2 * n, 1, wavelet, level)
    D = difference_matrices(2 * n, 1)[0] / 2
    P = reflection(n) @ p
    return ((D @ W) ** 2).T @ P, (W**2).T @ P


def rough(n, seed):
    p = 1 + 0.5 * np.random.default_rng(seed).random(n)
    return p / p.sum()


# n = 600: stride-2 and stride-4 blocks of 600 and 300 outputs (more than one chunk of
# kernels.diagonals.CHUNK = 512 at stride 2); n = 96 = 3 * 2^5: few levels; full depth (level None on a
# power of two): the coarsest blocks have two outputs (the two-row dot)
@pytest.mark.parametrize("n,wavelet,level", [(600, "db4", 3), (600, "db2", None), (96, "db4", None),
                                             (256, "db4", None), (256, "db3", 4), (8, "haar", None),
                                             (5, "db2", 1)])
def test_reflected_diagonals_1d_match_dense(n, wavelet, level):
    basis = reflected_basis(df.Grid(n, 1, boundary="neumann"), wavelet, level)
    p = rough(n, n)
    h1, h2 = basis.diagonals(p)
    want1, want2 = dense_diagonals(p, n, wavelet, basis.level)
    assert np.allclose(h1, want1, rtol=1e-12, atol=1e-14 * np.abs(want1).max())
    assert np.allclose(h2, want2, rtol=1e-12, atol=1e-14 * np.abs(want2).max())
    # the generic periodic kernel on the formed reflection: the same sums, reordered
    r1, r2 = df.core.wavelets.WaveletBasis.diagonals(basis, extend(p))
    assert np.allclose(h1, r1, rtol=1e-13, atol=0) and np.allclose(h2, r2, rtol=1e-13, atol=0)
    only2 = basis.diagonals(p, need_h1=False)
    assert only2[0] is None and np.array_equal(only2[1], h2)


def energy(grid, weights):
    mu = grid.gibbs(lambda x: np.sin(4 * np.pi * x))
    a1, a2, a3 = weights
    return a1 * HMinus1(grid, mu) + a2 * KL(grid, mu) + a3 * Dirichlet(grid, mu)


@pytest.mark.parametrize("weights", [(1, 1e-3, 1e-4), (1, 0, 1e-4), (0, 1e-3, 0)])
@pytest.mark.parametrize("n,level", [(96, None), (600, 3)])
def test_box_direction_1d_matches_dense_and_the_reflection_path(weights, n, level):
    grid = df.Grid(n, 1, boundary="neumann")
    E = energy(grid, weights)
    p = rough(n, 3)
    g = E.gradient(p)
    M = Combined("db4", level).bind(E)
    s = M.direction(p, g)
    # dense: E^T W diag(lambda(E p)) W^T E with E = R / sqrt(2), projected
    b = M.basis
    W = wavelet_matrix(2 * n, 1, "db4", b.level)
    h1, h2 = dense_diagonals(p, n, "db4", b.level)
    a1, a2, a3 = weights
    D = difference_matrices(2 * n, 1)[0] / 2
    h3 = ((D @ W) ** 2).sum(axis=0)
    with np.errstate(divide="ignore"):
        den = a3 * h3 + (np.where(h1 > 0, a1 / np.where(h1 > 0, h1, 1), np.inf) if a1 else 0) \
            + (a2 / h2 if a2 else 0)
    lam = np.where(np.isfinite(den) & (den > 0), 1 / den, 0.0)
    Eiso = reflection(n) / np.sqrt(2)
    want = projected_direction(Eiso.T @ W @ np.diag(lam) @ W.T @ Eiso, g)
    assert np.allclose(s, want, rtol=1e-9, atol=1e-10 * np.abs(want).max())
    # the path through the formed reflection (inner metric's direction, folded)
    old = mass_fix(M.scale * fold(M.inner.direction(extend(p), extend(g))))
    assert np.allclose(s, old, rtol=0, atol=1e-13 * np.abs(old).max())
    assert abs(s.sum()) <= 1e-15 * np.abs(s).sum() and s @ g > 0
