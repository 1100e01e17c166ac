"""numba kernels for the no-flux box's combined-metric diagonals: those of the even
reflection's periodic basis (:mod:`densflow.core.box_wavelets`) computed from the box's
own cells, the reflected density never formed in 2D and built in one pass in 1D. The
block loops are those of :mod:`densflow.kernels.diagonals`."""

import numba as nb
import numpy as np

from .diagonals import _JIT, PHASE_EXTRA, PHASE_STRIDE, _add_four_taps, _block, _blocks_1d

__all__ = ["reflected_diagonals_1d", "reflected_diagonals_2d", "CHUNKED_PHASES_MIN",
           "COLUMN_CHUNK"]

@nb.njit(**_JIT)
def _reflected_extended(p, extra):
    """``P[y] = p[y mod 2n]`` mirrored (``P[2n - 1 - x] = p[x]``) for ``y < 2n + extra``:
    the even reflection of the box density ``p``, periodically extended, in one pass."""
    n = p.shape[0]
    m2 = 2 * n
    pe = np.empty(m2 + extra)
    for x in range(n):
        v = p[x]
        pe[x] = v
        pe[m2 - 1 - x] = v
    for i in range(extra):
        pe[m2 + i] = pe[i % m2]
    return pe


#: Reflected grids of at least this many points build the phases per chunk.
CHUNKED_PHASES_MIN = 1 << 16


@nb.njit(**_JIT)
def reflected_diagonals_1d(p, offsets, strides, t0s, starts, lengths, wsq, wdsq, h1, h2,
                           need_h1, need_h2):
    """:func:`diagonals_1d` of the even reflection (``2n`` points) of the box density
    ``p`` (``n`` points), its periodic extension built in one pass from ``p``. From
    ``2n =`` :data:`CHUNKED_PHASES_MIN` on, the blocks of stride at most
    :data:`PHASE_STRIDE` build their phases per chunk of outputs
    (:func:`densflow.kernels.diagonals._phase_block_chunked`): at ``2n = 2^18`` a whole block's phases no longer fit
    the L2 cache."""
    m2 = 2 * p.shape[0]
    chunked = m2 >= CHUNKED_PHASES_MIN
    extra = lengths.max() + (PHASE_EXTRA if chunked else 0)
    _blocks_1d(_reflected_extended(p, extra), m2, offsets, strides, t0s, starts, lengths, wsq,
               wdsq, h1, h2, need_h1, need_h2, chunked, True)


@nb.njit(**_JIT)
def _mirror(row, n):
    """The box row of the reflected grid's row ``row`` (taken mod ``2n``)."""
    row %= 2 * n
    return row if row < n else 2 * n - 1 - row


@nb.njit(**_JIT)
def _reflected_columns(p, extra):
    """``PT[y, x] = P[x, y mod 2n]`` for ``y < 2n + extra`` and ``x < n``: the even
    reflection ``P`` of the box density ``p`` transposed, on the box's rows only
    (transposed in 32 x 32 tiles: a column-by-column gather thrashes the cache at 512^2)."""
    n = p.shape[0]
    m2 = 2 * n
    PT = np.empty((m2 + extra, n))
    T = 32
    for x0 in range(0, n, T):
        x1 = min(n, x0 + T)
        for y0 in range(0, n, T):
            y1 = min(n, y0 + T)
            for y in range(y0, y1):
                for x in range(x0, x1):
                    PT[y, x] = p[x, y]
    for y in range(n, m2 + extra):
        yy = y % m2
        src = yy if yy < n else m2 - 1 - yy
        for x in range(n):
            PT[y, x] = PT[src, x]
    return PT


#: Outputs of the axis-1 pass per chunk in :func:`reflected_diagonals_2d` (the working
#: set of a chunk, ``8 * 4 * 2 * COLUMN_CHUNK * n`` bytes, stays in the L2 cache;
#: measured at 256^2 in a run: 7.5 ms per call unchunked, see docs/boxes.rst).
COLUMN_CHUNK = 64


