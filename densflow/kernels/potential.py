"""numba kernels of Newton's method in the potential (:mod:`densflow.potential_newton`).

* The Hessian product in the potential :math:`\\varphi` (``p = mu + L_w phi``):
  ``out = L_w (diag * u + a3 A u) + a1 u`` with ``u = L_w v``, and its curvature
  ``v.out`` summed in the same passes (1D and 2D), in passes whose inner loops have no
  wrap-around branch, so that they vectorise (2D 256²: 0.22 ms a product, 0.35 ms with
  the branchy stencils of :mod:`densflow.kernels.stencils`, the same arithmetic).
* The vector work of its preconditioned conjugate gradients, fused around the
  preconditioner (one call before and one after it).
* The exact Hessian of the three standard terms in 1D as a cyclic band and its direct
  solve (banded Cholesky plus a low-rank Woodbury correction for the wrap-around
  corners and the constants).
"""

import numba as nb
import numpy as np



_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(**_JIT)
def cg_direction(zraw, scale, r, d, rz_old, first, rho):
    """``z = rho * scale * zraw`` (``zraw`` float64 or float32); ``d = z + (r.z /
    rz_old) d`` (``d = z`` when ``first``); returns ``r.z``."""
    rz = 0.0
    for i in range(r.shape[0]):  # (the float64 path's rounding as before rho: rho = 1)
        rz += r[i] * scale[i] * zraw[i] * rho
    beta = 0.0 if first else rz / rz_old
    for i in range(r.shape[0]):
        z = scale[i] * zraw[i] * rho
        d[i] = z + beta * d[i] if not first else z
    return rz


@nb.njit(**_JIT)
def scaled_single(t, out):
    """``out = t / max|t|`` in float32 (``out`` float32); returns ``max|t|`` (1 for 0)."""
    big = 0.0
    for i in range(t.shape[0]):
        a = abs(t[i])
        if a > big:
            big = a
    if not big > 0.0:
        big = 1.0
    inv = 1.0 / big
    for i in range(t.shape[0]):
        out[i] = t[i] * inv
    return big


# ------------------------------------------------------------------ 1D direct solve
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


# ------------------------------------------------ 2D products in row passes (vectorised)
@nb.njit(**_JIT)
def _wlap_row(xm, xc, xp, mum, muc, n2, out, n):
    """One row of ``L_w x`` (``xm, xc, xp``: rows i-1, i, i+1 of x; ``mum, muc``: rows
    i-1, i of w); the inner loop has no wrap-around branch, so it vectorises."""
    for j in range(1, n - 1):
        out[j] = n2 * (mum[j] * (xc[j] - xm[j]) - muc[j] * (xp[j] - xc[j])
                       + muc[j - 1] * (xc[j] - xc[j - 1]) - muc[j] * (xc[j + 1] - xc[j]))
    for j in (0, n - 1):
        jm = j - 1 if j > 0 else n - 1
        jp = j + 1 if j < n - 1 else 0
        out[j] = n2 * (mum[j] * (xc[j] - xm[j]) - muc[j] * (xp[j] - xc[j])
                       + muc[jm] * (xc[j] - xc[jm]) - muc[j] * (xc[jp] - xc[j]))


@nb.njit(**_JIT)
def _lap_row(xm, xc, xp, n2, out, n):
    """One row of ``A x`` (the positive ``-Delta``)."""
    for j in range(1, n - 1):
        out[j] = n2 * (4.0 * xc[j] - xm[j] - xp[j] - xc[j - 1] - xc[j + 1])
    for j in (0, n - 1):
        jm = j - 1 if j > 0 else n - 1
        jp = j + 1 if j < n - 1 else 0
        out[j] = n2 * (4.0 * xc[j] - xm[j] - xp[j] - xc[jm] - xc[jp])


@nb.njit(**_JIT)
def wlap_2d(x, w, n, out):
    """``out = L_w x`` on an ``n x n`` periodic grid (row passes)."""
    n2 = float(n) * float(n)
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        _wlap_row(x[im], x[i], x[ip], w[im], w[i], n2, out[i], n)


@nb.njit(**_JIT)
def hessian_rows_2d(v, w, diag, has_diag, a1, a3, n, u, row, m, out):
    """:func:`hessian_2d` in three row passes: ``u = L_w v``; ``m = diag u + a3 A u``
    (``A u`` one row at a time in ``row``); ``out = L_w m + a1 u``. Returns
    ``v.out = u.m + a1 v.u``."""
    n2 = float(n) * float(n)
    wlap_2d(v, w, n, u)
    um = 0.0
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        ui, mi = u[i], m[i]
        if a3 > 0.0:
            _lap_row(u[im], ui, u[ip], n2, row, n)
            if has_diag:
                di = diag[i]
                for j in range(n):
                    mi[j] = di[j] * ui[j] + a3 * row[j]
            else:
                for j in range(n):
                    mi[j] = a3 * row[j]
        elif has_diag:
            di = diag[i]
            for j in range(n):
                mi[j] = di[j] * ui[j]
        else:
            for j in range(n):
                mi[j] = 0.0
        for j in range(n):
            um += ui[j] * mi[j]
    vu = 0.0
    for i in range(n):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        oi = out[i]
        _wlap_row(m[im], m[i], m[ip], w[im], w[i], n2, oi, n)
        if a1 > 0.0:
            ui, vi = u[i], v[i]
            for j in range(n):
                oi[j] += a1 * ui[j]
                vu += vi[j] * ui[j]
    return um + a1 * vu


