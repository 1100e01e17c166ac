"""Newton in the potential reuses work arrays across a run (the FFT pair's spectrum and
output, the Hessian product's row rings and its output): no stale content leaks from one
solve into the next, nothing it returns is one of them, and the FFT pair is the public
functions' bit for bit."""

import numpy as np
import pytest
import scipy.fft as sfft

import densflow as df
from conftest import V2, make_energy, random_density
from densflow.kernels.fourier import FourierPair
from densflow.potential_newton import PotentialNewton, PotentialNewtonStep

WEIGHTS = (1, 3e-4, 1e-4)


def _step(E, **settings):
    return PotentialNewtonStep(E, df.metrics.get("combined").bind(E),
                               PotentialNewton(preconditioner="fourier", **settings))


def _arrays(op):
    """The step's work arrays: its FFT pairs' buffers and the Hessian product's."""
    for pair in op._pairs.values():
        yield from (pair._z, pair._out)
    yield from op._work


def _problem(n=16):
    grid = df.Grid(n, 2)
    mu = grid.gibbs(V2)
    return grid, mu, make_energy(grid, mu, WEIGHTS)


@pytest.mark.parametrize("shape", [(16, 12), (9, 10), (12,), (69, 67)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fourier_pair_is_the_public_fft_pair_bit_for_bit(shape, dtype):
    rng = np.random.default_rng(3)
    pair = FourierPair(shape, dtype)
    axes = tuple(range(len(shape)))
    # a multiplier of the frequencies' magnitudes (as the Laplacian's symbol is)
    k = np.meshgrid(*[np.minimum(np.arange(m), m - np.arange(m)) for m in shape],
                    indexing="ij")
    for c in (1.0, 2.5):  # the second call reuses the first one's buffers
        full = 1.0 / (c + sum(kk ** 2 for kk in k))
        m = full[..., :shape[-1] // 2 + 1].astype(dtype)
        t = rng.standard_normal(shape).astype(dtype)
        want = sfft.irfftn(sfft.rfftn(t, axes=axes) * m, s=shape, axes=axes)
        got = pair(t, m)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        # and the dense DFT's (numpy's, in float64) up to rounding
        ref = np.real(np.fft.ifftn(np.fft.fftn(t.astype(float)) * full))
        tol = 1e-6 if dtype == np.float32 else 1e-13
        assert np.max(np.abs(got - ref)) <= tol * np.max(np.abs(ref))


def test_consecutive_solves_on_one_step_are_those_of_fresh_steps():
    grid, mu, E = _problem()
    rng = np.random.default_rng(5)
    cases = []
    for seed in (1, 2, 3):
        b = rng.standard_normal(grid.shape)
        cases.append((random_density(grid, seed), b - b.mean()))
    op = _step(E)
    op.stats = {"hessian_products": 0, "cg_iterations": 0, "inner_iterations": 0}
    xs = [op.solve(p, b) for p, b in cases]
    kept = [x.copy() for x in xs]
    for (p, b), x, x0 in zip(cases, xs, kept):
        fresh = _step(E)
        fresh.stats = dict(op.stats)
        assert np.array_equal(fresh.solve(p, b), x)
        assert np.array_equal(x, x0)  # not overwritten by the later solves
    assert len({id(x) for x in xs}) == 3
    assert not any(np.shares_memory(x, a) for x in xs for a in _arrays(op))


def test_directions_are_not_overwritten_by_the_next_step():
    grid, mu, E = _problem()
    op = _step(E)
    out = []
    for seed in (4, 5):
        p = random_density(grid, seed)
        s = op.direction(p, E.gradient(p))
        assert op.hint[0] is s and op.newton_direction
        out.append((p, s, op.hint[1], s.copy(), op.hint[1].copy()))
    for p, s, delta, s0, delta0 in out:
        assert np.array_equal(s, s0) and np.array_equal(delta, delta0)
        fresh = _step(E)
        assert np.array_equal(fresh.direction(p, E.gradient(p)), s)
        assert np.array_equal(fresh.hint[1], delta)
        # the direction is the density step of the potential step: s = L_w delta
        lw = fresh._lw(delta)
        assert np.max(np.abs(s - (lw - lw.mean()))) <= 1e-12 * np.max(np.abs(s))
    for array in _arrays(op):
        for _, s, delta, _, _ in out:
            assert not np.shares_memory(s, array) and not np.shares_memory(delta, array)


@pytest.mark.parametrize("n", [16, 32])
def test_repeated_runs_repeat_bit_for_bit(n):
    grid, mu, E = _problem(n)
    p0 = random_density(grid, 9)
    runs, kept = [], []
    for _ in range(3):
        runs.append(df.solve(E, p0, tol=1e-12, method="newton_potential"))
        kept.append(runs[-1].p.copy())
    for res, p in zip(runs, kept):
        assert res.n_iter == runs[0].n_iter
        assert np.array_equal(res.p, kept[0]) and np.array_equal(res.p, p)
        assert np.array_equal(res.energies, runs[0].energies)
    assert runs[0].energies[-1] <= 1e-12
