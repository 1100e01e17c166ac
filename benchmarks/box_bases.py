"""Which wavelet construction for the combined metric on the no-flux box: the condition
number of the preconditioned Hessian, computed densely.

Usage::

    python benchmarks/box_bases.py [--n 64]

For the paper's 1D energy panels at μ ∝ exp(-sin 4πx) (box, cell centres), the
condition number on the mass-zero subspace of :math:`M^{1/2} \\nabla^2 E(\\mu) M^{1/2}`
for

* ``torus``: the periodic combined metric on the torus of the same size (the
  reference the box is compared with);
* ``periodic-on-box``: the periodic basis of the box's ``n`` points (its wavelets wrap
  around from one wall to the other) with the box's differences in the diagonals;
* ``reflection``: the implemented construction (:mod:`densflow.core.box_wavelets`), the
  periodic basis of the even reflection on ``2n`` points, folded back;
* ``reflection, own diagonals``: the same folded frame with the diagonals of each folded
  frame vector computed on the box (not computable by the correlations of the periodic
  kernels near the walls; shown for what it would gain).

Levels: each construction at PyWavelets' advice and at the box default
(:func:`densflow.core.box_wavelets.default_level`).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pywt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import densflow as df  # noqa: E402
from dense import difference_matrices, wavelet_matrix  # noqa: E402
from _tables import print_rst_table  # noqa: E402
from densflow.core.box_wavelets import default_level  # noqa: E402

PANELS = [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)]


def box_line(n):
    D = np.zeros((n - 1, n))
    for e in range(n - 1):
        D[e, e], D[e, e + 1] = -n, n
    return D


def condition(M, H):
    n = H.shape[0]
    Q = np.linalg.qr(np.eye(n) - 1.0 / n)[0][:, : n - 1]
    w, V = np.linalg.eigh(Q.T @ M @ Q)
    root = V @ np.diag(np.sqrt(np.maximum(w, 0))) @ V.T
    ev = np.linalg.eigvalsh(root @ (Q.T @ H @ Q) @ root)
    return ev.max() / ev[ev > 1e-12 * ev.max()].min()


def eigenvalues(F, D, p, mobility, a):
    h1, h2, h3 = ((D @ F) ** 2).T @ mobility, (F**2).T @ p, ((D @ F) ** 2).sum(0)
    den = a[2] * h3
    with np.errstate(divide="ignore"):
        if a[0] > 0:
            den = den + np.where(h1 > 0, a[0] / np.where(h1 > 0, h1, 1), np.inf)
        if a[1] > 0:
            den = den + a[1] / h2
    return np.where(np.isfinite(den) & (den > 0), 1 / den, 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--wavelet", default="db4")
    n, wav = ap.parse_args().n, ap.parse_args().wavelet
    advised_n = pywt.dwt_max_level(n, pywt.Wavelet(wav).dec_len)
    advised_2n = pywt.dwt_max_level(2 * n, pywt.Wavelet(wav).dec_len)
    box_default = default_level(n)
    torus = df.Grid(n, 1)
    mu_t = torus.gibbs(lambda x: np.sin(4 * np.pi * x))
    Dt = difference_matrices(n, 1)[0]
    box = df.Grid(n, 1, boundary="neumann")
    mu = box.gibbs(lambda x: np.sin(4 * np.pi * x))
    D = box_line(n)
    reflect = np.zeros((2 * n, n))
    for i in range(2 * n):
        reflect[i, i if i < n else 2 * n - 1 - i] = 1.0
    E = reflect / np.sqrt(2)
    D2 = difference_matrices(2 * n, 1)[0] / 2  # the box's spacing 1/n
    P = reflect @ mu
    rows = []
    for a in PANELS:
        Ht = a[0] * np.linalg.pinv(Dt.T @ np.diag(mu_t) @ Dt) + a[1] * np.diag(1 / mu_t) + a[2] * Dt.T @ Dt
        H = a[0] * np.linalg.pinv(D.T @ np.diag(mu[:-1]) @ D) + a[1] * np.diag(1 / mu) + a[2] * D.T @ D
        row = [str(a)]
        W = wavelet_matrix(n, 1, wav, advised_n)
        row.append(f"{condition(W @ np.diag(eigenvalues(W, Dt, mu_t, mu_t, a)) @ W.T, Ht):.1f}")
        for level in (advised_n, box_default - 1):
            W = wavelet_matrix(n, 1, wav, level)
            row.append(f"{condition(W @ np.diag(eigenvalues(W, D, mu, mu[:-1], a)) @ W.T, H):.1f}")
        for level in (advised_2n, box_default):
            W2 = wavelet_matrix(2 * n, 1, wav, level)
            lam = eigenvalues(W2, D2, P, P, a)
            row.append(f"{condition(E.T @ W2 @ np.diag(lam) @ W2.T @ E, H):.1f}")
            F = E.T @ W2
            row.append(f"{condition(F @ np.diag(eigenvalues(F, D, mu, mu[:-1], a)) @ F.T, H):.1f}")
        rows.append(row)
    print(f"n = {n}, {wav}: condition numbers of the preconditioned Hessian at mu")
    print_rst_table(["weights", f"torus L={advised_n}",
                     f"periodic-on-box L={advised_n}", f"periodic-on-box L={box_default - 1}",
                     f"reflection L={advised_2n}", f"own diagonals L={advised_2n}",
                     f"reflection L={box_default}", f"own diagonals L={box_default}"], rows)


if __name__ == "__main__":
    main()
