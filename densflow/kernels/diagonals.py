"""numba kernels for the diagonals ``H1 p`` and ``H2 p`` of the combined metric.

Each block of the pyramid layout is a strided circular correlation
``out[k] = sum_i w[i] p[(t0 + r k + i) mod n]`` with a compactly supported window
``w`` (``w**2`` and ``(D w)**2`` of a scaling function or wavelet; see
:mod:`densflow.core.wavelets`). The loops are written so that LLVM vectorises them:

* the wrap-around is removed by a periodically extended copy of ``p``, and every inner
  loop runs over slices (no index arithmetic, hence no bounds or wrap branches);
* the reductions may be reassociated (``fastmath={"reassoc", "contract"}``: no
  assumption about NaN or infinity), which changes the sums at rounding level only;
* in 1D the finest blocks (stride ``r <= PHASE_STRIDE``, windows of 9 or 23 taps for
  db4) are vectorised across outputs instead: on the phases ``T[b, u] = p[t0 + b + r u]``
  tap ``i`` adds ``w[i] T[i mod r, k + i div r]`` to every output ``k`` at once;
* in 1D the coarse blocks (stride ``r >= TILED_STRIDE``, windows of about ``7 r`` taps)
  are computed as a tiled matrix product: with ``P[c, b] = p[t0 + r c + b]`` and
  ``W[a, b] = w[r a + b]``, ``out[k] = sum_a (P W^T)[k + a, a]``, so a tile of the
  window is read from memory once per block instead of once per output;
* in 2D the axis-0 pass runs over whole rows (``out[k, :] += w[i] * q[row, :]``, the
  contiguous axis innermost).
"""

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, fastmath={"reassoc", "contract"})

#: 1D blocks with at least this stride use the tiled product (measured: 64 and tiles
#: of 1024 columns were best at 2^16 and 2^20 points on the 2-core target machine).
TILED_STRIDE = 64
TILE = 1024
#: 1D blocks with at most this stride are vectorised across outputs on their phases
#: (measured: 1.3-1.9x at stride 2, 1.1-1.5x at 4, slower at 8, from n = 512 to 2^16).
PHASE_STRIDE = 4
#: Outputs per chunk of those blocks.
CHUNK = 512


@nb.njit(**_JIT)
def _extended(p, extra):
    n = p.shape[0]
    pe = np.empty(n + extra)
    for i in range(n):  # loops, not slice copies: no shape-check error path to compile
        pe[i] = p[i]
    for i in range(extra):
        pe[n + i] = p[i % n]
    return pe


@nb.njit(**_JIT)
def _dot4(pe, b0, b1, b2, b3, w1, w2):
    # (w1.pe[b0:], ..., w1.pe[b3:], w2.pe[b0:], ..., w2.pe[b3:]) over len(w1) entries
    S = w1.shape[0]
    p0 = pe[b0:b0 + S]
    p1 = pe[b1:b1 + S]
    p2 = pe[b2:b2 + S]
    p3 = pe[b3:b3 + S]
    a0 = a1 = a2 = a3 = 0.0
    d0 = d1 = d2 = d3 = 0.0
    for i in range(S):
        x = w1[i]
        y = w2[i]
        a0 += x * p0[i]
        a1 += x * p1[i]
        a2 += x * p2[i]
        a3 += x * p3[i]
        d0 += y * p0[i]
        d1 += y * p1[i]
        d2 += y * p2[i]
        d3 += y * p3[i]
    return (a0, a1, a2, a3, d0, d1, d2, d3)


@nb.njit(**_JIT)
def _dot2(pe, b0, b1, w1, w2):
    # (w1.pe[b0:], w1.pe[b1:], w2.pe[b0:], w2.pe[b1:]) over len(w1) entries
    S = w1.shape[0]
    p0 = pe[b0:b0 + S]
    p1 = pe[b1:b1 + S]
    a0 = a1 = 0.0
    d0 = d1 = 0.0
    for i in range(S):
        x = w1[i]
        y = w2[i]
        a0 += x * p0[i]
        a1 += x * p1[i]
        d0 += y * p0[i]
        d1 += y * p1[i]
    return (a0, a1, a0, a1, d0, d1, d0, d1)


