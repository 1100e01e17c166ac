r"""The 1D Newton step in the potential from the symmetric quasi-definite saddle-point
form of its system, solved by a banded :math:`LDL^\top` factorisation at any grid size.

The Newton step :math:`\nabla^2_\varphi E\,\delta = L_w g`, :math:`\nabla^2_\varphi E =
\alpha_1 L_w + L_w X L_w`, :math:`X = \operatorname{diag}(c) + \alpha_3 A`
(:math:`c = (\alpha_2 + \nu)/p > 0`), is written in the unknowns :math:`(s, \delta)`:

.. math::

    \begin{pmatrix} X & \alpha_1 I \\ \alpha_1 I & -\alpha_1 L_w \end{pmatrix}
    \begin{pmatrix} s \\ \delta \end{pmatrix}
    = \begin{pmatrix} g \\ 0 \end{pmatrix}

(the second row says :math:`s = L_w\delta`; :math:`L_w` applied to the first gives the
Newton system, and a constant added to :math:`g` shifts :math:`\delta` by a constant
only, so no mass or gauge constraint is needed). The matrix is *quasi-definite*:
:math:`X` is positive definite and the Schur complement :math:`-\alpha_1 L_w -
\alpha_1^2 X^{-1}` negative definite, so it is nonsingular for :math:`\alpha_1 > 0` and
has an :math:`LDL^\top` factorisation in any symmetric ordering without pivoting
(Vanderbei 1995; its stability: Gill, Saunders and Shinnerl 1996). Its entries are of
size :math:`\alpha_3 n^2` and :math:`n^2 w`, where the :math:`\varphi`-space Hessian's
are their products (condition :math:`\sim n^6` with a Dirichlet term, whose banded
Cholesky loses its pivots beyond a few thousand points).

*Ordering.* The periodic line is folded (nodes :math:`0, n-1, 1, n-2, \dots`), so that
every neighbour, the wrap-around included, is at most two positions away, and each
node's :math:`(s_i, \delta_i)` are interleaved: a symmetric band of half-width 4, no
corner corrections, :math:`O(n)` work.
"""

import numba as nb
import numpy as np

__all__ = ["HALF_WIDTH", "fold", "saddle_band", "band_ldlt", "band_ldlt_back", "saddle_solve"]

_JIT = dict(cache=True, nogil=True, error_model="numpy")

#: The half-width of the folded, interleaved saddle-point band.
HALF_WIDTH = 4


@nb.njit(**_JIT)
def fold(n):
    """The folded position of each node of a periodic line of ``n`` points: nodes
    ``0, n-1, 1, n-2, ...`` take positions ``0, 1, 2, 3, ...``."""
    pos = np.empty(n, dtype=np.int64)
    half = (n + 1) // 2
    for i in range(half):
        pos[i] = 2 * i
    for i in range(half, n):
        pos[i] = 2 * (n - 1 - i) + 1
    return pos


@nb.njit(**_JIT)
def _put(low, row, col, value):
    """``K[row, col] = value`` into the lower band (``low[j, k] = K[j, j - k]``)."""
    if row >= col:
        low[row, row - col] += value


@nb.njit(**_JIT)
def saddle_band(c, w, a1, a3, n, pos, low):
    """Write the lower band of the saddle-point matrix (module docstring) into ``low``
    (zeros, shape ``(2n, HALF_WIDTH + 1)``, ``low[j, k] = K[j, j - k]``); unknown
    ``s_i`` is ``2 pos[i]``, ``delta_i`` is ``2 pos[i] + 1``. ``n >= 5``."""
    n2 = float(n) * float(n)
    off = -a3 * n2
    for i in range(n):
        ip = i + 1 if i < n - 1 else 0
        rs = 2 * pos[i]
        rd = rs + 1
        sp = 2 * pos[ip]
        # the X block, a1 I and -a1 L_w; each edge (i, i+1) once, both orders tried
        _put(low, rs, rs, c[i] - 2.0 * off)
        _put(low, rd, rs, a1)
        _put(low, rd, rd, -a1 * n2 * (w[i - 1 if i > 0 else n - 1] + w[i]))
        if off != 0.0:
            _put(low, rs, sp, off)
            _put(low, sp, rs, off)
        e = a1 * n2 * w[i]
        _put(low, rd, sp + 1, e)
        _put(low, sp + 1, rd, e)


