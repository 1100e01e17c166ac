"""numba kernels of the KL term and of line-search trials: one compiled pass over the
grid where numpy would make half a dozen (at small ``N`` the calls, not the
arithmetic, are the cost of a trial). Logarithms are taken in blocks by the
vectorised :func:`densflow.kernels.log.log_into`.

The public functions flatten their arrays (views, never copies of what they write) and
pass inputs read-only and scalars as floats, so that each compiled kernel has one
version for 1D and 2D grids alike: numba compiles once, not once per shape, layout,
write flag and scalar type."""

import numba as nb
import numpy as np

from .log import log_into

# error_model="numpy": divisions without a zero check (which stops vectorisation);
# reassociated sums (rounding level)
_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})

#: Entries per block of the logarithm (:func:`densflow.kernels.log.log_into`).
BLOCK = 256


@nb.njit(**_JIT)
def _blocks():
    return np.empty(BLOCK), np.empty(BLOCK, dtype=np.int64), np.empty(BLOCK)



@nb.njit(**_JIT)
def _kl_state(p, mu, log_ratio, gradient):
    """``log_ratio = log(p / mu)``, ``gradient = log_ratio + 1``; returns ``sum p log_ratio``."""
    pf = p
    mf = mu
    lf = log_ratio
    gf = gradient
    N = pf.shape[0]
    ratio, work, kk = _blocks()
    value = 0.0
    for b0 in range(0, N, BLOCK):
        c = min(BLOCK, N - b0)
        pb = pf[b0:b0 + c]
        mb = mf[b0:b0 + c]
        r = ratio[:c]
        for i in range(c):
            r[i] = pb[i] / mb[i]
        lb = lf[b0:b0 + c]
        log_into(r, lb, work, kk)
        gb = gf[b0:b0 + c]
        for i in range(c):
            gb[i] = lb[i] + 1.0
            value += pb[i] * lb[i]
    return value


@nb.njit(**_JIT)
def _kl_trial(p, s, eta, mu, log_ratio, q, logs, full):
    """``sum(q log(q / mu) - p log_ratio)`` at ``q = p - eta s``, entry by entry (small
    differences of large sums stay accurate); ``inf`` when some ``q <= 0``. With ``full``
    the trial point and its ``log(q / mu)`` are left in ``q`` and ``logs`` (whole arrays;
    else they are blocks of scratch)."""
    pf = p
    sf = s
    mf = mu
    lf = log_ratio
    N = pf.shape[0]
    ratio, work, kk = _blocks()
    total = 0.0
    for b0 in range(0, N, BLOCK):
        c = min(BLOCK, N - b0)
        o = b0 if full else 0
        pb = pf[b0:b0 + c]
        sb = sf[b0:b0 + c]
        mb = mf[b0:b0 + c]
        qb = q[o:o + c]
        r = ratio[:c]
        positive = True
        for i in range(c):
            v = pb[i] - eta * sb[i]
            qb[i] = v
            r[i] = v / mb[i]
            positive &= v > 0.0
        if not positive:
            return np.inf
        lb = logs[o:o + c]
        log_into(r, lb, work, kk)
        lp = lf[b0:b0 + c]
        for i in range(c):
            total += qb[i] * lb[i] - pb[i] * lp[i]
    return total


@nb.njit(**_JIT)
def _kl_line_delta(p, s, eta, mu, log_ratio):
    """``sum(q log(q / mu) - p log_ratio)`` at ``q = p - eta s`` (:func:`_kl_trial`)."""
    return _kl_trial(p, s, eta, mu, log_ratio, np.empty(BLOCK), np.empty(BLOCK), False)


@nb.njit(**_JIT)
def _stays_positive(p, s, eta):
    """Whether every entry of ``p - eta s`` is positive."""
    pf = p
    sf = s
    for i in range(pf.shape[0]):
        if not pf[i] - eta * sf[i] > 0.0:
            return False
    return True


@nb.njit(**_JIT)
def _quadratic_state(q, mu, gradient, hs, eta, u):
    """``u = gradient - eta hs`` (the quadratic term's gradient at ``q = p - eta s``);
    returns ``(q - mu).u / 2``."""
    qf = q
    mf = mu
    gf = gradient
    hf = hs
    uf = u
    value = 0.0
    for i in range(qf.shape[0]):
        v = gf[i] - eta * hf[i]
        uf[i] = v
        value += (qf[i] - mf[i]) * v
    return 0.5 * value


@nb.njit(**_JIT)
def _add_scaled(out, a, x):
    """``out += a x``."""
    of = out
    xf = x
    for i in range(of.shape[0]):
        of[i] += a * xf[i]


