"""Argument checks shared by the parametric modules."""

import numbers

import numpy as np

__all__ = ["check_int", "check_positive", "check_spd", "check_samples", "check_mean"]


def check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) \
            or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_spd(mat, dim, name):
    mat = np.asarray(mat, dtype=float)
    if mat.shape != (dim, dim) or not np.all(np.isfinite(mat)):
        raise ValueError(f"{name} must be a finite ({dim}, {dim}) matrix, got shape {mat.shape}")
    if not np.allclose(mat, mat.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    try:
        np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        raise ValueError(f"{name} must be positive definite") from None
    return 0.5 * (mat + mat.T)


def check_samples(x, name, dim=None):
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or not np.all(np.isfinite(x)) \
            or (dim is not None and x.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"{name} must be a finite {want} array with n >= 2, got shape {x.shape}")
    return x


def check_mean(mu0, name="mu0"):
    mu = np.atleast_1d(np.asarray(mu0, dtype=float))
    if mu.ndim != 1 or not np.all(np.isfinite(mu)):
        raise ValueError(f"{name} must be a finite 1D array, got shape {mu.shape}")
    return mu
