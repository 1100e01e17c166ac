"""Dense reference formulas (tests only): every operator as an explicit matrix."""

import numpy as np
import pywt


def difference_matrices(n, dim):
    """Dense D_d with (D p)_i = n (p_{i+e_d} - p_i) on the flattened (C-order) grid."""
    d1 = n * (np.roll(np.eye(n), 1, axis=1) - np.eye(n))
    if dim == 1:
        return [d1]
    eye = np.eye(n)
    return [np.kron(d1, eye), np.kron(eye, d1)]


def wavelet_matrix(n, dim, wavelet, level):
    """W with column i = pywt reconstruction of the i-th unit coefficient vector."""
    shape = (n,) * dim
    if dim == 1:
        coeffs = pywt.wavedec(np.zeros(shape), wavelet, mode="periodization", level=level)
    else:
        coeffs = pywt.wavedec2(np.zeros(shape), wavelet, mode="periodization", level=level)
    arr, slices = pywt.coeffs_to_array(coeffs)
    fmt = "wavedec" if dim == 1 else "wavedec2"
    cols = []
    for idx in np.ndindex(arr.shape):
        e = np.zeros_like(arr)
        e[idx] = 1.0
        c = pywt.array_to_coeffs(e, slices, output_format=fmt)
        rec = (pywt.waverec(c, wavelet, mode="periodization") if dim == 1
               else pywt.waverec2(c, wavelet, mode="periodization"))
        col = rec.ravel()
        if np.ptp(col) <= 1e-12 * np.abs(col).max():
            col = np.full_like(col, col.mean())  # the constant vector, without rounding
        cols.append(col)
    return np.array(cols).T


def combined_metric(p, n, dim, weights, wavelet, level):
    """M = W diag(lambda) W^T of DESIGN.md section 2, densely."""
    a1, a2, a3 = weights
    W = wavelet_matrix(n, dim, wavelet, level)
    Ds = difference_matrices(n, dim)
    H1 = sum((D @ W) ** 2 for D in Ds).T
    H2 = (W**2).T
    h3 = sum(((D @ W) ** 2).sum(axis=0) for D in Ds)
    pf = p.ravel()
    h1p, h2p = H1 @ pf, H2 @ pf
    lam = np.zeros(W.shape[1])
    for i in range(W.shape[1]):
        denom = a3 * h3[i]
        if a1 > 0:
            denom = np.inf if h1p[i] <= 0 else denom + a1 / h1p[i]
        if a2 > 0:
            denom = np.inf if h2p[i] <= 0 else denom + a2 / h2p[i]
        lam[i] = 0.0 if (not np.isfinite(denom) or denom <= 0) else 1.0 / denom
    return W @ np.diag(lam) @ W.T


def projected_direction(M, g):
    """s = M (g - c 1), c = 1^T M g / 1^T M 1 (s = M g when M 1 = 0)."""
    gf = g.ravel()
    one = np.ones_like(gf)
    m1 = M @ one
    if abs(m1.sum()) <= 1e-14 * np.abs(M).sum():
        return (M @ gf).reshape(g.shape)
    c = (one @ M @ gf) / (one @ m1)
    return (M @ (gf - c)).reshape(g.shape)
