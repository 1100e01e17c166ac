"""Issue 14, item 7: input that used to be accepted silently (or failed late, or hung)
now gives a clear error naming the argument and the constraint."""

import time

import numpy as np
import pytest

import densflow as df
from conftest import V1
from densflow.app.case import Case, Panel
from densflow.parametric import Problem
from densflow.parametric.losses import W2Gaussian
from densflow.parametric.models import Gaussian


@pytest.fixture
def setup():
    grid = df.Grid(16, 1)
    mu = grid.gibbs(V1)
    return grid, mu, df.energies.KL(grid, mu) + df.energies.HMinus1(grid, mu)


def test_complex_input_is_refused_not_cast(setup):
    grid, mu, E = setup
    with _no_warnings():
        with pytest.raises(TypeError, match="mu must hold real numbers, got a complex array"):
            df.energies.KL(grid, mu + 0j)
        with pytest.raises(TypeError, match="^p must hold real numbers"):
            E.value(grid.uniform() + 0j)
        with pytest.raises(TypeError, match="^p0 must hold real numbers"):
            df.solve(E, grid.uniform() + 0j)
        with pytest.raises(TypeError, match="potential V .* must hold real numbers"):
            grid.gibbs(lambda x: np.exp(1j * x))
        problem = Problem(Gaussian(1, "diag"), W2Gaussian(np.zeros(1), np.eye(1)), z=np.zeros((4, 1)))
        with pytest.raises(TypeError, match="^theta0 must hold real numbers"):
            df.solve(problem, np.array([0.0, 1.0]) + 0j, metric="euclidean")
        with pytest.raises(ValueError, match="potential .* complex values"):
            Case(grid=grid, potential="exp(1j*x)", panels=[Panel((1, 0, 0), ["combined"])])


class _no_warnings:
    """Fail on any warning (a ComplexWarning used to be all there was)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_object_and_text_arrays_name_the_argument(setup):
    grid, mu, E = setup
    words = np.array(["a"] * 16, dtype=object)
    with pytest.raises(TypeError, match="^p0 must hold real numbers, got an object array holding str 'a'"):
        df.solve(E, words)
    with pytest.raises(TypeError, match="^p0 must hold real numbers, got an array of dtype <U6"):
        df.solve(E, np.array(["0.0625"] * 16))
    with pytest.raises(TypeError, match="^p0 must hold real numbers, got an array of dtype bool"):
        df.solve(E, np.ones(16, dtype=bool))
    # an object array of plain numbers is fine
    res = df.solve(E, np.array([1 / 16] * 16, dtype=object), max_iter=3)
    assert res.n_iter <= 3


def test_combined_wavelet_must_be_a_name(setup):
    grid, mu, E = setup
    with pytest.raises(ValueError, match="^wavelet must name a discrete PyWavelets wavelet, got 4"):
        df.solve(E, grid.uniform(), df.metrics.Combined(wavelet=4))


@pytest.mark.parametrize("key", ["tol", "gtol"])
def test_boolean_tolerances_are_refused(setup, key):
    grid, mu, E = setup
    with pytest.raises(ValueError, match=f"^{key} must be a number >= 0 or None, got True"):
        df.solve(E, grid.uniform(), **{key: True})
    with pytest.raises(ValueError, match=f"^Case {key} must be a number >= 0 or None, got True"):
        Case(grid=grid, potential="0*x", panels=[Panel((1, 0, 0), ["combined"])], **{key: True})
    with pytest.raises(ValueError, match=f"^{key} must be a number >= 0 or None, got nan"):
        df.solve(E, grid.uniform(), **{key: float("nan")})


def test_resume_needs_out_and_a_bool(setup):
    grid, mu, E = setup
    with pytest.raises(ValueError, match=r"^resume=True needs out="):
        df.solve(E, grid.uniform(), resume=True)
    with pytest.raises(TypeError, match="^resume must be True or False, got 'yes'"):
        df.solve(E, grid.uniform(), resume="yes", out="x.h5")


def test_callback_is_checked_before_any_work(setup):
    grid, mu, E = setup
    # max_iter=0: the loop would never call it, yet it is refused up front
    with pytest.raises(TypeError, match="^callback must be callable or None, got int"):
        df.solve(E, grid.uniform(), callback=5, max_iter=0)


def test_line_search_that_cannot_end_is_refused():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"^line search shrink=0\.999999999999 needs 3\.2\d*e\+13 "
                                         r"trials from eta0=1 to min_step=1e-14; at most 10000"):
        df.Armijo(shrink=1 - 1e-12)
    assert time.perf_counter() - t0 < 1
    assert df.Armijo(shrink=0.99).shrink == 0.99  # 3208 trials at most: allowed
    with pytest.raises(ValueError, match="needs 3.22e\\+04 trials"):
        df.Armijo(shrink=0.999)
    with pytest.raises(ValueError, match="min_step must be <= eta0"):
        df.Armijo(eta0=1e-16)
    with pytest.raises(ValueError, match="eta0 must be a finite number > 0, got True"):
        df.Armijo(eta0=True)


def test_panel_weights_are_not_booleans():
    with pytest.raises(ValueError, match="Panel weights must be three finite numbers >= 0"):
        Panel((True, 0, 0), ["combined"])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_density_normalised_in_a_coarser_float_is_accepted_as_float64(setup, dtype):
    """A float32 (float16) density normalised in its own dtype cannot sum to 1 closer than
    that dtype's rounding; it is converted to float64, its sum checked there within that
    rounding, and normalised again: the run is the run of the float64 density."""
    grid = df.Grid(512, 1)
    mu = grid.gibbs(V1)
    E = df.energies.KL(grid, mu) + df.energies.HMinus1(grid, mu)
    x = (1.5 + np.sin(2 * np.pi * grid.coordinates())).astype(dtype)
    p = x / x.sum()  # normalised in dtype
    assert p.dtype == dtype and abs(float(p.astype(np.float64).sum()) - 1.0) > 1e-10
    wide = p.astype(np.float64) / p.astype(np.float64).sum()
    assert E.value(p) == E.value(wide)
    a = df.solve(E, p, max_iter=3, tol=None)
    b = df.solve(E, wide, max_iter=3, tol=None)
    np.testing.assert_array_equal(a.p, b.p)
    assert a.p.dtype == np.float64
    # a vector off by more than the dtype's rounding is refused, saying why
    with pytest.raises(ValueError, match=r"p must be a probability vector summing to 1: "
                                         rf"converted from {np.dtype(dtype).name} to float64"):
        E.value((p * dtype(1.1)).astype(dtype))
    # float64 keeps its tolerance of 1e-10 and its bits
    with pytest.raises(ValueError, match=r"within 1e-10"):
        E.value(wide * (1 + 1e-8))
    assert df.core.validation.check_probability_vector(wide, grid.shape) is not None
