r"""Expectations under :math:`N(0, I_d)`: cubature rules and Monte Carlo nodes."""

import numpy as np

from .checks import check_int as _check_int

__all__ = ["RULES", "gaussian_expectation_nodes", "auto_rule"]

#: The rules of :func:`gaussian_expectation_nodes`.
RULES = ("cubature", "degree5", "mc")


def _degree5_rule(dim):
    r"""The fully symmetric degree-5 rule for :math:`N(0, I_d)` with :math:`2d^2 + 1`
    nodes (Stroud 1971, rule :math:`E_n^{r^2}` 5-2, rescaled to the standard normal):
    the origin with weight :math:`2/(d+2)`, :math:`\pm\sqrt{d+2}\,e_i` with weight
    :math:`(4-d)/(2(d+2)^2)` and :math:`\pm\sqrt{(d+2)/2}\,(e_i \pm e_j)`,
    :math:`i<j`, with weight :math:`1/(d+2)^2`. Exact for every polynomial of total
    degree :math:`\le 5` (weights negative for :math:`d > 4`)."""
    d = dim
    r, s = np.sqrt(d + 2.0), np.sqrt((d + 2.0) / 2.0)
    nodes, weights = [np.zeros((1, d))], [np.array([2.0 / (d + 2)])]
    eye = np.eye(d)
    nodes += [r * eye, -r * eye]
    weights += [np.full(2 * d, (4.0 - d) / (2.0 * (d + 2) ** 2))]
    i, j = np.triu_indices(d, 1)
    for si in (1.0, -1.0):
        for sj in (1.0, -1.0):
            nodes.append(s * (si * eye[i] + sj * eye[j]))
    weights.append(np.full(4 * i.size, 1.0 / (d + 2) ** 2))
    return np.concatenate(nodes), np.concatenate(weights)


def gaussian_expectation_nodes(dim, expectations="cubature", order=5, n_samples=1000, rng=None):
    r"""Nodes ``z`` (shape ``(N, dim)``) and weights ``w`` (summing to 1) with
    :math:`\mathbb E_{z\sim N(0,I)} f(z) \approx \sum_n w_n f(z_n)`.

    ``"cubature"``: the tensor Gauss–Hermite rule with ``order`` points per dimension,
    exact for polynomials of degree :math:`\le 2\,\text{order} - 1` in each variable
    (:math:`\text{order}^d` nodes: 9.8 M at ``order = 5``, ``d = 10``).
    ``"degree5"``: the fully symmetric rule exact for total degree :math:`\le 5` with
    :math:`2d^2 + 1` nodes (201 at ``d = 10``). ``"mc"``: ``n_samples`` draws from ``rng``
    with equal weights.
    """
    dim = _check_int(dim, "dim")
    if expectations == "cubature":
        order = _check_int(order, "order")
        t, w = np.polynomial.hermite_e.hermegauss(order)
        w = w / w.sum()
        grids = np.meshgrid(*([t] * dim), indexing="ij")
        weights = np.meshgrid(*([w] * dim), indexing="ij")
        z = np.stack([g.ravel() for g in grids], axis=1)
        return z, np.prod(np.stack([g.ravel() for g in weights], axis=1), axis=1)
    if expectations == "degree5":
        return _degree5_rule(dim)
    if expectations == "mc":
        n = _check_int(n_samples, "n_samples")
        return np.random.default_rng(rng).standard_normal((n, dim)), np.full(n, 1.0 / n)
    raise ValueError(f"expectations must be one of {RULES}, got {expectations!r}")


def auto_rule(dim, order=5, max_nodes=5000):
    """The rule of ``ReverseKL(expectations="auto")`` in ``dim`` dimensions: ``"cubature"``
    while ``order**dim <= max_nodes``, else ``"degree5"`` while ``2 dim**2 + 1 <=
    max_nodes``, else ``"batch"`` (Monte Carlo on the problem's batch)."""
    if order ** dim <= max_nodes:
        return "cubature"
    if 2 * dim * dim + 1 <= max_nodes:
        return "degree5"
    return "batch"
