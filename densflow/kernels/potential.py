"""numba kernels of Newton's method in the potential (:mod:`densflow.potential_newton`).

* The Hessian product in the potential :math:`\\varphi` (``p = mu + L_w phi``):
  ``out = L_w (diag * u + a3 A u) + a1 u`` with ``u = L_w v``, and its curvature
  ``v.out`` summed in the same passes (1D and 2D), in passes whose inner loops have no
  wrap-around branch, so that they vectorise (2D 256²: 0.22 ms a product, 0.35 ms with
  the branchy stencils of :mod:`densflow.kernels.stencils`, the same arithmetic); in 2D
  the intermediate ``u`` and ``m`` live in rings of a few rows, so that only the
  product goes to memory.
* The vector work of its preconditioned conjugate gradients, fused around the
  preconditioner (one call before and one after it).
* The exact 1D Hessian as a cyclic band and its direct solve live in
  :mod:`densflow.kernels.cyclic_band` (imported here under their old names).
"""

import numba as nb
import numpy as np

from .cyclic_band import cyclic_band_solve, potential_hessian_band  # noqa: F401

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _scaled_dot(r, scale, zraw, rho):
    """``sum r * scale * zraw * rho``, reassociated (vectorised)."""
    total = 0.0
    for i in range(r.shape[0]):
        total += r[i] * (scale[i] * zraw[i] * rho)
    return total


@nb.njit(**_JIT)
def cg_direction(zraw, scale, r, d, rz_old, first, rho):
    """``z = rho * scale * zraw`` (``zraw`` float64 or float32); ``d = z + (r.z /
    rz_old) d`` (``d = z`` when ``first``); returns ``r.z``."""
    rz = _scaled_dot(r, scale, zraw, rho)
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


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _row_dot(a, b, n):
    """``a.b`` over one row, reassociated (the sum vectorises; only its rounding
    changes, the same from run to run)."""
    total = 0.0
    for j in range(n):
        total += a[j] * b[j]
    return total


@nb.njit(**_JIT)
def _mid_row(um, ui, up, di, has_diag, a3, n2, row, mi, n):
    """One row of ``m = diag u + a3 A u`` (``A u`` into ``row``)."""
    if a3 > 0.0:
        _lap_row(um, ui, up, n2, row, n)
        if has_diag:
            for j in range(n):
                mi[j] = di[j] * ui[j] + a3 * row[j]
        else:
            for j in range(n):
                mi[j] = a3 * row[j]
    elif has_diag:
        for j in range(n):
            mi[j] = di[j] * ui[j]
    else:
        for j in range(n):
            mi[j] = 0.0


@nb.njit(**_JIT)
def _out_row(mm, mc, mp, wm, wc, uc, a1, n2, oi, n):
    """One row of ``out = L_w m + a1 u`` (``mm, mc, mp``: rows i-1, i, i+1 of m;
    ``wm, wc``: rows i-1, i of w; ``uc``: row i of u)."""
    _wlap_row(mm, mc, mp, wm, wc, n2, oi, n)
    if a1 > 0.0:
        for j in range(n):
            oi[j] += a1 * uc[j]


#: Rows of the ring arrays of :func:`hessian_rows_2d`: ``u`` keeps rows 0 and n-1 and
#: three others, ``m`` rows 0, 1 and n-1 and three others.
U_ROWS, M_ROWS = 5, 6


@nb.njit(**_JIT)
def _u_slot(i, n):
    """The ring row of row ``i`` of ``u`` (0 and n-1 kept, the others by ``i % 3``)."""
    if i == 0:
        return 0
    if i == n - 1:
        return 1
    return 2 + i % 3


@nb.njit(**_JIT)
def _m_slot(i, n):
    """The ring row of row ``i`` of ``m`` (0, 1 and n-1 kept, the others by ``i % 3``)."""
    if i == 0:
        return 0
    if i == 1:
        return 1
    if i == n - 1:
        return 2
    return 3 + i % 3