@nb.njit(**_JIT)
def band_ldlt(low, x):
    """``K = L D L^T`` of a symmetric band of half-width :data:`HALF_WIDTH` in place,
    without pivoting (``low[j, k] = K[j, j - k]`` becomes ``L[j, j - k]``, ``k > 0``,
    and ``D[j]``, ``k = 0``), with the forward substitution ``x <- L^-1 x`` in the same
    sweep. Returns ``False`` at a zero or non-finite pivot."""
    m = low.shape[0]
    b = HALF_WIDTH  # (a compile-time constant: the loops unroll)
    u = np.empty(b + 1)  # u[t] = L[j, j - t] D[j - t]
    for j in range(m):
        top = min(b, j)
        for k in range(top, 0, -1):  # column i = j - k, left to right
            i = j - k
            v = low[j, k]
            for t in range(k + 1, top + 1):  # columns j - t < i (t - k < b)
                v -= u[t] * low[i, t - k]
            u[k] = v
            low[j, k] = v / low[i, 0]
        d = low[j, 0]
        y = x[j]
        for k in range(1, top + 1):
            d -= u[k] * low[j, k]
            y -= low[j, k] * x[j - k]
        if not (d != 0.0 and np.isfinite(d)):
            return False
        low[j, 0] = d
        x[j] = y
    return True


@nb.njit(**_JIT)
def band_ldlt_back(low, x):
    """``x <- L^-T D^-1 x`` with the factors of :func:`band_ldlt` (after its forward
    sweep, this solves ``K y = x``)."""
    m = low.shape[0]
    b = HALF_WIDTH
    for j in range(m - 1, -1, -1):
        v = x[j] / low[j, 0]
        for k in range(1, min(b, m - 1 - j) + 1):
            v -= low[j + k, k] * x[j + k]
        x[j] = v


@nb.njit(**_JIT)
def _solve(c, w, a1, a3, g, pos, delta):
    n = g.shape[0]
    low = np.zeros((2 * n, HALF_WIDTH + 1))
    saddle_band(c, w, a1, a3, n, pos, low)
    x = np.zeros(2 * n)
    for i in range(n):
        x[2 * pos[i]] = g[i]
    if not band_ldlt(low, x):
        return False
    band_ldlt_back(low, x)
    mean = 0.0
    for i in range(n):
        delta[i] = x[2 * pos[i] + 1]
        mean += delta[i]
    mean /= n
    for i in range(n):
        delta[i] -= mean
    return True


def saddle_solve(c, w, a1, a3, g, pos=None):
    r"""The potential step :math:`\delta` (zero mean) of :math:`(\alpha_1 L_w + L_w X
    L_w)\delta = L_w g` on a periodic line, :math:`X = \operatorname{diag}(c) +
    \alpha_3 A`, by the saddle-point system (module docstring), or ``None`` at a zero
    pivot.

    Parameters
    ----------
    c : ndarray, shape (n,)
        The diagonal :math:`(\alpha_2 + \nu)/p` (positive, or zeros without a KL term
        when ``a3 > 0``).
    w : ndarray, shape (n,)
        The weight of :math:`L_w` (positive).
    a1, a3 : float
        The :math:`H^{-1}` weight (must be positive) and the Dirichlet weight.
    g : ndarray, shape (n,)
        The density gradient.
    pos : ndarray of int, optional
        :func:`fold` ``(n)``, if already made.
    """
    if not a1 > 0:
        raise ValueError(f"saddle_solve needs a1 > 0 (the H^-1 weight), got {a1}")
    n = g.shape[0]
    if n < 5:
        raise ValueError(f"saddle_solve needs n >= 5 points, got {n}")
    if pos is None:
        pos = fold(n)
    delta = np.empty(n)
    ok = _solve(np.ascontiguousarray(c, dtype=float).reshape(-1),
                np.ascontiguousarray(w, dtype=float).reshape(-1), float(a1), float(a3),
                np.ascontiguousarray(g, dtype=float).reshape(-1), pos, delta)
    return delta if ok else None