@nb.njit(**_JIT)
def _phase_block(pe, t0, r, m, w1, w2, out1, out2):
    # out[k] = sum_i w[i] pe[t0 + r k + i] for a small stride r, vectorised across k:
    # on the phases T[b, u] = pe[t0' + b + r u] (t0' = t0 mod r, u taken mod m) tap i
    # adds w[i] T[i mod r, k' + i div r] to the output k' = k + t0 div r
    S = w1.shape[0]
    A = (S + r - 1) // r
    t0p = t0 % r
    shift = t0 // r
    T = np.empty((r, m + A))
    for b in range(r):
        row = T[b]
        for u in range(m):
            row[u] = pe[t0p + b + r * u]
        for u in range(A):
            row[m + u] = row[u % m]
    res1 = np.empty(m)
    res2 = np.empty(m)
    for k0 in range(0, m, CHUNK):
        c = min(m, k0 + CHUNK) - k0
        a1 = res1[k0:k0 + c]
        a2 = res2[k0:k0 + c]
        a1[:] = 0.0
        a2[:] = 0.0
        for i in range(S):
            a = i // r
            src = T[i - a * r, k0 + a:k0 + a + c]
            x = w1[i]
            y = w2[i]
            for k in range(c):
                v = src[k]
                a1[k] += x * v
                a2[k] += y * v
    for k in range(m):
        kk = k + shift
        if kk >= m:
            kk -= m
        out1[k] = res1[kk]
        out2[k] = res2[kk]


@nb.njit(**_JIT)
def diagonals_1d(p, offsets, strides, t0s, starts, lengths, wsq, wdsq, h1, h2, need_h1, need_h2):
    """All blocks of :meth:`WaveletBasis.diagonals` in 1D in one call.

    Block ``b`` fills ``h[offsets[b]:offsets[b+1]]`` with strided correlations of ``p``
    with the windows ``w[starts[b]:starts[b]+lengths[b]]`` (``wdsq`` gives ``h1``,
    ``wsq`` gives ``h2``).
    """
    _blocks_1d(_extended(p, lengths.max()), p.shape[0], offsets, strides, t0s, starts,
               lengths, wsq, wdsq, h1, h2, need_h1, need_h2, False, False)


