"""The interaction energy on the no-flux box: value, gradient and Hessian products
against the dense double sum over unwrapped displacements, finite differences, the
combined metric's diagonal, flows and solves with it, and bad kernels."""

import numpy as np
import pytest

import densflow as df
from densflow.core.box_wavelets import reflected_basis
from densflow.energies import KL, Interaction
from densflow.energies.interaction import displacements


def box(n, dim=1):
    return df.Grid(n, dim, boundary="neumann")


def gauss1(d):
    return np.exp(-d**2 / (2 * 0.2**2)) + 0.3 * d**2


def gauss2(a, b):
    return np.exp(-(a**2 + 2 * b**2) / (2 * 0.15**2)) - 0.2 * a**2 * b**2


def dense_kernel(grid, W):
    """K_st = W(x_s - x_t) over the cell centres, no wrapping (the double sum's matrix)."""
    x = grid.coordinates()
    if grid.dim == 1:
        return W(x[:, None] - x[None, :])
    a, b = (c.ravel() for c in x)
    return W(a[:, None] - a[None, :], b[:, None] - b[None, :])


@pytest.mark.parametrize("dim, n, W", [(1, 13, gauss1), (2, 6, gauss2), (2, 7, gauss2)])
def test_value_gradient_and_hessian_product_against_the_dense_double_sum(dim, n, W):
    grid = box(n, dim)
    K = dense_kernel(grid, W)
    rng = np.random.default_rng(2)
    p = rng.uniform(0.5, 1.5, grid.shape)
    p /= p.sum()
    v = rng.standard_normal(grid.shape)
    term = Interaction(grid, W)
    st = term.evaluate(p)
    pf = p.ravel()
    value = 0.5 * sum(pf[s] * K[s, t] * pf[t] for s in range(pf.size) for t in range(pf.size))
    assert st.value == pytest.approx(value, rel=1e-12)
    assert np.allclose(st.gradient.ravel(), K @ pf, rtol=1e-12, atol=1e-14)
    assert np.allclose(term.hessian_product(p, v).ravel(), K @ v.ravel(), rtol=1e-11, atol=1e-12)
    # finite differences of the value
    h = 1e-6
    fd = (term.evaluate(p + h * v).value - term.evaluate(p - h * v).value) / (2 * h)
    assert fd == pytest.approx(float(np.vdot(st.gradient, v)), rel=1e-7, abs=1e-12)


def test_the_box_is_not_the_torus_the_wall_breaks_translation():
    """On the box the far cells see each other at distance ~1, on the torus at ~0."""
    n = 16
    W = lambda d: np.exp(-d**2 / (2 * 0.1**2))  # noqa: E731
    e0 = np.zeros(n)
    e0[0] = 1.0
    on_box = Interaction(box(n), W).hessian_product(e0, e0)
    on_torus = Interaction(df.Grid(n), W).hessian_product(e0, e0)
    assert on_box[-1] == pytest.approx(W((n - 1) / n), rel=1e-12)
    assert on_torus[-1] == pytest.approx(W(1 / n), rel=1e-12)


def test_displacements_of_the_box_are_unwrapped():
    d = displacements(box(4))
    assert np.allclose(d, [0, 0.25, 0.5, 0.75, -1, -0.75, -0.5, -0.25])
    d1, d2 = displacements(box(3, 2))
    assert d1.shape == (6, 6) and np.allclose(d2[0], [0, 1 / 3, 2 / 3, -1, -2 / 3, -1 / 3])


def test_samples_given_as_an_array_of_the_padded_shape():
    grid = box(8)
    samples = gauss1(displacements(grid))
    a, b = Interaction(grid, samples), Interaction(grid, gauss1)
    p = np.linspace(1, 2, 8)
    p /= p.sum()
    assert a.value(p) == pytest.approx(b.value(p), rel=1e-14)
    with pytest.raises(ValueError, match=r"padded shape .* \(16,\).* got shape \(8,\)"):
        Interaction(grid, samples[:8])
    with pytest.raises(ValueError, match="even"):
        Interaction(grid, lambda d: np.exp(d))


def test_combined_metric_diagonal_is_that_of_the_reflected_circulant():
    grid = box(8)
    term = Interaction(grid, gauss1)
    basis = reflected_basis(grid, "db2", 2)
    diag = term.wavelet_diagonal(basis)
    # dense: the circulant of the reflected grid, C_st = W(wrapped (s - t)/n into [-1, 1))
    m = 2 * grid.n
    j = np.arange(m)
    dd = ((j[:, None] - j[None, :]) % m)
    dd = np.where(dd >= grid.n, dd - m, dd) / grid.n
    C = gauss1(dd)
    for _, _, region in basis.blocks:
        e = np.zeros(m)
        e[region[0].start] = 1.0
        w = basis.synthesis(e)
        assert diag[region][0] == pytest.approx(max(0.0, w @ C @ w), rel=1e-12)


def test_aggregation_diffusion_on_the_box_keeps_mass_and_solves():
    grid = box(64)
    E = 0.05 * KL(grid, grid.uniform()) + Interaction(grid, lambda d: -np.exp(-d**2 / (2 * 0.1**2)))
    p0 = grid.uniform()
    r = df.flow(E, p0, 0.5, rtol=1e-4)
    assert r.converged and abs(r.p.sum() - 1) < 1e-13 and r.p.min() > 0
    assert np.all(np.diff(r.energies) <= 1e-12)
    # the walls break the uniform state's symmetry: mass gathers away from the walls
    x = grid.coordinates()
    # (two clusters form, 0.83 of the mass in the middle half), mirror-symmetric like the box
    assert r.p[np.abs(x - 0.5) < 0.25].sum() > 0.7
    assert np.allclose(r.p, r.p[::-1], rtol=1e-6)
    res = df.solve(E, r.p, gtol=1e-10)
    assert res.converged and E.value(res.p) < E.value(r.p)


@pytest.mark.parametrize("dim", [1, 2])
def test_case_file_expressions_build_the_box_interaction(dim):
    # flow cases (energy dicts) and panels (terms expressions) evaluate W on the box's
    # unwrapped, padded displacements: the energy equals the dense double sum
    from densflow.app.expressions import evaluate_terms
    from densflow.app.flow_case import build_energy

    box = df.Grid(8, dim, boundary="neumann")
    rng = np.random.default_rng(7)
    p = rng.random(box.shape)
    p /= p.sum()
    x = np.stack(np.meshgrid(*[(np.arange(8) + 0.5) / 8] * dim, indexing="ij"), -1).reshape(-1, dim)
    r2 = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    dense = 0.5 * p.ravel() @ (-np.exp(-r2 / 0.02)) @ p.ravel()
    var = "d**2" if dim == 1 else "(d1**2 + d2**2)"
    energy, _ = build_energy({"interaction": f"-exp(-{var}/0.02)"}, box)
    assert energy.value(p) == pytest.approx(dense, rel=1e-12)
    xs = "x**2" if dim == 1 else "(x1**2 + x2**2)"
    panel = evaluate_terms(f"Interaction('-exp(-{xs}/0.02)')", box)
    assert panel.value(p) == pytest.approx(dense, rel=1e-12)
