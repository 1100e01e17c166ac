"""numba kernels of the exact 1D Newton solve in the potential
(:mod:`densflow.potential_newton`, ``preconditioner="direct"``, and
:mod:`densflow.kernels.fused1d`): the Hessian of the three standard terms as a cyclic
band of half-width 3 and its direct solve (banded Cholesky plus a low-rank Woodbury
correction for the wrap-around corners and the constants).
"""

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_JIT)
def _band_product(a, ba, b, bb, out, bo):
    """Cyclic band product ``out = a b``; a band ``x`` of half-width ``bx`` stores
    ``x[i, k + bx] = X[i, (i + k) mod N]``."""
    n = a.shape[0]
    for i in range(n):
        for k in range(2 * bo + 1):
            out[i, k] = 0.0
        for j in range(-ba, ba + 1):
            aij = a[i, j + ba]
            if aij == 0.0:
                continue
            row = (i + j) % n
            for m in range(-bb, bb + 1):
                out[i, j + m + bo] += aij * b[row, m + bb]


@nb.njit(**_JIT)
def potential_hessian_band(mu, diag, a1, a3, n):
    """The band (half-width 3) of ``H = a1 L + L diag(diag) L + a3 L A L`` in 1D."""
    n2 = float(n) * float(n)
    lb = np.zeros((n, 3))
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        lb[i, 0] = -n2 * mu[im]
        lb[i, 1] = n2 * (mu[im] + mu[i])
        lb[i, 2] = -n2 * mu[i]
    mid = np.zeros((n, 3))  # diag + a3 A
    for i in range(n):
        mid[i, 0] = -a3 * n2
        mid[i, 1] = diag[i] + 2.0 * a3 * n2
        mid[i, 2] = -a3 * n2
    tmp = np.zeros((n, 5))
    _band_product(lb, 1, mid, 1, tmp, 2)
    h = np.zeros((n, 7))
    _band_product(tmp, 2, lb, 1, h, 3)
    for i in range(n):
        for k in range(3):
            h[i, k + 2] += a1 * lb[i, k]
    return h


@nb.njit(**_JIT)
def _cholesky_band(a, b):
    """Banded Cholesky ``B = C C^T`` of the non-cyclic symmetric band ``a`` (half-width
    ``b``, layout as above, entries outside ``0..N-1`` ignored); returns ``c`` with
    ``c[i, k] = C[i, i - k]`` or an empty array when a pivot is not positive."""
    n = a.shape[0]
    c = np.zeros((n, b + 1))
    for i in range(n):
        for j in range(max(0, i - b), i + 1):
            s = a[i, j - i + b]
            for k in range(max(0, i - b), j):
                s -= c[i, i - k] * c[j, j - k]
            if i == j:
                if not s > 0.0:
                    return np.zeros((0, b + 1))
                c[i, 0] = np.sqrt(s)
            else:
                c[i, i - j] = s / c[j, 0]
    return c


@nb.njit(**_JIT)
def _cholesky_solve(c, b, x):
    """Solve ``C C^T y = x`` in place for every column of ``x`` (the columns advance
    together, so that their recurrences overlap; multiplications by the pivots'
    inverses, no divisions)."""
    n, m = x.shape
    inv = np.empty(n)
    for i in range(n):
        inv[i] = 1.0 / c[i, 0]
    for i in range(n):
        for k in range(max(0, i - b), i):
            cik = c[i, i - k]
            for col in range(m):
                x[i, col] -= cik * x[k, col]
        for col in range(m):
            x[i, col] *= inv[i]
    for i in range(n - 1, -1, -1):
        for k in range(i + 1, min(n, i + b + 1)):
            cki = c[k, k - i]
            for col in range(m):
                x[i, col] -= cki * x[k, col]
        for col in range(m):
            x[i, col] *= inv[i]