@nb.njit(**_JIT)
def ratio_stats(w, p):
    """``(min, max, mean)`` of ``w / p`` in one pass (flat arrays)."""
    lo = np.inf
    hi = 0.0
    total = 0.0
    for i in range(w.shape[0]):
        x = w[i] / p[i]
        total += x
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    return lo, hi, total / w.shape[0]


@nb.njit(**_JIT)
def curvature_diagonal(p, a, out):
    """``out = a / max(p, 1e-300)`` (flat arrays): the KL term's Hessian diagonal."""
    for i in range(p.shape[0]):
        out[i] = a / max(p[i], 1e-300)


@nb.njit(**_JIT)
def _axpy_scaled(x, r, d, hd, alpha, scale, t, inv_rho):
    """``x += alpha d``, ``r -= alpha hd``, ``t = scale * r * inv_rho`` (flat; ``t``
    float64 or float32); returns ``(|r|^2, max |scale * r|)``."""
    big = 0.0
    rr = 0.0
    for i in range(x.shape[0]):
        x[i] += alpha * d[i]
        ri = r[i] - alpha * hd[i]
        r[i] = ri
        rr += ri * ri
        si = scale[i] * ri
        t[i] = si * inv_rho
        a = abs(si)
        if a > big:
            big = a
    return rr, big


@nb.njit(**_JIT)
def cg_update_scaled(x, r, d, hd, alpha, scale, t, inv_rho):
    """``x += alpha d``, ``r -= alpha hd``, ``t = scale * r * inv_rho`` (``t`` float64
    or float32; flat arrays); returns ``max |scale * r|`` (1 for 0), the next
    ``rho``."""
    big = _axpy_scaled(x, r, d, hd, alpha, scale, t, inv_rho)[1]
    return big if big > 0.0 else 1.0


@nb.njit(**_JIT)
def wlap_1d(x, w, n, out):
    """``out = L_w x`` on a periodic line (the interior loop without wrap-around
    branches, so that it vectorises; the same arithmetic as the stencil)."""
    n2 = float(n) * float(n)
    for i in range(1, n - 1):
        out[i] = n2 * (w[i - 1] * (x[i] - x[i - 1]) - w[i] * (x[i + 1] - x[i]))
    out[0] = n2 * (w[n - 1] * (x[0] - x[n - 1]) - w[0] * (x[1] - x[0]))
    out[n - 1] = n2 * (w[n - 2] * (x[n - 1] - x[n - 2]) - w[n - 1] * (x[0] - x[n - 1]))


@nb.njit(**_JIT)
def hessian_lines_1d(v, w, diag, has_diag, a1, a3, n, u, m, out):
    """:func:`hessian_1d` in three vectorised passes: ``u = L_w v``; ``m = diag u + a3
    A u``; ``out = L_w m + a1 u``. Returns ``v.out = u.m + a1 v.u``."""
    n2 = float(n) * float(n)
    wlap_1d(v, w, n, u)
    if a3 > 0.0:
        for i in range(1, n - 1):
            m[i] = a3 * (n2 * (2.0 * u[i] - u[i - 1] - u[i + 1]))
        m[0] = a3 * (n2 * (2.0 * u[0] - u[n - 1] - u[1]))
        m[n - 1] = a3 * (n2 * (2.0 * u[n - 1] - u[n - 2] - u[0]))
    else:
        for i in range(n):
            m[i] = 0.0
    if has_diag:
        for i in range(n):
            m[i] += diag[i] * u[i]
    um = 0.0
    for i in range(n):
        um += u[i] * m[i]
    wlap_1d(m, w, n, out)
    vu = 0.0
    if a1 > 0.0:
        for i in range(n):
            out[i] += a1 * u[i]
            vu += v[i] * u[i]
    return um + a1 * vu


@nb.njit(**_JIT)
def wlap_cg_update(x, res, d, ld, w, n, rz, scale, t, inv_rho):
    """The weighted-Laplacian CG's update (as :func:`densflow.kernels.cg.cg_update`)
    with the vectorised ``L_w`` of :func:`wlap_2d` (``n x n`` arrays): ``ld = L_w d``;
    ``x += a d``, ``res -= a ld``, ``a = rz / d.ld``; ``t = scale * res * inv_rho``.
    Returns ``(|res|^2, d.ld)``."""
    wlap_2d(d, w, n, ld)
    df, lf = d.reshape(-1), ld.reshape(-1)
    curvature = 0.0
    for i in range(df.shape[0]):
        curvature += df[i] * lf[i]
    rr = _axpy_scaled(x.reshape(-1), res.reshape(-1), df, lf, rz / curvature,
                      scale.reshape(-1), t.reshape(-1), inv_rho)[0]
    return rr, curvature
