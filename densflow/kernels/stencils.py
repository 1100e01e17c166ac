"""numba kernels for the inner loops (compiled on first use, cached on disk).

* Difference operators on periodic grids, the exact 1D weighted-Laplacian solve and a
  serial dot product.

The wavelet transforms are in :mod:`densflow.kernels.dwt`, the diagonals ``H1 p`` and
``H2 p`` of the combined metric in :mod:`densflow.kernels.diagonals`.
"""

import numba as nb

_JIT = dict(cache=True, nogil=True, error_model="numpy")  # no zero-division branches

# All kernels run on one thread. Measured on the 2-core target machine, the
# parallel variants (numba prange on the OpenMP layer, threaded FFTs and BLAS) were
# slower at every grid size up to 1024 x 1024 (combined metric per iteration: 582 vs
# 518 ms at 1024^2, 267 vs 108 ms at 512^2), since their spinning worker threads
# compete with each other and with any second process.


@nb.njit(**_JIT)
def weighted_laplacian_2d(x, mu, n, out):
    """``out = sum_d D_d^T (mu * D_d x)`` on an ``n x n`` periodic grid; returns ``x.out``
    (the CG's curvature, summed in the same pass)."""
    n2 = float(n) * float(n)
    curvature = 0.0
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        for j in range(n):
            jm = j - 1 if j > 0 else n - 1
            jp = j + 1 if j < n - 1 else 0
            xc = x[i, j]
            # D_1: flux on the edge (i, i+1) is mu[i] (x[i+1] - x[i]); likewise D_2
            v = n2 * (mu[im, j] * (xc - x[im, j]) - mu[i, j] * (x[ip, j] - xc)
                      + mu[i, jm] * (xc - x[i, jm]) - mu[i, j] * (x[i, jp] - xc))
            out[i, j] = v
            curvature += xc * v
    return curvature


@nb.njit(**_JIT)
def weighted_laplacian_1d(x, mu, n, out):
    """``out = D^T (mu * D x)`` on a periodic line of ``n`` points."""
    n2 = float(n) * float(n)
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        xc = x[i]
        out[i] = n2 * (mu[im] * (xc - x[im]) - mu[i] * (x[ip] - xc))


@nb.njit(**_JIT)
def laplacian_1d(x, n, out):
    """``out = D^T D x`` (the positive ``-Delta``) on a periodic line."""
    n2 = float(n) * float(n)
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        out[i] = n2 * (2.0 * x[i] - x[im] - x[ip])


@nb.njit(**_JIT)
def laplacian_2d(x, n, out):
    """``out = (D_1^T D_1 + D_2^T D_2) x`` on an ``n x n`` periodic grid."""
    n2 = float(n) * float(n)
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        for j in range(n):
            jm = j - 1 if j > 0 else n - 1
            jp = j + 1 if j < n - 1 else 0
            out[i, j] = n2 * (4.0 * x[i, j] - x[im, j] - x[ip, j] - x[i, jm] - x[i, jp])


@nb.njit(**_JIT)
def weighted_laplacian_pinv_1d(r, inv_mu, n, out):
    """Zero-mean solution of ``D^T (mu D x) = r - mean(r)`` by two cumulative sums."""
    mean_r = 0.0
    for i in range(n):
        mean_r += r[i]
    mean_r /= n
    # q_i = C - (1/n) sum_{j<=i} (r_j - mean r);  C from sum_i q_i / mu_i = 0
    cum = 0.0
    num = 0.0
    den = 0.0
    for i in range(n):
        cum += (r[i] - mean_r) / n
        out[i] = cum
        num += cum * inv_mu[i]
        den += inv_mu[i]
    c = num / den
    # x_{i+1} = x_i + q_i / (n mu_i), x_0 = 0, then remove the mean
    x = 0.0
    total = 0.0
    prev = (c - out[0]) * inv_mu[0] / n
    out[0] = 0.0
    for i in range(1, n):
        x += prev
        prev = (c - out[i]) * inv_mu[i] / n
        out[i] = x
        total += x
    total /= n
    for i in range(n):
        out[i] -= total


@nb.njit(**_JIT)
def dot_serial(a, b):
    """``sum(a * b)`` of two contiguous 1D arrays, on one thread."""
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@nb.njit(**_JIT)
def dot_flat(a, b):
    """:func:`dot_serial` of two C-contiguous arrays of any (equal) shape."""
    return dot_serial(a.reshape(-1), b.reshape(-1))