@nb.njit(**_JIT)
def cyclic_band_solve(h, rhs, out):
    r"""Solve ``H x = rhs`` for a symmetric positive semidefinite cyclic band ``h``
    (half-width ``b = (h.shape[1] - 1) // 2 < N/2``) whose null space is the constants,
    ``rhs`` of zero mean; ``out`` gets the zero-mean solution. Returns ``False`` when a
    Cholesky pivot fails.

    With ``U = [e_0..e_{b-1}, e_{N-b}..e_{N-1}]`` the wrap-around part of ``H`` is
    ``U E U^T``, ``E = [[0, K^T], [K, 0]]``. ``B = H - U E U^T + s U U^T``,
    ``s = 2 |K|_F``, is a plain band and positive definite (``H`` plus
    ``U (sI - E) U^T``, which is positive definite on the span of ``U``; a vector
    both in ``H``'s null space, the constants, and orthogonal to that span is 0), and ``H + rho 1 1^T = B - V G V^T`` with ``V = [U, 1]``,
    ``G = diag(sI - E, -rho)``: Woodbury with ``2b + 1`` columns. The constants are
    fixed by ``rho``: the solution of the regularised system has zero mean since
    ``rhs`` has.
    """
    n = h.shape[0]
    b = (h.shape[1] - 1) // 2
    m = 2 * b + 1
    idx = np.empty(2 * b, dtype=np.int64)
    for k in range(b):
        idx[k] = k
        idx[b + k] = n - b + k
    # the corner block K[r, c] = H[n-b+r, c] for the wrap-around entries
    e = np.zeros((2 * b, 2 * b))
    for r in range(b):
        i = n - b + r
        for c in range(b):
            k = c - i + n  # H[i, c] at offset (c - i) mod n = c - i + n
            if k <= b:
                e[b + r, c] = h[i, k + b]
                e[c, b + r] = h[i, k + b]
    s = 0.0
    for r in range(2 * b):
        for c in range(2 * b):
            s += e[r, c] * e[r, c]
    s = 2.0 * np.sqrt(0.5 * s) + 1e-300
    a = h.copy()
    for i in range(n):
        for k in range(-b, b + 1):
            j = i + k
            if j < 0 or j >= n:
                a[i, k + b] = 0.0  # the wrap-around entries leave the band
    for k in range(2 * b):
        i = idx[k]
        a[i, b] += s
    c = _cholesky_band(a, b)
    if c.shape[0] == 0:
        return False
    trace = 0.0
    for i in range(n):
        trace += h[i, b]
    rho = trace / (n * n)
    # G = diag(s I - E, -rho)
    g = np.zeros((m, m))
    for r in range(2 * b):
        for q in range(2 * b):
            g[r, q] = -e[r, q]
        g[r, r] += s
    g[m - 1, m - 1] = -rho
    x = np.zeros((n, m + 1))
    for i in range(n):
        x[i, 0] = rhs[i]
        x[i, m] = 1.0
    for k in range(2 * b):
        x[idx[k], k + 1] = 1.0
    _cholesky_solve(c, b, x)
    # capacitance G^-1 - V^T B^-1 V
    vz = np.zeros((m, m))
    vy = np.zeros(m)
    for r in range(m):
        for q in range(m):
            if r < 2 * b:
                vz[r, q] = x[idx[r], q + 1]
            else:
                t = 0.0
                for i in range(n):
                    t += x[i, q + 1]
                vz[r, q] = t
        if r < 2 * b:
            vy[r] = x[idx[r], 0]
        else:
            t = 0.0
            for i in range(n):
                t += x[i, 0]
            vy[r] = t
    cap = np.linalg.inv(g) - vz
    w = np.linalg.solve(cap, vy)
    mean = 0.0
    for i in range(n):
        v = x[i, 0]
        for q in range(m):
            v += x[i, q + 1] * w[q]
        out[i] = v
        mean += v
    mean /= n
    for i in range(n):
        out[i] -= mean
    return True
