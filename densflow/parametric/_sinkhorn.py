"""Log-domain Sinkhorn iterations (numba, one thread)."""

import numba
import numpy as np


@numba.njit(cache=True)
def _softmin_rows(C, h, eps, out):
    # out_i = -eps log sum_j exp((h_j - C_ij)/eps), stabilised by the row maximum
    n, m = C.shape
    for i in range(n):
        mx = -np.inf
        for j in range(m):
            t = (h[j] - C[i, j]) / eps
            if t > mx:
                mx = t
        acc = 0.0
        for j in range(m):
            acc += np.exp((h[j] - C[i, j]) / eps - mx)
        out[i] = -eps * (mx + np.log(acc))


@numba.njit(cache=True)
def _softmin_cols(C, h, eps, out):
    n, m = C.shape
    for j in range(m):
        mx = -np.inf
        for i in range(n):
            t = (h[i] - C[i, j]) / eps
            if t > mx:
                mx = t
        acc = 0.0
        for i in range(n):
            acc += np.exp((h[i] - C[i, j]) / eps - mx)
        out[j] = -eps * (mx + np.log(acc))


@numba.njit(cache=True)
def sinkhorn_log(C, loga, logb, eps, tol, max_iter):
    """Potentials ``(f, g, n_iter, err)`` of entropic OT with cost ``C`` and weights
    ``exp(loga)``, ``exp(logb)``; ``err`` is the last sup-norm change of ``f`` and ``g``."""
    n, m = C.shape
    f = np.zeros(n)
    g = np.zeros(m)
    fn = np.empty(n)
    gn = np.empty(m)
    err = np.inf
    it = 0
    while it < max_iter:
        it += 1
        _softmin_rows(C, g + eps * logb, eps, fn)
        _softmin_cols(C, fn + eps * loga, eps, gn)
        err = 0.0
        for i in range(n):
            err = max(err, abs(fn[i] - f[i]))
            f[i] = fn[i]
        for j in range(m):
            err = max(err, abs(gn[j] - g[j]))
            g[j] = gn[j]
        if err <= tol:
            break
    return f, g, it, err


@numba.njit(cache=True)
def sinkhorn_log_symmetric(C, loga, eps, tol, max_iter):
    """Potential ``(f, n_iter, err)`` of the symmetric problem OT(α, α) by the averaged
    update ``f ← (f + T f)/2`` (plain alternation oscillates here)."""
    n = C.shape[0]
    f = np.zeros(n)
    fn = np.empty(n)
    err = np.inf
    it = 0
    while it < max_iter:
        it += 1
        _softmin_rows(C, f + eps * loga, eps, fn)
        err = 0.0
        for i in range(n):
            new = 0.5 * (f[i] + fn[i])
            err = max(err, abs(new - f[i]))
            f[i] = new
        if err <= tol:
            break
    return f, it, err
