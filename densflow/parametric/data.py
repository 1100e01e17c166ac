r"""Real data for the parametric cases: scikit-learn's bundled ``load_digits`` and
``load_breast_cancer`` (no download), the Fréchet distance of feature statistics, an
importance-sampling reference for posterior moments, and :class:`Monitored`, which
records a quality measure instead of the training loss.

scikit-learn is needed by the loaders only (``pip install 'densflow[cases]'``); the
rest is numpy and scipy.

* :func:`load_digits_data`: 1797 images of 8 × 8 pixels, rescaled to an interval.
* :func:`load_cancer_data`: 569 × 30 features, standardised, with an intercept column.
* :func:`split`: a reproducible train/test split.
* :func:`frechet_distance` and :class:`FrechetReference`: the Fréchet (2-Wasserstein)
  distance between the Gaussians fitted to two feature sets, the "FID" of generative
  modelling when the features come from a classifier.
* :func:`importance_moments`: mean and covariance of a density known up to its
  constant by self-normalised importance sampling from a multivariate Student t.
* :class:`Monitored`: a parametric problem whose recorded value is a monitor (FID, test
  accuracy, a moment error) while its steps, batches and decreases stay the problem's.
"""

import numbers

import numpy as np
import scipy.special

from ..core.state import State

__all__ = ["load_digits_data", "load_cancer_data", "split", "frechet_distance",
           "FrechetReference", "importance_moments", "Monitored", "seed_statistics"]


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError:  # pragma: no cover - the message is the point
        raise ImportError("the real-data cases need scikit-learn's bundled data sets: "
                          "pip install 'densflow[cases]'") from None
    return datasets


def load_digits_data(low=-1.0, high=1.0):
    """The 1797 digits of ``sklearn.datasets.load_digits`` as float64 rows of 64 pixels.

    Parameters
    ----------
    low, high : float
        The pixel range after rescaling (the data's 0 … 16 maps to ``low`` … ``high``).

    Returns
    -------
    X : ndarray, shape (1797, 64)
    y : ndarray of int, shape (1797,)
        The digit of each image.
    """
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"need finite low < high, got low={low!r}, high={high!r}")
    d = _sklearn_datasets().load_digits()
    X = low + (high - low) * np.asarray(d.data, dtype=float) / 16.0
    return X, np.asarray(d.target, dtype=int)


def load_cancer_data():
    r"""The 569 × 30 features of ``sklearn.datasets.load_breast_cancer``, each
    standardised to mean 0 and variance 1 (population variance), with a column of ones
    appended (the intercept): rows :math:`a_i \in \mathbb R^{31}`.

    Returns
    -------
    A : ndarray, shape (569, 31)
    y : ndarray, shape (569,)
        1 for benign, 0 for malignant (scikit-learn's coding).
    """
    d = _sklearn_datasets().load_breast_cancer()
    F = np.asarray(d.data, dtype=float)
    F = (F - F.mean(axis=0)) / F.std(axis=0)
    return np.hstack([F, np.ones((F.shape[0], 1))]), np.asarray(d.target, dtype=float)


