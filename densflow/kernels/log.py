"""A natural logarithm that LLVM vectorises (numba's ``np.log`` is a scalar libm call,
4-5x slower than numpy's SIMD ``log`` on long arrays).

The algorithm of fdlibm's ``e_log.c`` (error below 1 ulp): write ``x = 2^k m`` with
``m`` in ``[sqrt(2)/2, sqrt(2))`` by integer operations on the bits, ``f = m - 1``,
``s = f / (2 + f)`` and

.. math:: \\log(1 + f) = f - \\tfrac12 f^2 + s\\,(\\tfrac12 f^2 + R(s^2)),

with ``R`` fdlibm's minimax polynomial; ``log x = k \\log 2 + \\log(1 + f)`` with
``log 2`` split in two parts. Zero, negative, subnormal, infinite and NaN inputs are
passed to ``np.log`` afterwards, so every input gets numpy's answer up to rounding.
"""

import numba as nb
import numpy as np

_JIT = dict(cache=True, nogil=True, error_model="numpy")  # no zero-division branch

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_MANTISSA = 0x000FFFFFFFFFFFFF
_SQRT2_MANTISSA = 0x6A09E667F3BCD  # mantissa bits of sqrt(2)
_MIN_NORMAL = 2.2250738585072014e-308

#: Entries per block of :func:`log_into` (fits in L1 with its work arrays).
BLOCK = 256


@nb.njit(**_JIT)
def log_into(x, out, work, kk):
    """``out[i] = log(x[i])`` for 1D ``x``; ``work`` (int64) and ``kk`` (float64) are
    work arrays of at least ``len(x)`` entries."""
    n = x.shape[0]
    bits = x.view(np.int64)
    wb = work[:n]
    special = 0
    for i in range(n):
        ix = bits[i]
        expo = (ix >> 52) & 0x7FF
        mant = ix & _MANTISSA
        up = 1 if mant > _SQRT2_MANTISSA else 0  # m >= sqrt(2): use m / 2
        wb[i] = mant | ((1023 - up) << 52)
        kk[i] = expo - 1023 + up
        # zero, subnormal, infinite, NaN or negative
        special |= (expo == 0) | (expo == 0x7FF) | (ix < 0)
    m = wb.view(np.float64)
    for i in range(n):
        f = m[i] - 1.0
        k = kk[i]
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
        t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
        hfsq = 0.5 * f * f
        out[i] = k * _LN2_HI - ((hfsq - (s * (hfsq + t2 + t1) + k * _LN2_LO)) - f)
    if special:
        for i in range(n):
            v = x[i]
            if not (v >= _MIN_NORMAL and v < np.inf):
                out[i] = np.log(v)
