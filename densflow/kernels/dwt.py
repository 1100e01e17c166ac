"""numba kernels of the periodized orthogonal DWT and its inverse, 1D and separable 2D.

Convention of PyWavelets' ``mode="periodization"``: one analysis step on ``x[:m]`` is

    a[k] = sum_j lo[j] x[(2k + F/2 - j) mod m],   d[k] = sum_j hi[j] x[(2k + F/2 - j) mod m]

(``F`` the filter length), written to ``[a | d]``; synthesis is its adjoint (= inverse).
Layout: 1D ``[cA_L | cD_L | ... | cD_1]``; 2D the ``m x m`` top-left corner holds the
next coarser level and, at a level of size ``h = m/2``, the quadrants ``[:h, h:]``,
``[h:, :h]`` and ``[h:, h:]`` hold the coefficients of type (approximation, detail),
(detail, approximation) and (detail, detail) along (axis 0, axis 1).

Every inner loop runs over a contiguous slice, so LLVM vectorises it:

* along a contiguous axis the step is done in *polyphase* form: with the even and odd
  samples ``E[u] = x[2u - F]``, ``O[u] = x[2u + 1 - F]`` (indices mod ``m``, the wrap
  resolved once into a short extended copy), tap ``j`` of the analysis adds
  ``lo[j] * X_j[k + q_j]`` for all ``k`` at once (``X_j`` is ``E`` or ``O``); synthesis
  gathers the even and odd outputs the same way from periodically extended ``a``, ``d``;
* along axis 0 of a 2D array a tap adds a whole row: ``a[k, :] += lo[j] * x[i, :]``.

The sums are those of the textbook loops in another order (rounding level).
"""

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True)

#: Outputs per chunk of the contiguous-axis steps (keeps the chunk in L1).
CHUNK = 512


@nb.njit(**_JIT)
def _periodic_copy(c, h, shift, out):
    # out[t] = c[(t - shift) mod h] for t < out.size (the modulo only at the ends)
    L = out.shape[0]
    t = 0
    while t < L and t < shift:
        out[t] = c[(t - shift) % h]
        t += 1
    stop = min(L, shift + h)
    for u in range(t, stop):  # a loop, not a slice copy: no shape-check error path to compile
        out[u] = c[u - shift]
    for t in range(stop, L):
        out[t] = c[(t - shift) % h]


@nb.njit(**_JIT)
def _deinterleave(x, h, shift, E, O):
    # E[u] = x[2 v], O[u] = x[2 v + 1] with v = (u - shift) mod h
    L = E.shape[0]
    for u in range(L):
        if u < shift or u >= shift + h:
            v = (u - shift) % h
            E[u] = x[2 * v]
            O[u] = x[2 * v + 1]
    for v in range(min(h, L - shift)):
        E[shift + v] = x[2 * v]
        O[shift + v] = x[2 * v + 1]


@nb.njit(**_JIT)
def _analysis_contiguous(x, m, lo, hi, out, E, O):
    # a = out[:m/2], d = out[m/2:m] from x[:m]; E, O: work arrays of length m/2 + F
    F = lo.shape[0]
    h = m // 2
    sh = F // 2
    _deinterleave(x, h, sh, E[:h + F], O[:h + F])
    for k0 in range(0, h, CHUNK):
        k1 = min(h, k0 + CHUNK)
        a = out[k0:k1]
        d = out[h + k0:h + k1]
        a[:] = 0.0
        d[:] = 0.0
        for j in range(F):
            c = sh + F - j          # x[2k + F/2 - j] = (E or O)[k + c // 2]
            q = c >> 1
            src = E[k0 + q:k1 + q] if c % 2 == 0 else O[k0 + q:k1 + q]
            lj = lo[j]
            hj = hi[j]
            for k in range(k1 - k0):
                v = src[k]
                a[k] += lj * v
                d[k] += hj * v


@nb.njit(**_JIT)
def _synthesis_contiguous(c, m, lo, hi, out, A, D, Ye, Yo):
    # out[:m] = adjoint of the analysis step applied to c[:m]
    # A, D: length m/2 + 2F; Ye, Yo: work arrays of length min(m/2, CHUNK)
    F = lo.shape[0]
    h = m // 2
    sh = F // 2
    P = F
    # one block of c at a time (slices of the same type: one compiled version)
    _periodic_copy(c[0:h], h, P, A[:h + 2 * P])
    _periodic_copy(c[h:2 * h], h, P, D[:h + 2 * P])
    for w0 in range(0, h, CHUNK):
        w1 = min(h, w0 + CHUNK)
        ye = Ye[:w1 - w0]
        yo = Yo[:w1 - w0]
        ye[:] = 0.0
        yo[:] = 0.0
        for j in range(F):
            cj = sh + F - j
            q = cj >> 1
            # output 2w (cj even) or 2w + 1 (cj odd) takes a[w + F/2 - q]
            s = sh - q + P + w0
            av = A[s:s + w1 - w0]
            dv = D[s:s + w1 - w0]
            lj = lo[j]
            hj = hi[j]
            y = ye if cj % 2 == 0 else yo
            for w in range(w1 - w0):
                y[w] += lj * av[w] + hj * dv[w]
        for w in range(w1 - w0):
            out[2 * (w0 + w)] = ye[w]
            out[2 * (w0 + w) + 1] = yo[w]


