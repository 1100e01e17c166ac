"""Issue 14, item 3: densities floored anywhere down to the smallest positive double.

A Gaussian bump (σ = 0.01) floored at ``floor`` and normalised leaves most cells nearly
empty. The mass-conservation fix of every direction must not put mass into those
cells: an even spread of its rounding residue made ``s_i / p_i`` astronomically large
there, and positivity then blocked every step ("line search failed" at iteration 0–36).
"""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy
from densflow.metrics.natural import RESIDUE_SHARE, mass_fix

WEIGHTS = {1: [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4), (1, 1e-3, 1e-4)],
           2: [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4), (1, 3e-4, 1e-4)]}
SMALLEST = float(np.nextafter(0.0, 1.0))  # 4.9e-324, a subnormal
FLOORS = [1e-20, 1e-100, 1e-300, SMALLEST]


def floored_bump(grid, floor, sigma=0.01):
    x = grid.coordinates()
    r2 = (x - 0.5) ** 2 if grid.dim == 1 else (x[0] - 0.5) ** 2 + (x[1] - 0.5) ** 2
    p = np.exp(-r2 / (2 * sigma**2))
    p = np.maximum(p / p.sum(), floor)
    return p / p.sum()


def test_residue_spares_nearly_empty_entries():
    rng = np.random.default_rng(0)
    s = rng.standard_normal(1000)
    s[:10] = 1e-300 * rng.uniform(0.5, 1.5, 10)   # nearly empty cells
    s[10:] -= s.sum() / 990                         # mass-preserving ...
    s[500] += 1e-12 * np.abs(s).sum()               # ... but for a residue
    fixed = mass_fix(s.copy())
    assert abs(fixed.sum()) <= 1e-15 * np.abs(s).sum()
    # a tiny entry changes by about its own size at most (the even share, 7.7e-13,
    # would be 1e287 times larger)
    change = np.abs(fixed - s)[:10]
    assert np.all(change <= 1.02 / RESIDUE_SHARE * np.abs(s[:10]))
    assert np.abs(fixed[:10]).max() < 1e-299
    # without tiny entries it is the even spread: every entry moves by -sum/N
    u = s[10:]
    shift = mass_fix(u.copy()) - u
    assert np.ptp(shift) <= 4e-16 * np.abs(u).max()
    assert shift.mean() == pytest.approx(-u.sum() / u.size, rel=1e-6)


@pytest.mark.parametrize("floor", FLOORS, ids=lambda f: f"{f:.0e}")
def test_1d_converges_at_every_floor(floor):
    grid = df.Grid(512, 1)
    mu, p0 = grid.gibbs(V1), floored_bump(grid, floor)
    assert p0.min() == pytest.approx(floor, rel=1e-12) and p0.min() > 0
    for weights in WEIGHTS[1]:
        res = df.solve(make_energy(grid, mu, weights), p0, "combined", max_iter=1500)
        assert res.converged and res.energies[-1] <= 1e-12, (weights, res.message)


@pytest.mark.parametrize("floor", FLOORS, ids=lambda f: f"{f:.0e}")
def test_2d_never_stalls_at_any_floor(floor):
    grid = df.Grid(64, 2)
    mu, p0 = grid.gibbs(V2), floored_bump(grid, floor)
    for weights in WEIGHTS[2]:
        converges = weights[0] == 0 or weights[1] == 0
        res = df.solve(make_energy(grid, mu, weights), p0, "combined",
                       max_iter=800 if converges else 60)
        assert "line search failed" not in res.message, (weights, res.message)
        assert np.all(np.diff(res.energies) < 0)
        if converges:
            assert res.converged and res.energies[-1] <= 1e-12, (weights, res.message)
        else:  # a slow descent, not a stall (see README, Reliability)
            assert res.n_iter == 60 and res.energies[-1] < res.energies[0]
