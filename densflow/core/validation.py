"""Checks of user input at the public boundary (never in inner loops)."""

import numbers

import numpy as np

__all__ = ["as_real_array", "check_probability_vector", "check_weight", "check_positive_int",
           "check_safeguard", "check_real_or_none"]


def as_real_array(value, name):
    """Return ``value`` as a float array, refusing what a float cast would hide.

    Raises
    ------
    TypeError
        If ``value`` holds complex numbers (casting would drop the imaginary part),
        booleans, strings or objects that are not real numbers.
    ValueError
        If ``value`` is a masked array with masked entries (the mask would be lost).
    """
    if np.ma.isMaskedArray(value):
        masked = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if masked:
            raise ValueError(f"{name} is a masked array with {masked} masked entries; the "
                             "mask would be ignored: fill them first (e.g. "
                             f"{name}.filled(value)) or pass {name}.data explicitly")
        value = np.ma.getdata(value)
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must hold real numbers, got a complex array "
                        "(take .real explicitly if the imaginary part is meant to be dropped)")
    if kind == "O":
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in arr.flat):
            bad = next(v for v in arr.flat if not isinstance(v, numbers.Real) or isinstance(v, bool))
            raise TypeError(f"{name} must hold real numbers, got an object array holding "
                            f"{type(bad).__name__} {bad!r}")
    elif kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr.astype(float, copy=False)


def check_probability_vector(p, shape, name="p", atol=1e-10):
    """Return ``p`` as a float64 array after checking it is a positive probability vector.

    Any real dtype is accepted and converted to float64; the sum is checked after the
    conversion. A vector of a less precise float dtype (float32, float16) cannot sum to 1
    closer than its own rounding, so its sum must lie within
    ``max(atol, 2 (log2 N + 2) eps)`` of 1 (``eps`` of its dtype, ``N`` entries: the
    rounding of normalising it in that dtype) and it is then normalised again in
    float64. A float64 vector is returned unchanged.

    Raises
    ------
    ValueError
        If ``p`` has the wrong shape, holds NaN/inf or non-positive entries, or does
        not sum to 1 within ``atol``.
    TypeError
        If ``p`` does not hold real numbers (see :func:`as_real_array`).
    """
    if (type(p) is np.ndarray and p.dtype == np.float64 and p.shape == tuple(shape)
            and p.min() > 0.0 and p.max() < np.inf and abs(float(p.sum()) - 1.0) <= atol):
        return p  # the common case in three reductions (NaN fails the first test)
    dtype = np.asarray(p).dtype
    arr = as_real_array(p, name)
    if arr.shape != tuple(shape):
        raise ValueError(
            f"{name} must have the grid's shape {tuple(shape)}, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} must be finite, but {bad} entries are NaN or inf")
    if not np.all(arr > 0):
        bad = int(np.count_nonzero(arr <= 0))
        raise ValueError(
            f"{name} must be strictly positive, but {bad} entries are <= 0 "
            f"(minimum {arr.min():.3g})"
        )
    total = float(arr.sum())
    coarse = dtype.kind == "f" and np.finfo(dtype).eps > np.finfo(np.float64).eps
    tol = max(atol, 2 * (np.log2(arr.size) + 2) * float(np.finfo(dtype).eps)) if coarse else atol
    if abs(total - 1.0) > tol:
        if coarse:
            raise ValueError(
                f"{name} must be a probability vector summing to 1: converted from {dtype} "
                f"to float64 it sums to {total!r}, further from 1 than {dtype}'s rounding "
                f"allows ({tol:.2g}); normalise it with {name} = {name} / {name}.sum()")
        raise ValueError(
            f"{name} must be a probability vector summing to 1 (within {atol:g}), "
            f"but it sums to {total!r}; normalise it with {name} = {name} / {name}.sum()"
        )
    if coarse:  # the sum is off by the dtype's rounding: normalise in float64
        arr = arr / total
    return arr


def check_weight(alpha, name="weight"):
    """Return ``alpha`` as a float after checking it is finite and non-negative."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise TypeError(f"{name} must be a real number, got {type(alpha).__name__}")
    alpha = float(alpha)
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {alpha!r}")
    return alpha


def check_real_or_none(value, name, minimum=0.0):
    """Return ``value`` as a float (or ``None``) after checking it is a real number
    ``>= minimum`` (booleans and NaN are refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= minimum:
        raise ValueError(f"{name} must be a number >= {minimum:g} or None, got {value!r}")
    return float(value)


def check_positive_int(value, name, minimum=1):
    """Return ``value`` as an int after checking it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def check_safeguard(value, name="safeguard"):
    """Return ``value`` as a float in (0, 1], or ``None`` (the paper's plain method)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1] or None, got {value!r}")
    return float(value)
