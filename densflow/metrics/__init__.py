"""Natural-gradient metrics on grid densities (:ref:`metrics`); the definitions live in
:mod:`densflow.metrics.natural`."""

from . import box  # noqa: F401  (registers the metrics of the no-flux box)
from .natural import NAMES, Combined, FisherRao, Mahalanobis, Metric, Safeguard, Wasserstein, get

__all__ = ["Metric", "Wasserstein", "FisherRao", "Mahalanobis", "Combined", "Safeguard", "get", "NAMES"]
