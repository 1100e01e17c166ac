r"""Two peers of :mod:`peers` written with numpy/scipy only, independently of densflow's
solvers: Newton–CG on the potential (1D and 2D) and a banded Newton in 1D.

They read from the energy object only its weights ``(a1, a2, a3)`` and its μ (the
problem's data) and, for the banded Newton, its value and gradient (as the other peers
do); every operator, solve and line search is their own.
"""

import math

import numpy as np
import scipy.fft as sfft
from scipy.linalg import solve_banded


# ------------------------------------------------------------------------- stencils
def wlap(x, w, n):
    r""":math:`L_w x = \sum_d D_d^\top (w\, D_d x)`, :math:`D` the forward difference × n."""
    out = np.zeros_like(x)
    for ax in range(x.ndim):
        q = w * (np.roll(x, -1, ax) - x)
        out += np.roll(q, 1, ax) - q
    return (n * n) * out


def lap(x, n):
    """:math:`A x = -\\Delta x` (periodic)."""
    out = (2 * x.ndim) * x
    for ax in range(x.ndim):
        out -= np.roll(x, 1, ax) + np.roll(x, -1, ax)
    return (n * n) * out


def symbol(n, dim):
    full = 4.0 * n * n * np.sin(np.pi * np.arange(n) / n) ** 2
    half = full[: n // 2 + 1]
    return half if dim == 1 else full[:, None] + half[None, :]


def _pcg(hvp, b, prec, rtol, maxit):
    x = np.zeros_like(b)
    r = b.copy()
    z = prec(r)
    d = z.copy()
    rz = rz0 = float(np.vdot(r, z))
    it = 0
    if not rz > 0:
        return x, 0
    while it < maxit:
        it += 1
        hd = hvp(d)
        dhd = float(np.vdot(d, hd))
        if not dhd > 0:
            break
        a = rz / dhd
        x += a * d
        r -= a * hd
        z = prec(r)
        rz_new = float(np.vdot(r, z))
        if rz_new <= rtol * rtol * rz0:
            break
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, it


def _scaled_fourier(t_inv, mult, shape):
    axes = tuple(range(len(shape)))

    def apply(r):
        return t_inv * sfft.irfftn(sfft.rfftn(t_inv * r, axes=axes) * mult, s=shape, axes=axes)
    return apply


def _inverse(sym):
    inv = np.zeros_like(sym)
    np.divide(1.0, sym, out=inv, where=sym > 0)
    return inv


# ---------------------------------------------------------- Newton-CG on the potential
def potential_newton_cg(weights, mu, p0, tol, max_iter, over, forcing_max=1e-2, c1=1e-4,
                        cg_max=1000, boundary=0.995):
    r"""Newton–CG on the potential :math:`\varphi`, :math:`p = \mu + L_\mu\varphi`.

    :math:`E(\varphi) = \tfrac{a_1}{2}\varphi^\top L_\mu\varphi + a_2\,\mathrm{KL}(p\,|\,\mu)
    + \tfrac{a_3}{2}(p-\mu)^\top A (p-\mu)`; gradient :math:`L_\mu \nabla_p E` with
    :math:`\nabla_p E = a_1\varphi + a_2(\log(p/\mu) + 1) + a_3 A(p - \mu)`; Hessian
    products :math:`a_1 L v + L(a_2 (Lv)/p + a_3 A L v)` (stencils only). One PCG solve
    :math:`L_\mu\varphi_0 = p_0 - \mu` at the start. PCG with :math:`T^{-1}FT^{-1}`,
    :math:`T = \mu^{1/2}`, :math:`F = 1/(a_1\hat A + a_2 c_2 \hat A^2 + a_3 c_3\hat A^3)`,
    :math:`c_2 = \overline{\mu/p}`, :math:`c_3 = \bar\mu`; forcing
    :math:`\min(\eta_{\max}, \max(\sqrt{E}, \sqrt{\tau/(10E)}))`; Armijo (``c1``, halving)
    from the fraction-to-the-boundary step :math:`\min(1, 0.995\,t_{\max})` with the
    quadratic parts exact along the line. ``over()``: the time cap.

    ``forcing_max = 1e-2`` was the fastest of 1e-1, 1e-2, 1e-3 on the 2D 64² panels
    and 128² (1e-1 needs more outer steps at high contrast).

    Returns ``(p, outer iterations, Hessian products, note)``.
    """
    a1, a2, a3 = weights
    shape, n, dim = mu.shape, mu.shape[0], mu.ndim
    A = symbol(n, dim)
    t_inv = 1.0 / np.sqrt(mu)
    mean_mu = float(mu.mean())
    # phi0: L phi0 = p0 - mu by PCG with T^-1 A^+ T^-1
    phi, _ = _pcg(lambda v: wlap(v, mu, n), p0 - mu, _scaled_fourier(t_inv, _inverse(A), shape),
                  1e-13, 2000)
    phi -= phi.mean()
    dp = wlap(phi, mu, n)
    p = mu + dp
    adp = lap(dp, n) if a3 else None
    hv = k = 0
    note = ""

    def value(p, phi_l_phi, dp, adp):
        v = 0.5 * a1 * phi_l_phi
        if a2:
            v += a2 * float(np.sum(p * np.log(p / mu)))
        if a3:
            v += 0.5 * a3 * float(np.vdot(dp, adp))
        return v

    if a2 and not np.all(p > 0):
        return p, 0, 0, "phi0 not positive"
    e = value(p, float(np.vdot(phi, dp)), dp, adp)
    while e > tol:
        if k >= max_iter:
            note = f"iteration cap {max_iter}"
            break
        if over():
            note = "time cap"
            break
        gp = a1 * phi
        if a2:
            gp = gp + a2 * (np.log(p / mu) + 1.0)
        if a3:
            gp = gp + a3 * adp
        grad = wlap(gp, mu, n)
        ek = max(e, 1e-300)
        eta = min(forcing_max, max(math.sqrt(ek), math.sqrt(tol / (10 * ek))))
        inv_p = 1.0 / p if a2 else None

        def hvp(v):
            u = wlap(v, mu, n)
            mid = np.zeros_like(u)
            if a2:
                mid += a2 * u * inv_p
            if a3:
                mid += a3 * lap(u, n)
            return wlap(mid, mu, n) + a1 * u

        c2 = float(np.mean(mu / p)) if a2 else 0.0
        mult = _inverse(A * (a1 + A * (a2 * c2 + a3 * mean_mu * A)))
        delta, its = _pcg(hvp, -grad, _scaled_fourier(t_inv, mult, shape), eta, cg_max)
        hv += its
        ddp = wlap(delta, mu, n)
        slope = float(np.vdot(grad, delta))
        if not slope < 0:
            note = f"no descent at iteration {k}"
            break
        t = 1.0
        if a2:
            neg = ddp < 0
            if neg.any():
                t = min(1.0, boundary * float(np.min(p[neg] / -ddp[neg])))
        # quadratic parts along the line: E1(t) = E1 + t a1 phi.L delta + t^2/2 a1 delta.L delta
        q1 = a1 * float(np.vdot(dp, delta))
        q2 = a1 * float(np.vdot(delta, ddp))
        addp = lap(ddp, n) if a3 else None
        if a3:
            q1 += a3 * float(np.vdot(adp, ddp))
            q2 += a3 * float(np.vdot(ddp, addp))
        kl0 = a2 * float(np.sum(p * np.log(p / mu))) if a2 else 0.0
        accepted = False
        while t > 1e-14:
            if a2:
                q = p + t * ddp
                if not np.all(q > 0):
                    t *= 0.5
                    continue
                dkl = a2 * float(np.sum(q * np.log(q / mu))) - kl0
            else:
                dkl = 0.0
            if t * q1 + 0.5 * t * t * q2 + dkl <= c1 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            note = f"line search failed at iteration {k}"
            break
        phi = phi + t * delta
        dp = dp + t * ddp
        p = q if a2 else mu + dp  # the trial point the line search checked
        if a3:
            adp = adp + t * addp
        k += 1
        e = value(p, float(np.vdot(phi, dp)), dp, adp)
    return p, k, hv, note


# ----------------------------------------------------------------- banded Newton (1D)
def _cyclic_banded_solve(diagonals, rhs):
    r"""Solve :math:`M x = \mathrm{rhs}` for a cyclic band ``diagonals = {k: v}``,
    :math:`M_{i,(i+k) \bmod N} = v_i`: LAPACK's banded LU (partial pivoting) of the
    non-cyclic part and a Woodbury correction for the wrap-around corners."""
    n = rhs.shape[0]
    b = max(abs(k) for k in diagonals)
    ab = np.zeros((2 * b + 1, n))
    rows, cols, vals = [], [], []
    i = np.arange(n)
    for k, v in diagonals.items():
        j = i + k
        inside = (j >= 0) & (j < n)
        ab[b - k, j[inside]] = v[inside]
        out = ~inside
        rows.extend(i[out])
        cols.extend(j[out] % n)
        vals.extend(v[out])
    corner_rows = sorted(set(rows))
    m = len(corner_rows)
    u = np.zeros((n, m))
    vt = np.zeros((m, n))
    pos = {r: c for c, r in enumerate(corner_rows)}
    for r, c, v in zip(rows, cols, vals):
        u[r, pos[r]] = 1.0
        vt[pos[r], c] += v
    sol = solve_banded((b, b), ab, np.column_stack([rhs, u]), check_finite=False)
    y, z = sol[:, 0], sol[:, 1:]
    w = np.linalg.solve(np.eye(m) + vt @ z, vt @ y)
    return y - z @ w


def _band_product(a, b, n):
    """Product of two cyclic bands ``{k: v}`` (row-wise storage as above)."""
    out = {}
    for ka, va in a.items():
        for kb, vb in b.items():
            out[ka + kb] = out.get(ka + kb, 0.0) + va * np.roll(vb, -ka)
    return out


def banded_newton_1d(E, p0, tol, max_iter, over, c1=1e-4, boundary=0.995):
    r"""Newton in :math:`p` with a direct solve of the exact Hessian system (1D).

    With :math:`X = \operatorname{diag}(a_2/p) + a_3 A` (cyclic tridiagonal): for
    :math:`a_1 > 0` the Newton step :math:`(a_1 L_\mu^+ + X) d = -(g - c\mathbf 1)`,
    :math:`\sum d = 0`, is multiplied by :math:`L_\mu`: :math:`(a_1 I + L_\mu X) d =
    -L_\mu g` (cyclic tri- or pentadiagonal; summing it gives :math:`\sum d = 0`);
    for :math:`a_1 = 0`, :math:`X u = g`, :math:`X v = 1`, :math:`d = -(u - c v)`,
    :math:`c = \sum u / \sum v`. Solved by :func:`_cyclic_banded_solve`. Armijo
    (``c1``, halving) from the fraction-to-the-boundary step along ``E.line``
    (trials in O(N)); the state is re-evaluated every 5 steps.

    Returns ``(p, iterations, note)``.
    """
    w = E.weights
    a1, a2, a3 = w["wasserstein"], w["fisher_rao"], w["mahalanobis"]
    mu = E.mu
    n = mu.shape[0]
    n2 = float(n * n)
    ones = np.ones(n)
    lband = {-1: -n2 * np.roll(mu, 1), 0: n2 * (np.roll(mu, 1) + mu), 1: -n2 * mu}
    st = E.evaluate(p0.copy())
    k = 0
    note = ""
    while st.value > tol:
        if k >= max_iter:
            note = f"iteration cap {max_iter}"
            break
        if over():
            note = "time cap"
            break
        p, g = st.p, st.gradient
        x = {0: (a2 / p if a2 else 0.0) + 2 * a3 * n2 * ones}
        if a3:
            x[-1] = x[1] = -a3 * n2 * ones
        if a1:
            m = _band_product(lband, x, n)
            m[0] = m[0] + a1
            rhs = -(n2 * (np.roll(mu, 1) * (g - np.roll(g, 1)) - mu * (np.roll(g, -1) - g)))
            d = _cyclic_banded_solve(m, rhs)
        else:
            sol_u = _cyclic_banded_solve(x, g)
            sol_v = _cyclic_banded_solve(x, ones)
            d = -(sol_u - sol_u.sum() / sol_v.sum() * sol_v)
        d -= d.mean()
        slope = float(np.vdot(g, d))
        if not slope < 0:
            note = f"no descent at iteration {k}"
            break
        t = 1.0
        if a2:
            neg = d < 0
            if neg.any():
                t = min(1.0, boundary * float(np.min(p[neg] / -d[neg])))
        line = E.line(st, -d, positive=True)
        accepted = None
        while t > 1e-14:
            if line.delta(t) <= c1 * t * slope:
                accepted = line.state_at(t)
                break
            t *= 0.5
        if accepted is None:
            note = f"line search failed at iteration {k}"
            break
        st = accepted
        k += 1
        if k % 5 == 0:
            st = E.evaluate(st.p)
    if st.value <= tol:
        st = E.evaluate(st.p)
    return st.p, k, note
