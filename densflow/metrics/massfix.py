r"""The rounding fix of a mass-preserving direction (:ref:`metrics`): a direction
:math:`s` with :math:`\sum_s s_s = 0` in exact arithmetic loses that to rounding;
:func:`mass_fix` removes the residue without emptying nearly empty cells."""

import numpy as np

from ..kernels import metric as MK

__all__ = ["mass_fix", "RESIDUE_SHARE"]


def mass_fix(s, m1=None):
    r"""Remove the rounding residue :math:`t = \sum_s s_s` of a direction.

    Along ``m1`` when given (Fisher–Rao: along ``p``). Otherwise evenly, ``t/N`` per
    entry, except that an entry smaller than that share takes only the fraction
    ``|s_i| N / (RESIDUE_SHARE |t|)`` of it, so that it changes by about its own size at
    most: a nearly empty cell (where the safeguarded directions are proportional to
    ``p``) stays nearly empty. An even share there would be orders of magnitude above
    :math:`p_i`, and positivity would then block every step. When no entry is that
    small (every run from a density that does not nearly vanish, the paper's included)
    the arithmetic is the even spread, bit for bit.
    """
    if m1 is None:
        out = np.empty_like(s)
        if not MK.spread_residue(s, RESIDUE_SHARE, out):  # (the common case, one pass)
            MK.spread_weighted(s, RESIDUE_SHARE, out)
        return out
    total = s.sum()
    if total == 0.0:
        return s
    denom = m1.sum()
    if denom > 0 and np.isfinite(denom):
        return s - (total / denom) * m1
    return s - total / s.size


#: An entry of a direction takes a full share of its rounding residue only above this
#: many even shares (see :func:`mass_fix`). Measured on a σ = 0.01 bump floored at
#: 1e-6 … 5e-324 (2D, 64², weights (1, 3e-4, 1e-4)): 838–1295 iterations with 1,
#: 1186–3200 with 10, 1240–3315 with 1e4.
RESIDUE_SHARE = 1.0
