r"""Hessian of the empirical debiased Sinkhorn divergence (issue 7, SiNG).

For a point cloud :math:`x_1\dots x_N` with uniform weights and the frozen copy
:math:`y = x`, :math:`H` is the Hessian at :math:`x' = x` of
:math:`x' \mapsto S_\varepsilon(\alpha_{x'}, \alpha_y) = \mathrm{OT}_\varepsilon(x', y)
- \tfrac12\mathrm{OT}_\varepsilon(x', x') - \tfrac12\mathrm{OT}_\varepsilon(y, y)`, cost
:math:`|x-y|^2`. :class:`SinkhornHessian` applies it by implicit differentiation of the
Sinkhorn fixed point: the gradients are the envelope-theorem expressions of
:class:`densflow.parametric.losses.Sinkhorn`, and the tangent of the potentials solves
the linearised marginal constraints

.. math::

    \sum_j \pi_{ij}(\dot f_i + \dot g_j - \dot C_{ij}) = 0, \qquad
    \sum_i \pi_{ij}(\dot f_i + \dot g_j - \dot C_{ij}) = 0,

a symmetric positive semi-definite :math:`2N\times 2N` system (null vector
:math:`(1, -1)`, removed by adding its outer product) solved by a pseudo-inverse from one eigen-decomposition
(eigenvalues below 1e-13 of the largest dropped); for
:math:`\mathrm{OT}_\varepsilon(x', x')` the symmetric potential's system is
:math:`(\operatorname{diag}(a) + \pi)\dot f = \sum_j\pi_{ij}\dot C_{ij}`. Then
:math:`\dot\pi_{ij} = \pi_{ij}(\dot f_i + \dot g_j - \dot C_{ij})/\varepsilon`.
Exact up to the Sinkhorn tolerance (the plan's marginal error enters linearly).
"""

import numpy as np

from ._sinkhorn import symmetric_potential

__all__ = ["SinkhornHessian"]


def _pinv_factor(A, rcond=1e-13):
    # eigen-decomposition once; near-null directions (a nearly diagonal plan at small
    # eps makes every (e_i, -e_i) one) do not change f_i + g_j and are dropped
    w, V = np.linalg.eigh(A)
    keep = w > rcond * w.max()
    return V[:, keep], w[keep]


def _pinv_solve(fac, b):
    V, w = fac
    return V @ ((V.T @ b) / w)


class SinkhornHessian:
    """:math:`v \\mapsto Hv` for the point cloud ``x`` of shape ``(N, d)`` (see module)."""

    def __init__(self, x, eps, tol=1e-12, n_iter=100000):
        self.x = np.asarray(x, dtype=float)
        self.eps = float(eps)
        N = self.x.shape[0]
        diff = self.x[:, None, :] - self.x[None, :, :]
        self.diff = diff
        C = np.sum(diff * diff, axis=-1)
        loga = np.full(N, -np.log(N))
        f, it, err = symmetric_potential(C, loga, self.eps, tol, n_iter)
        if not err <= tol:
            raise RuntimeError(f"Sinkhorn did not converge (marginal error {err:.3e} > tol = "
                               f"{tol:g}); raise n_iter or eps")
        self.iterations = it
        P = np.exp((f[:, None] + f[None, :] - C) / self.eps + 2 * loga[0])
        P = 0.5 * (P + P.T)
        self.P = P
        a = P.sum(1)
        self.a = a
        n0 = np.concatenate([np.ones(N), -np.ones(N)])
        A = np.block([[np.diag(a), P], [P.T, np.diag(P.sum(0))]]) + np.outer(n0, n0)
        self._cross = _pinv_factor(A)
        self._sym = _pinv_factor(np.diag(a) + P)

    def apply(self, v):
        """:math:`Hv` for ``v`` of shape ``(N, d)``."""
        v = np.asarray(v, dtype=float)
        N = v.shape[0]
        P, D, eps = self.P, self.diff, self.eps
        # OT(x', y), x' moving: dC_ij = 2 (x_i - y_j) . v_i
        dC = 2 * np.einsum("ijk,ik->ij", D, v)
        PdC = P * dC
        s = _pinv_solve(self._cross, np.concatenate([PdC.sum(1), PdC.sum(0)]))
        dP = P * (s[:N, None] + s[None, N:] - dC) / eps
        h1 = 2 * np.einsum("ij,ijk->ik", dP, D) + 2 * self.a[:, None] * v
        # OT(x', x'), both arguments moving: dC_ij = 2 (x_i - x_j) . (v_i - v_j)
        dC2 = 2 * (np.einsum("ijk,ik->ij", D, v) - np.einsum("ijk,jk->ij", D, v))
        PdC2 = P * dC2
        df = _pinv_solve(self._sym, PdC2.sum(1))
        dP2 = P * (df[:, None] + df[None, :] - dC2) / eps
        h2 = 4 * (np.einsum("ij,ijk->ik", dP2, D) + self.a[:, None] * v - P @ v)
        return h1 - 0.5 * h2