@nb.njit(**_JIT)
def _backtrack(p, s, kl_weight, kl_mu, kl_log_ratio, check_sign, q_slope, q_curvature,
              slope, eta, shrink, c1, min_step):
    """Armijo backtracking on ``delta(eta) = kl_weight * KL part + (-eta q_slope + eta^2
    q_curvature / 2)`` (the KL part left out when ``kl_weight = 0``; ``check_sign``: +inf
    outside the positive orthant). Returns ``(eta, delta, trials)``, ``eta = -1`` when
    no step ``>= min_step`` is accepted."""
    trials = 0
    while eta >= min_step:
        trials += 1
        quadratic = -eta * q_slope + 0.5 * eta * eta * q_curvature
        if kl_weight > 0.0:
            delta = kl_weight * _kl_line_delta(p, s, eta, kl_mu, kl_log_ratio) + quadratic
        elif check_sign and not _stays_positive(p, s, eta):
            delta = np.inf
        else:
            delta = quadratic
        if delta <= -c1 * eta * slope:
            return eta, delta, trials
        eta *= shrink
    return -1.0, np.nan, trials



@nb.njit(**_JIT)
def _two_dots(g, s, hs):
    """``(g.s, s.hs)`` in one pass."""
    gf = g
    sf = s
    hf = hs
    a = 0.0
    b = 0.0
    for i in range(sf.shape[0]):
        a += gf[i] * sf[i]
        b += sf[i] * hf[i]
    return a, b


@nb.njit(**_JIT)
def _scaled_into(out, a, x):
    """``out = a x``."""
    of = out
    xf = x
    for i in range(of.shape[0]):
        of[i] = a * xf[i]


@nb.njit(**_JIT)
def _step_point(p, s, eta, q):
    """``q = p - eta s``."""
    pf = p
    sf = s
    qf = q
    for i in range(pf.shape[0]):
        qf[i] = pf[i] - eta * sf[i]


# Python entry points: one compiled version of each kernel -----------------------------------
_F64 = np.dtype(np.float64)


def _in(a):
    """A read-only flat float64 view of the input ``a`` (a copy only if ``a`` is not
    C-contiguous float64; ``reshape`` always makes a new view, so ``a`` stays writeable)."""
    if a.__class__ is np.ndarray and a.dtype is _F64 and a.flags.c_contiguous:
        v = a.reshape(-1)
    else:
        v = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    v.flags.writeable = False
    return v


def _out(a):
    """A flat view of the output ``a``, written through (raises if ``a`` cannot be
    viewed flat)."""
    v = a.view()
    v.shape = (a.size,)
    return v


def kl_state(p, mu, log_ratio, gradient):
    """``log_ratio = log(p / mu)``, ``gradient = log_ratio + 1``; returns ``sum p log_ratio``."""
    return _kl_state(_in(p), _in(mu), _out(log_ratio), _out(gradient))


def kl_line_delta(p, s, eta, mu, log_ratio):
    """``sum(q log(q / mu) - p log_ratio)`` at ``q = p - eta s``; ``inf`` when some
    ``q <= 0``."""
    return _kl_line_delta(_in(p), _in(s), float(eta), _in(mu), _in(log_ratio))


def stays_positive(p, s, eta):
    """Whether every entry of ``p - eta s`` is positive."""
    return _stays_positive(_in(p), _in(s), float(eta))


def quadratic_state(q, mu, gradient, hs, eta, u):
    """``u = gradient - eta hs``; returns ``(q - mu).u / 2``."""
    return _quadratic_state(_in(q), _in(mu), _in(gradient), _in(hs), float(eta), _out(u))


def add_scaled(out, a, x):
    """``out += a x``."""
    _add_scaled(_out(out), float(a), _in(x))


def scaled_into(out, a, x):
    """``out = a x``."""
    _scaled_into(_out(out), float(a), _in(x))


def two_dots(g, s, hs):
    """``(g.s, s.hs)`` in one pass."""
    return _two_dots(_in(g), _in(s), _in(hs))


def step_point(p, s, eta, q):
    """``q = p - eta s``."""
    _step_point(_in(p), _in(s), float(eta), _out(q))


def backtrack(p, s, kl_weight, kl_mu, kl_log_ratio, check_sign, q_slope, q_curvature,
              slope, eta, shrink, c1, min_step):
    """Armijo backtracking in one compiled call (see :func:`_backtrack`):
    ``(eta, delta, trials)``, ``eta = -1`` when no step ``>= min_step`` is accepted."""
    return _backtrack(_in(p), _in(s), float(kl_weight), _in(kl_mu), _in(kl_log_ratio),
                      bool(check_sign), float(q_slope), float(q_curvature), float(slope),
                      float(eta), float(shrink), float(c1), float(min_step))