@nb.njit(**_JIT)
def hessian_rows_2d(v, w, diag, has_diag, a1, a3, n, u, row, m, out):
    """The Hessian product ``out = L_w (diag u + a3 A u) + a1 u``, ``u = L_w v``, on an
    ``n x n`` periodic grid (``n >= 3``) in one sweep over the rows: row ``i + 1`` of
    ``u``, row ``i`` of ``m = diag u + a3 A u`` (``A u`` one row at a time in ``row``)
    and row ``i - 1`` of ``out`` together (the wrap-around rows first and last). ``u``
    and ``m`` are rings of :data:`U_ROWS` and :data:`M_ROWS` rows of length ``n``
    (:func:`_u_slot`, :func:`_m_slot`): the rows a stencil reads stay in cache and only
    ``out`` goes to memory. Returns ``v.out = u.m + a1 v.u``."""
    n2 = float(n) * float(n)
    for i in (n - 1, 0):
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        _wlap_row(v[im], v[i], v[ip], w[im], w[i], n2, u[_u_slot(i, n)], n)
    um = 0.0
    vu = 0.0
    for i in range(n):
        if i + 1 < n - 1:
            _wlap_row(v[i], v[i + 1], v[i + 2], w[i], w[i + 1], n2, u[_u_slot(i + 1, n)], n)
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        ui = u[_u_slot(i, n)]
        mi = m[_m_slot(i, n)]
        _mid_row(u[_u_slot(im, n)], ui, u[_u_slot(ip, n)], diag[i], has_diag, a3, n2, row,
                 mi, n)
        um += _row_dot(ui, mi, n)
        if a1 > 0.0:
            vu += _row_dot(v[i], ui, n)
        if i >= 2:
            _out_row(m[_m_slot(i - 2, n)], m[_m_slot(i - 1, n)], mi, w[i - 2], w[i - 1],
                     u[_u_slot(i - 1, n)], a1, n2, out[i - 1], n)
    _out_row(m[_m_slot(n - 2, n)], m[_m_slot(n - 1, n)], m[0], w[n - 2], w[n - 1],
             u[1], a1, n2, out[n - 1], n)
    _out_row(m[_m_slot(n - 1, n)], m[0], m[1], w[n - 1], w[0], u[0], a1, n2, out[0], n)
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
def _cg_axpy_max(x, r, d, hd, alpha, scale, t, inv_rho):
    """``x += alpha d``, ``r -= alpha hd``, ``t = scale * r * inv_rho`` (flat); returns
    ``max |scale * r|`` from the same pass (one pass over ``scale`` and ``r`` fewer than
    a separate maximum: 2D 512², 0.25 against 0.32 ms)."""
    big = 0.0
    for i in range(x.shape[0]):
        x[i] += alpha * d[i]
        ri = r[i] - alpha * hd[i]
        r[i] = ri
        si = scale[i] * ri
        t[i] = si * inv_rho
        big = max(big, abs(si))
    return big


@nb.njit(**_JIT)
def hessian_cg_update_2d(d, w, diag, has_diag, a1, a3, n, u, row, m, hd, x, r, rz, scale,
                         t, inv_rho):
    """One iteration's work around the preconditioner of the potential Newton's PCG on
    an ``n x n`` grid: ``hd`` = the Hessian product of ``d`` (:func:`hessian_rows_2d`,
    ``u`` and ``m`` its rings); unless its curvature ``d.hd`` is not positive, ``x += a d``, ``r -= a hd``, ``a =
    rz / d.hd``, and ``t = scale * r * inv_rho`` (``t`` float64 or float32). Returns
    ``(d.hd, max |scale * r|)`` (the latter 1 for 0: the next ``rho``)."""
    curvature = hessian_rows_2d(d, w, diag, has_diag, a1, a3, n, u, row, m, hd)
    if not curvature > 0.0:
        return curvature, 1.0
    big = _cg_axpy_max(x.reshape(-1), r.reshape(-1), d.reshape(-1), hd.reshape(-1),
                       rz / curvature, scale.reshape(-1), t.reshape(-1), inv_rho)
    return curvature, big if big > 0.0 else 1.0


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


@nb.njit(**_JIT)
def fourier_multiplier(symbol, a1, c2, c3, out):
    """``out = 1 / (A (a1 + A (c2 + c3 A)))``, 0 where that is not positive (the
    constants), ``A`` the Laplacian's ``symbol`` (flat; ``out`` float64 or float32):
    the Fourier preconditioner's multiplier in one pass."""
    for i in range(symbol.shape[0]):
        a = symbol[i]
        s = a * (a1 + a * (c2 + c3 * a))
        out[i] = 1.0 / s if s > 0.0 else 0.0