@nb.njit(**_JIT)
def _blocks_1d(pe, n, offsets, strides, t0s, starts, lengths, wsq, wdsq, h1, h2, need_h1,
               need_h2, chunked_phases, two_row_dots):
    # the blocks of diagonals_1d from pe, a periodically extended copy of a density of
    # n points (pe[n + i] = pe[i mod n]; at least PHASE_EXTRA more with chunked_phases);
    # the torus passes False, False (its sums in their original order)
    for b in range(strides.shape[0]):
        r = strides[b]
        t0 = t0s[b]
        s0 = starts[b]
        S = lengths[b]
        o = offsets[b]
        m = offsets[b + 1] - o
        out1 = np.zeros(m)
        out2 = np.zeros(m)
        if r <= PHASE_STRIDE:
            if chunked_phases:
                _phase_block_chunked(pe, t0 % n, r, m, wdsq[s0:s0 + S], wsq[s0:s0 + S], out1,
                                     out2)
            else:
                _phase_block(pe, t0 % n, r, m, wdsq[s0:s0 + S], wsq[s0:s0 + S], out1, out2)
        elif r < TILED_STRIDE:
            w1 = wdsq[s0:s0 + S]
            w2 = wsq[s0:s0 + S]
            k = 0
            while k < m:  # four outputs per pass over the window (registers, not L1)
                q = min(4, m - k)
                b0 = (t0 + r * k) % n
                b1 = (t0 + r * (k + 1 if q > 1 else k)) % n
                b2 = (t0 + r * (k + 2 if q > 2 else k)) % n
                b3 = (t0 + r * (k + 3 if q > 3 else k)) % n
                c = _dot4(pe, b0, b1, b2, b3, w1, w2)
                for u in range(q):
                    out1[k + u] = c[u]
                    out2[k + u] = c[4 + u]
                k += q
        else:
            A = (S + r - 1) // r
            for c0 in range(0, r, TILE):
                c1 = min(r, c0 + TILE)
                row = 0
                while row < m:  # four rows per pass over a window tile
                    q = min(4, m - row)
                    b0 = (t0 + r * row) % n + c0
                    b1 = (t0 + r * (row + 1 if q > 1 else row)) % n + c0
                    b2 = (t0 + r * (row + 2 if q > 2 else row)) % n + c0
                    b3 = (t0 + r * (row + 3 if q > 3 else row)) % n + c0
                    for a in range(A):
                        lo = a * r + c0
                        hi = min(a * r + c1, S)
                        if hi <= lo:
                            continue
                        if two_row_dots and q <= 2:  # a deep basis's coarsest blocks
                            c = _dot2(pe, b0, b1, wdsq[s0 + lo:s0 + hi], wsq[s0 + lo:s0 + hi])
                        else:
                            c = _dot4(pe, b0, b1, b2, b3, wdsq[s0 + lo:s0 + hi],
                                      wsq[s0 + lo:s0 + hi])
                        for u in range(q):
                            k = row + u - a
                            while k < 0:
                                k += m
                            out1[k] += c[u]
                            out2[k] += c[4 + u]
                    row += q
        if need_h1:
            for y in range(m):
                h1[o + y] = out1[y]
        if need_h2:
            for y in range(m):
                h2[o + y] = out2[y]


@nb.njit(**_JIT)
def _block(blk, m):
    """``(ta, tb, r0, c0)`` of block ``blk`` of a 2D level with ``m`` coefficients per
    axis: the row and column filters (0 scaling, 1 wavelet) and the block's corner."""
    if blk == 0:
        return 0, 1, 0, m      # scaling x wavelet
    if blk == 1:
        return 1, 0, m, 0      # wavelet x scaling
    if blk == 2:
        return 1, 1, m, m      # wavelet x wavelet
    return 0, 0, 0, 0          # scaling x scaling (coarsest level)


@nb.njit(**_JIT)
def diagonals_2d(p, level, t0s, starts, lengths, wsq, wdsq, h1, h2, need_h1, need_h2):
    """All blocks of :meth:`WaveletBasis.diagonals` in 2D in one call.

    Factor ``f = 2 (j - 1) + t`` (``t = 0`` scaling function, ``t = 1`` wavelet of level
    ``j``) has the windows ``w[starts[f]:starts[f] + lengths[f]]`` starting at grid
    point ``t0s[f]``. Per level an axis-1 pass correlates every row of ``p`` with the
    four kernels (``f**2`` and ``(Df)**2`` of both factors); an axis-0 pass then gives
    the blocks of that level in the pyramid layout.
    """
    n = p.shape[0]
    extra = lengths.max()
    pe = np.empty((n, n + extra))
    for x in range(n):
        pe[x] = _extended(p[x], extra)
    for j in range(1, level + 1):
        r = 1 << j
        m = n >> j
        q = np.empty((4, n, m))  # (phi sq, phi dsq, psi sq, psi dsq) along axis 1
        for t in range(2):
            f = 2 * (j - 1) + t
            s0 = starts[f]
            S = lengths[f]
            w2 = wsq[s0:s0 + S]
            w1 = wdsq[s0:s0 + S]
            for x in range(n):
                row = pe[x]
                for k in range(m):
                    base = (t0s[f] + r * k) % n
                    pv = row[base:base + S]
                    a = 0.0
                    b = 0.0
                    for i in range(S):
                        v = pv[i]
                        a += w2[i] * v
                        b += w1[i] * v
                    q[2 * t, x, k] = a
                    q[2 * t + 1, x, k] = b
        acc1 = np.empty(m)
        acc2 = np.empty(m)
        nblocks = 4 if j == level else 3
        for blk in range(nblocks):
            ta, tb, r0, c0 = _block(blk, m)
            f = 2 * (j - 1) + ta
            s0 = starts[f]
            S = lengths[f]
            qs = q[2 * tb]
            qd = q[2 * tb + 1]
            for k in range(m):
                start = (t0s[f] + r * k) % n
                acc1[:] = 0.0
                acc2[:] = 0.0
                for i in range(S):
                    row = start + i
                    if row >= n:
                        row -= n
                    ws = wsq[s0 + i]
                    wd = wdsq[s0 + i]
                    qsr = qs[row]
                    qdr = qd[row]
                    for y in range(m):
                        acc2[y] += ws * qsr[y]
                        acc1[y] += wd * qsr[y] + ws * qdr[y]
                if need_h2:
                    for y in range(m):
                        h2[r0 + k, c0 + y] = acc2[y]
                if need_h1:
                    for y in range(m):
                        h1[r0 + k, c0 + y] = acc1[y]