def split(n, test_fraction=0.25, seed=0):
    """Indices ``(train, test)`` of a random split of ``range(n)`` (both sorted)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not (isinstance(test_fraction, numbers.Real) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(int(round(test_fraction * n)), 1), n - 1)
    return np.sort(perm[k:]), np.sort(perm[:k])


def _sqrt_psd(C):
    w, V = np.linalg.eigh(0.5 * (C + C.T))
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _moments(F, name):
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or F.shape[0] < 2 or not np.all(np.isfinite(F)):
        raise ValueError(f"{name} must be a finite (n, k) array with n >= 2, got shape {F.shape}")
    return F.mean(axis=0), np.cov(F, rowvar=False, bias=False).reshape(F.shape[1], F.shape[1])


def frechet_distance(m1, C1, m2, C2):
    r"""The Fréchet distance (squared 2-Wasserstein distance) between
    :math:`N(m_1, C_1)` and :math:`N(m_2, C_2)`:

    .. math::

        d^2 = |m_1 - m_2|^2 + \operatorname{tr}\bigl(C_1 + C_2
              - 2\,(C_2^{1/2} C_1 C_2^{1/2})^{1/2}\bigr),

    the trace of the square root as the sum of the square roots of the eigenvalues of
    the symmetric matrix :math:`C_2^{1/2} C_1 C_2^{1/2}` (negative rounding clipped to 0).
    """
    m1, m2 = np.atleast_1d(np.asarray(m1, dtype=float)), np.atleast_1d(np.asarray(m2, dtype=float))
    C1, C2 = np.atleast_2d(np.asarray(C1, dtype=float)), np.atleast_2d(np.asarray(C2, dtype=float))
    k = m1.size
    if m2.shape != (k,) or C1.shape != (k, k) or C2.shape != (k, k):
        raise ValueError(f"shapes do not match: m1 {m1.shape}, C1 {C1.shape}, m2 {m2.shape}, "
                         f"C2 {C2.shape}")
    R = _sqrt_psd(C2)
    w = np.linalg.eigvalsh(R @ (0.5 * (C1 + C1.T)) @ R)
    cross = float(np.sum(np.sqrt(np.clip(w, 0.0, None))))
    d = m1 - m2
    return max(float(d @ d + np.trace(C1) + np.trace(C2) - 2.0 * cross), 0.0)


class FrechetReference:
    r"""The mean and covariance of reference features, for repeated Fréchet distances.

    ``ref(F)`` is :func:`frechet_distance` between the Gaussian fitted to the rows of
    ``F`` (sample mean, unbiased covariance) and the reference's, with
    :math:`C_{\text{ref}}^{1/2}` computed once: one :math:`k\times k` symmetric
    eigenvalue problem per call.

    Parameters
    ----------
    features : array_like, shape (n, k)
        The reference features (e.g. a classifier's features of real images).
    """

    def __init__(self, features):
        self.mean, self.cov = _moments(features, "features")
        self._root = _sqrt_psd(self.cov)
        self._trace = float(np.trace(self.cov))

    def __call__(self, features):
        m, C = _moments(features, "features")
        if m.shape != self.mean.shape:
            raise ValueError(f"features have {m.size} columns, the reference {self.mean.size}")
        R = self._root
        w = np.linalg.eigvalsh(R @ C @ R)
        d = m - self.mean
        value = d @ d + np.trace(C) + self._trace - 2.0 * np.sum(np.sqrt(np.clip(w, 0.0, None)))
        return max(float(value), 0.0)


def importance_moments(log_p, mean, cov, n_samples=200_000, df=10.0, rng=0, chunk=20_000):
    r"""Mean and covariance of :math:`p \propto e^{\log p}` by self-normalised importance
    sampling from the multivariate Student t with ``df`` degrees of freedom, location
    ``mean`` and scale matrix ``cov``:

    .. math::

        w_n \propto \frac{p(x_n)}{t_\nu(x_n)}, \qquad
        \hat m = \sum_n \bar w_n x_n, \qquad
        \hat\Sigma = \sum_n \bar w_n (x_n - \hat m)(x_n - \hat m)^\top ,

    with :math:`\bar w = w/\sum w`; the heavier tails of the t keep the weights bounded
    where a Gaussian proposal's would not be.

    Parameters
    ----------
    log_p : callable
        ``log_p(X)`` for rows ``X`` of shape ``(B, d)``, up to a constant.
    mean, cov : array_like
        The proposal's location and scale (e.g. the Laplace approximation).
    n_samples, df, rng, chunk
        Number of draws, degrees of freedom, random source, rows per call of ``log_p``.

    Returns
    -------
    m, S : ndarray
        The estimated mean and covariance.
    ess : float
        Kish's effective sample size :math:`(\sum w)^2/\sum w^2`.
    """
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    d = mean.size
    L = np.linalg.cholesky(np.asarray(cov, dtype=float).reshape(d, d))
    if not (isinstance(df, numbers.Real) and df > 0):
        raise ValueError(f"df must be a number > 0, got {df!r}")
    rng = np.random.default_rng(rng)
    xs, logw = [], []
    half_log_det = float(np.sum(np.log(np.diag(L))))
    for start in range(0, int(n_samples), int(chunk)):
        b = min(int(chunk), int(n_samples) - start)
        u = rng.standard_normal((b, d))
        g = rng.chisquare(df, b)
        x = mean + (u @ L.T) / np.sqrt(g / df)[:, None]
        r = np.linalg.solve(L, (x - mean).T).T
        log_t = (-0.5 * (df + d) * np.log1p(np.sum(r * r, axis=1) / df) - half_log_det
                 + scipy.special.gammaln(0.5 * (df + d)) - scipy.special.gammaln(0.5 * df)
                 - 0.5 * d * np.log(df * np.pi))
        xs.append(x)
        logw.append(np.asarray(log_p(x), dtype=float) - log_t)
    X, logw = np.concatenate(xs), np.concatenate(logw)
    w = np.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / np.sum(w * w))
    w /= w.sum()
    m = w @ X
    Xc = X - m
    return m, (Xc * w[:, None]).T @ Xc, ess


class Monitored:
    r"""A parametric problem whose **recorded value** is ``monitor(p)``.

    :func:`densflow.solve` records the value of each iterate; for a training run the
    interesting value is often not the training loss on the iterate's batch but a
    quality measure: a generator's FID, a classifier's test error, the moment error of a
    variational approximation. ``Monitored(problem, monitor)`` runs exactly the steps of
    ``problem`` (its gradients, batches, metric and step rule; a line's ``delta`` and an
    adaptive damping still see the training loss) and replaces each state's value by
    ``monitor(p)``. The monitor's cost is inside each iteration's recorded time.

    Parameters
    ----------
    problem : parametric problem
        A :class:`~densflow.parametric.Problem` or a problem of
        :mod:`densflow.parametric.flows` (anything :func:`densflow.solve` runs with a
        parametric metric).
    monitor : callable
        ``monitor(p)`` returns a finite number.
    label : str
        What the monitor measures (recorded with the problem's description).
    """

    parametric = True
    mu = None
    min_value = None

    def __init__(self, problem, monitor, label):
        if not getattr(problem, "parametric", False):
            raise TypeError(f"problem must be a parametric problem, got {type(problem).__name__}")
        if not callable(monitor):
            raise TypeError("monitor must be callable: monitor(p) -> float")
        if not isinstance(label, str) or not label:
            raise ValueError(f"label must be a non-empty string, got {label!r}")
        self.problem, self.monitor, self.label = problem, monitor, label

    def describe(self):
        """The problem's description and the monitor's label."""
        return {**self.problem.describe(), "monitor": self.label}

    def check_start(self, p0):
        """The problem's check of the start."""
        return self.problem.check_start(p0)

    def check_line_search(self, line_search):
        """The problem's check of the step rule, if it has one."""
        check = getattr(self.problem, "check_line_search", None)
        if callable(check):
            check(line_search)

    def bind(self, metric):
        """The problem's operator for ``metric`` (its directions are the problem's)."""
        return self.problem.bind(metric)

    def random_state(self):
        """The problem's random state (see :meth:`densflow.parametric.Problem.random_state`)."""
        get = getattr(self.problem, "random_state", None)
        return get() if callable(get) else None

    def set_random_state(self, text):
        """Restore the problem's random state."""
        self.problem.set_random_state(text)

    def wrap(self, inner):
        """The monitored state of the problem's state ``inner`` (kept as ``parts``)."""
        return State(inner.p, float(self.monitor(inner.p)), inner.gradient, parts=inner)

    def evaluate(self, p):
        """The problem's state at ``p`` with the monitor's value."""
        return self.wrap(self.problem.evaluate(p))

    def line(self, state, s, positive=False):
        """The problem's search line from ``state``, its states monitored."""
        return _MonitoredLine(self, self.problem.line(state.parts, s, positive))


class _MonitoredLine:
    __slots__ = ("owner", "inner")

    def __init__(self, owner, inner):
        self.owner, self.inner = owner, inner

    def delta(self, eta):
        """The problem's own decrease (the training loss), not the monitor's."""
        return self.inner.delta(eta)

    def state_at(self, eta):
        """The problem's state after the step ``eta``, monitored."""
        return self.owner.wrap(self.inner.state_at(eta))


def seed_statistics(values):
    """``(median, min, max)`` of the finite entries of ``values`` (NaN when none)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return (np.nan, np.nan, np.nan)
    return float(np.median(v)), float(v.min()), float(v.max())