@nb.njit(**_JIT)
def dwt1(x, lo, hi, level, out):
    """Multi-level periodized DWT of ``x`` into ``out`` (pyramid layout)."""
    n = x.shape[0]
    F = lo.shape[0]
    for i in range(n):
        out[i] = x[i]
    E = np.empty(n // 2 + F)
    O = np.empty(n // 2 + F)
    m = n
    for _ in range(level):  # in place: the step reads x[:m] only through E and O
        _analysis_contiguous(out, m, lo, hi, out, E, O)
        m //= 2


@nb.njit(**_JIT)
def idwt1(c, lo, hi, level, out):
    """Inverse of :func:`dwt1`."""
    n = c.shape[0]
    F = lo.shape[0]
    for i in range(n):
        out[i] = c[i]
    A = np.empty(n // 2 + 2 * F)
    D = np.empty(n // 2 + 2 * F)
    Ye = np.empty(min(n // 2, CHUNK))
    Yo = np.empty(min(n // 2, CHUNK))
    m = n >> level
    for _ in range(level):
        m *= 2
        # in place: the step reads c[:m] only through A and D
        _synthesis_contiguous(out, m, lo, hi, out, A, D, Ye, Yo)


@nb.njit(**_JIT)
def _analysis_axis0(x, m, lo, hi, out):
    # rows out[:m/2, :m] = approximation, out[m/2:m, :m] = detail of x[:m, :m] along axis 0
    F = lo.shape[0]
    h = m // 2
    sh = F // 2
    for k in range(h):
        a = out[k, :m]
        d = out[h + k, :m]
        a[:] = 0.0
        d[:] = 0.0
        for j in range(F):
            row = x[(2 * k + sh - j) % m, :m]
            lj = lo[j]
            hj = hi[j]
            for y in range(m):
                v = row[y]
                a[y] += lj * v
                d[y] += hj * v


@nb.njit(**_JIT)
def _synthesis_axis0(c, m, lo, hi, out):
    # out[:m, :m] = adjoint of _analysis_axis0 applied to c[:m, :m]
    F = lo.shape[0]
    h = m // 2
    sh = F // 2
    for i in range(m):
        out[i, :m] = 0.0
    for k in range(h):
        a = c[k, :m]
        d = c[h + k, :m]
        for j in range(F):
            row = out[(2 * k + sh - j) % m, :m]
            lj = lo[j]
            hj = hi[j]
            for y in range(m):
                row[y] += lj * a[y] + hj * d[y]


@nb.njit(**_JIT)
def dwt2(x, lo, hi, level, out):
    """Multi-level separable periodized DWT of a square array (pyramid layout)."""
    n = x.shape[0]
    F = lo.shape[0]
    t = np.empty((n, n))
    E = np.empty(n // 2 + F)
    O = np.empty(n // 2 + F)
    for i in range(n):
        for j in range(n):
            out[i, j] = x[i, j]
    m = n
    for _ in range(level):
        for i in range(m):  # axis 1, row by row
            _analysis_contiguous(out[i], m, lo, hi, t[i], E, O)
        _analysis_axis0(t, m, lo, hi, out)
        m //= 2


@nb.njit(**_JIT)
def idwt2(c, lo, hi, level, out):
    """Inverse of :func:`dwt2`."""
    n = c.shape[0]
    F = lo.shape[0]
    t = np.empty((n, n))
    A = np.empty(n // 2 + 2 * F)
    D = np.empty(n // 2 + 2 * F)
    Ye = np.empty(min(n // 2, CHUNK))
    Yo = np.empty(min(n // 2, CHUNK))
    for i in range(n):
        for j in range(n):
            out[i, j] = c[i, j]
    m = n >> level
    for _ in range(level):
        m *= 2
        _synthesis_axis0(out, m, lo, hi, t)
        for i in range(m):
            _synthesis_contiguous(t[i], m, lo, hi, out[i], A, D, Ye, Yo)