# -- the no-flux box: the reflected basis's diagonals from the box's own cells ----------
@nb.njit(**_JIT)
def _add_four_taps(a, b, v0, v1, v2, v3, x0, x1, x2, x3, y0, y1, y2, y3):
    # a += x0 v0 + ... + x3 v3, b += y0 v0 + ... + y3 v3 (four taps per pass: fewer stores)
    for k in range(a.shape[0]):
        u0 = v0[k]
        u1 = v1[k]
        u2 = v2[k]
        u3 = v3[k]
        a[k] += x0 * u0 + x1 * u1 + x2 * u2 + x3 * u3
        b[k] += y0 * u0 + y1 * u1 + y2 * u2 + y3 * u3


#: Extension of the reflected density beyond one period for the chunked phase blocks
#: (a chunk starting anywhere in the period reads ``PHASE_STRIDE * CHUNK`` points past
#: its window).
PHASE_EXTRA = PHASE_STRIDE * (CHUNK + 2)


@nb.njit(**_JIT)
def _phase_block_chunked(pe, t0, r, m, w1, w2, out1, out2):
    # _phase_block with the phases built per chunk of CHUNK outputs (L1-sized) instead of
    # for the whole block (2n/r points per phase: beyond the L2 cache at 2n = 2^18), four
    # taps per pass over a chunk's outputs; pe must extend PHASE_EXTRA past the windows
    S = w1.shape[0]
    A = (S + r - 1) // r
    T = np.empty((r, CHUNK + A))
    a1 = np.empty(CHUNK)
    a2 = np.empty(CHUNK)
    for k0 in range(0, m, CHUNK):
        c = min(m, k0 + CHUNK) - k0
        base = (t0 + r * k0) % (r * m)
        for b in range(r):
            row = T[b]
            for u in range(c + A):
                row[u] = pe[base + b + r * u]
        for k in range(c):
            a1[k] = 0.0
            a2[k] = 0.0
        i = 0
        while i + 4 <= S:
            q0 = i // r
            s0 = T[i - q0 * r, q0:q0 + c]
            q1 = (i + 1) // r
            s1 = T[i + 1 - q1 * r, q1:q1 + c]
            q2 = (i + 2) // r
            s2 = T[i + 2 - q2 * r, q2:q2 + c]
            q3 = (i + 3) // r
            s3 = T[i + 3 - q3 * r, q3:q3 + c]
            _add_four_taps(a1[:c], a2[:c], s0, s1, s2, s3, w1[i], w1[i + 1], w1[i + 2],
                           w1[i + 3], w2[i], w2[i + 1], w2[i + 2], w2[i + 3])
            i += 4
        while i < S:
            q0 = i // r
            s0 = T[i - q0 * r, q0:q0 + c]
            x0 = w1[i]
            y0 = w2[i]
            for k in range(c):
                a1[k] += x0 * s0[k]
                a2[k] += y0 * s0[k]
            i += 1
        for k in range(c):
            out1[k0 + k] = a1[k]
            out2[k0 + k] = a2[k]