@nb.njit(**_JIT)
def reflected_diagonals_2d(p, level, t0s, starts, lengths, wsq, wdsq, h1, h2, need_h1, need_h2):
    """:func:`diagonals_2d` of the even reflection ``P`` (``2n x 2n``) of the box
    density ``p`` (``n x n``), without forming ``P``.

    ``P`` is symmetric about the walls, so the axis-1 pass is needed on the box's ``n``
    rows only (rows ``x`` and ``2n - 1 - x`` of ``P`` are equal) and the axis-0 pass
    reads row ``2n - 1 - x`` as row ``x``. The axis-1 pass runs on the transpose: for an
    output ``k`` and a tap ``i`` it adds ``w[i]`` times a whole row of ``P``'s transpose
    (contiguous, vectorised), not a window dot product per row. Both passes run on
    chunks of :data:`COLUMN_CHUNK` axis-1 outputs.
    """
    n = p.shape[0]
    m2 = 2 * n
    PT = _reflected_columns(p, lengths.max())
    CH = COLUMN_CHUNK
    qt = np.empty((4, CH, n))  # (phi sq, phi dsq, psi sq, psi dsq): [output k, row x]
    q = np.empty((4, n, CH))   # the same, [row x, output k]
    acc1 = np.empty(CH)
    acc2 = np.empty(CH)
    for j in range(1, level + 1):
        r = 1 << j
        m = m2 >> j
        for k0 in range(0, m, CH):
            c = min(CH, m - k0)
            qt[:, :c, :] = 0.0
            for t in range(2):
                f = 2 * (j - 1) + t
                s0 = starts[f]
                S = lengths[f]
                for kk in range(c):
                    base = (t0s[f] + r * (k0 + kk)) % m2
                    a_out = qt[2 * t, kk]
                    b_out = qt[2 * t + 1, kk]
                    i = 0
                    while i + 4 <= S:  # four taps per pass over the outputs (fewer stores)
                        r0 = PT[base + i]
                        r1 = PT[base + i + 1]
                        r2 = PT[base + i + 2]
                        r3 = PT[base + i + 3]
                        _add_four_taps(a_out, b_out, r0, r1, r2, r3, wsq[s0 + i],
                                       wsq[s0 + i + 1], wsq[s0 + i + 2], wsq[s0 + i + 3],
                                       wdsq[s0 + i], wdsq[s0 + i + 1], wdsq[s0 + i + 2],
                                       wdsq[s0 + i + 3])
                        i += 4
                    while i < S:
                        row = PT[base + i]
                        ws = wsq[s0 + i]
                        wd = wdsq[s0 + i]
                        for x in range(n):
                            v = row[x]
                            a_out[x] += ws * v
                            b_out[x] += wd * v
                        i += 1
            for cc in range(4):
                for x in range(n):
                    for kk in range(c):
                        q[cc, x, kk] = qt[cc, kk, x]
            nblocks = 4 if j == level else 3
            for blk in range(nblocks):
                ta, tb, r0_, c0 = _block(blk, m)
                f = 2 * (j - 1) + ta
                s0 = starts[f]
                S = lengths[f]
                qs = q[2 * tb]
                qd = q[2 * tb + 1]
                for k in range(m):
                    start = t0s[f] + r * k
                    for y in range(c):
                        acc1[y] = 0.0
                        acc2[y] = 0.0
                    for i in range(S):
                        row = _mirror(start + i, n)
                        ws = wsq[s0 + i]
                        wd = wdsq[s0 + i]
                        qsr = qs[row]
                        qdr = qd[row]
                        for y in range(c):
                            acc2[y] += ws * qsr[y]
                            acc1[y] += wd * qsr[y] + ws * qdr[y]
                    if need_h2:
                        for y in range(c):
                            h2[r0_ + k, c0 + k0 + y] = acc2[y]
                    if need_h1:
                        for y in range(c):
                            h1[r0_ + k, c0 + k0 + y] = acc1[y]
