r"""Time schemes of :func:`densflow.flow` and their local error estimates (:ref:`flows`).

Both schemes are implicit steps :math:`p_{k+1} = q - \tau K(p^*)\nabla F(p_{k+1})`:

* ``"euler"``: :math:`q = p_k`, :math:`\tau = h`, :math:`p^* = p_k` (first order);
* ``"bdf2"`` with variable steps, :math:`\omega = h_k/h_{k-1}`:

  .. math::

      q = \frac{(1+\omega)^2 p_k - \omega^2 p_{k-1}}{1+2\omega}, \qquad
      \tau = \frac{1+\omega}{1+2\omega}\, h_k, \qquad
      p^* = p_k + \omega (p_k - p_{k-1})

  (:math:`q = (4p_k - p_{k-1})/3`, :math:`\tau = 2h/3`, :math:`p^* = 2p_k - p_{k-1}` at
  constant steps; :math:`p^*` clipped below at :math:`p_k/2`). The first step is an
  Euler step, whose :math:`O(h^2)` local error keeps the global order 2.

The local error is estimated from the difference between the corrector and a predictor
extrapolated from past steps (Milne's device): with the leading error terms
:math:`p_c - p = c_c\,p^{(j)}` and :math:`p_P - p = c_P\,p^{(j)}`,

.. math:: \mathrm{err} \approx \frac{c_c}{c_c - c_P}\,(p_c - p_P).

Euler against linear extrapolation (explicit Euler at the first step), BDF2 against
quadratic extrapolation; where only two past values exist for BDF2 the estimate is the
whole difference :math:`p_c - p_P` (the predictor's own error, an over-estimate).
"""

import numpy as np

__all__ = ["SCHEMES", "bdf2_coefficients", "predictor", "estimate_factor"]

#: Schemes of :func:`densflow.flow`.
SCHEMES = ("bdf2", "euler")


def bdf2_coefficients(h, h_prev):
    """``(w_k, w_km1, tau_factor, omega)``: :math:`q = w_k p_k + w_{k-1} p_{k-1}`,
    :math:`\\tau = ` ``tau_factor * h``."""
    omega = h / h_prev
    den = 1.0 + 2.0 * omega
    return (1.0 + omega) ** 2 / den, -omega * omega / den, (1.0 + omega) / den, omega


def _bdf2_error_constant(h, h_prev):
    """:math:`c_c` of variable-step BDF2 (its error on :math:`y = t^3/6`, :math:`y''' = 1`)."""
    # t_{k+1} = 0: y_k = -h^3/6, y_{k-1} = -(h + h')^3/6, y'(0) = 0
    wk, wkm1, _, _ = bdf2_coefficients(h, h_prev)
    return wk * (-h**3 / 6.0) + wkm1 * (-(h + h_prev) ** 3 / 6.0)


def predictor(times, densities, t_new):
    """Polynomial extrapolation of the last one to three ``densities`` (at ``times``)
    to ``t_new`` (Lagrange form; one value: returned as is)."""
    m = len(times)
    out = np.zeros_like(densities[-1])
    for i in range(m):
        w = 1.0
        for j in range(m):
            if j != i:
                w *= (t_new - times[j]) / (times[i] - times[j])
        out += w * densities[i]
    return out


def estimate_factor(scheme, hs):
    """:math:`c_c/(c_c - c_P)` for a step of ``scheme`` (``"euler"`` or ``"bdf2"``) and
    the last step sizes ``hs = (h_k, h_{k-1}, h_{k-2})`` as far as known (the predictor
    uses one value per known past step); ``"explicit"``: Euler against explicit Euler."""
    h = hs[0]
    if scheme == "explicit":
        return 0.5
    if scheme == "euler":
        # c_c = h^2/2, c_P = -h (h + h')/2 (linear extrapolation), per y''
        return h / (2.0 * h + hs[1])
    if len(hs) < 3:
        return 1.0
    cc = _bdf2_error_constant(h, hs[1])
    cp = -h * (h + hs[1]) * (h + hs[1] + hs[2]) / 6.0
    return cc / (cc - cp)
