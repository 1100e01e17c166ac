"""Case files: a declarative description of a convergence experiment.

A case file is plain Python that defines a module-level ``case``::

    import densflow as df
    from densflow.app.case import Case, Panel

    case = Case(
        title="Ying (2021), Fig. 1",
        grid=df.Grid(512, dim=1),
        potential="sin(4*pi*x)",                # mu ∝ exp(-V)
        p0="uniform",
        panels=[Panel((1, 1e-3, 0), ["combined", "wasserstein", "fisher_rao"],
                      title="(1) Wasserstein + Fisher–Rao"),
                ...],
        tol=1e-12, max_iter=1000,
    )

``densflow run FILE`` loads it with :func:`densflow.app.loading.load_case`, solves every (panel, metric) pair
with the energy ``α1 HMinus1 + α2 KL + α3 Dirichlet`` of the panel's weights, records
the runs in one HDF5 file and draws one figure panel per :class:`Panel`.

The potential and a non-uniform initial density are NumPy expressions of the
coordinates (``x`` in 1D, ``x1`` and ``x2`` in 2D), so that the run file can record
them as text and the case can be rerun from the file alone (the expression language:
:mod:`densflow.app.expressions`; importing the file: :mod:`densflow.app.importing`).
"""

import numbers
import os

import numpy as np

from ..energies import terms as _energies
from ..metrics import natural as _metrics
from ..core.validation import check_positive_int, check_real_or_none, check_safeguard
from ..core.grid import BOUNDARIES, Grid
from ..gridproblem import DEFAULT_METHOD
from ..gridproblem import check_method as _check_method
from ..optim.linesearch import Armijo
from .expressions import EXPRESSION_NAMES, evaluate_expression, evaluate_terms  # noqa: F401
from .importing import CaseError, load_object, recorded_path  # noqa: F401  (re-exported)

__all__ = ["Case", "Panel", "CaseError", "evaluate_expression", "load_object", "recorded_path"]

_METRIC_LABELS = {"wasserstein": "Wasserstein", "fisher_rao": "Fisher–Rao",
                  "mahalanobis": "Mahalanobis", "combined": "combined"}


class Panel:
    """One panel of a case: energy weights and the metrics compared on it.

    Parameters
    ----------
    weights : sequence of 3 numbers
        :math:`(\\alpha_1, \\alpha_2, \\alpha_3)` of the H⁻¹ (Wasserstein-type), KL
        (Fisher–Rao-type) and Dirichlet (Mahalanobis-type) terms; >= 0, not all zero.
    metrics : sequence of str or Metric
        The metrics run on this panel, in legend order, e.g.
        ``["combined", "wasserstein", "fisher_rao"]``; names must be distinct.
    title : str or None
        Panel title; by default the single metrics' names joined by ``+``.
    terms : str or None
        Free-energy terms added to the panel's energy, as an expression of
        :data:`~densflow.app.expressions.TERM_NAMES`
        (:func:`~densflow.app.expressions.evaluate_terms`), e.g. ``"0.1 * Entropy() +
        Interaction('-exp(-x**2 / 0.08)')"``; the weights may then all be zero.
    """

    def __init__(self, weights, metrics, title=None, terms=None):
        w = tuple(weights) if not isinstance(weights, (str, bytes)) else ()
        if len(w) != 3 or not all(isinstance(a, numbers.Real) and not isinstance(a, bool)
                                  and np.isfinite(a) and a >= 0
                                  for a in w):
            raise ValueError(f"Panel weights must be three finite numbers >= 0, got {weights!r}")
        if not any(a > 0 for a in w) and terms is None:
            raise ValueError(f"Panel weights must not all be zero, got {weights!r}")
        if terms is not None and (not isinstance(terms, str) or not terms.strip()):
            raise TypeError(f"Panel terms must be a non-empty expression string or None, got {terms!r}")
        self.terms = terms
        self.weights = tuple(float(a) for a in w)
        if isinstance(metrics, (str, _metrics.Metric)) or not len(metrics):
            raise ValueError(f"Panel metrics must be a non-empty list of metric names, got {metrics!r}")
        self.metrics = [_metrics.get(m) for m in metrics]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Panel metrics must be distinct, got {names}")
        if title is None:
            title = " + ".join(_METRIC_LABELS[n] for n in names if n != "combined")
        self.title = str(title)

    @property
    def metric_names(self):
        return [m.name for m in self.metrics]

    def __repr__(self):
        return f"Panel({self.weights}, {self.metric_names}, title={self.title!r})"


class Case:
    """A convergence experiment: one grid, one reference measure, several panels.

    Parameters
    ----------
    grid : Grid
        The grid (periodic, or a no-flux box: ``Grid(n, dim, boundary="neumann")``).
    potential : str
        :math:`V` as an expression of ``x`` (1D) or ``x1, x2`` (2D); the reference
        measure is :math:`\\mu \\propto \\exp(-V)` (:meth:`Grid.gibbs`).
    panels : sequence of Panel
        The weight sets and metrics.
    p0 : str
        Initial density: ``"uniform"`` or an expression (as for ``potential``) of a
        positive function, normalised to a probability vector.
    name : str or None
        Short name (default output file ``NAME.h5``); :func:`~densflow.app.loading.load_case` fills in the
        file's stem when omitted.
    title : str or None
        Figure title.
    tol, gtol, max_iter, line_search, safeguard, method, newton
        Stopping rules, line search, safeguard, method and Newton settings, as in
        :func:`densflow.solve`, whose defaults they share (``safeguard=None,
        method="gradient"``: the paper's plain method). ``densflow run --method``
        overrides ``method``.
    snapshot_every : int
        Store the density every this many iterations in the run file.
    boundary : {"periodic", "neumann"} or None
        Put the case on the torus or the no-flux box of ``grid``'s size (:ref:`boxes`);
        ``None`` keeps ``grid``'s boundary. The run file records it (a box run's
        ``grid_boundary``) and a resume that changes it is refused.
    """

    def __init__(self, grid, potential, panels, p0="uniform", name=None, title=None,
                 tol=1e-12, gtol=None, max_iter=1000, line_search=None, snapshot_every=10,
                 safeguard=0.1, method=DEFAULT_METHOD, newton=None, boundary=None):
        if not isinstance(grid, Grid):
            raise TypeError(f"Case grid must be a densflow.Grid, got {type(grid).__name__}")
        if boundary is not None:
            if not isinstance(boundary, str) or boundary not in BOUNDARIES:
                raise ValueError(f"Case boundary must be one of {', '.join(map(repr, BOUNDARIES))} "
                                 f"or None, got {boundary!r}")
            if not grid.periodic and boundary != grid.boundary:
                raise ValueError(f"Case boundary={boundary!r} contradicts its grid's "
                                 f"boundary {grid.boundary!r}; give one of them")
            grid = Grid(grid.n, grid.dim, boundary=boundary)
        self.grid = grid
        self.potential = potential
        self.mu = self._gibbs(potential)
        self.p0 = p0
        self.initial_density()  # validates the recipe
        panels = list(panels)
        if not panels or not all(isinstance(p, Panel) for p in panels):
            raise ValueError("Case panels must be a non-empty list of densflow.app.case.Panel")
        self.panels = panels
        for panel in panels:  # validates the terms expressions
            if panel.terms is not None:
                evaluate_terms(panel.terms, grid)
        if name is not None and (not isinstance(name, str) or not name or os.sep in name):
            raise ValueError(f"Case name must be a non-empty string without {os.sep!r}, got {name!r}")
        self.name = name
        self.title = title
        for key, v in (("tol", tol), ("gtol", gtol)):
            check_real_or_none(v, f"Case {key}")
        self.tol, self.gtol = tol, gtol
        self.max_iter = check_positive_int(max_iter, "max_iter", minimum=0)
        self.line_search = line_search  # None: the method's default
        if line_search is not None and not isinstance(line_search, Armijo):
            raise TypeError("Case line_search must be a densflow.Armijo instance or None")
        self.method = method
        self.newton = newton
        _check_method(method, newton)
        self.snapshot_every = check_positive_int(snapshot_every, "snapshot_every")
        self.safeguard = check_safeguard(safeguard, "Case safeguard")
        self.path = None  # set by densflow.app.loading.load_case

    def _gibbs(self, potential):
        values = evaluate_expression(potential, self.grid, name="potential")
        return self.grid.gibbs(lambda *_: values)

    def initial_density(self):
        """The initial probability vector from the ``p0`` recipe."""
        if self.p0 == "uniform":
            return self.grid.uniform()
        values = evaluate_expression(self.p0, self.grid, name="p0")
        if not np.all(values > 0):
            raise ValueError(f"p0 {self.p0!r} must be positive on the whole grid")
        return values / values.sum()

    def energy(self, panel):
        """The energy ``α1 HMinus1 + α2 KL + α3 Dirichlet`` of a panel, plus its ``terms``."""
        a1, a2, a3 = panel.weights
        g, mu = self.grid, self.mu
        energy = (a1 * _energies.HMinus1(g, mu) + a2 * _energies.KL(g, mu)
                  + a3 * _energies.Dirichlet(g, mu))
        if panel.terms is not None:
            energy = energy + evaluate_terms(panel.terms, g)
        return energy

    def solve_options(self):
        """Keyword arguments of :func:`densflow.solve` shared by all runs."""
        return {"tol": self.tol, "gtol": self.gtol, "max_iter": self.max_iter,
                "line_search": self.line_search, "safeguard": self.safeguard,
                "method": self.method, "newton": self.newton}

    def run_attributes(self, panel=None):
        """Text attributes of every run: the recipes of μ and p0 (ASCII: every HDF5 tool
        prints them as they are), and a panel's ``terms`` expression (``terms_recipe``)."""
        v = "V(x)" if self.grid.dim == 1 else "V(x1, x2)"
        attrs = {"mu_recipe": f"gibbs: mu proportional to exp(-{v}), {v} = {self.potential}",
                 "p0_recipe": self.p0 if self.p0 == "uniform" else f"normalised {self.p0}"}
        if panel is not None and panel.terms is not None:
            attrs["terms_recipe"] = panel.terms
        return attrs

    def notes(self):
        """Remarks a user should see before the runs: a combined metric whose wavelet
        level (``level=None``) was lowered below PyWavelets' advice to fit ``n``."""
        import pywt

        from ..core.wavelets import valid_levels

        notes = []
        if not self.grid.periodic:  # the box's basis has its own default level
            return notes
        n, levels = self.grid.n, valid_levels(self.grid.n)
        for i, panel in enumerate(self.panels, start=1):
            for m in panel.metrics:
                if not isinstance(m, _metrics.Combined) or m.level is not None or not levels:
                    continue
                try:
                    advised = pywt.dwt_max_level(n, pywt.Wavelet(m.wavelet).dec_len)
                except Exception:  # noqa: BLE001 - a bad wavelet is reported by the run
                    continue
                if levels[-1] < advised:
                    notes.append(f"panel {i} {m.name}: wavelet level {levels[-1]} instead of "
                                 f"{advised} (PyWavelets' advice for {m.wavelet} at n = {n}): "
                                 f"n = {n} is divisible by 2**{levels[-1]} but not by "
                                 f"2**{levels[-1] + 1}")
        return notes

    def __repr__(self):
        return f"Case(name={self.name!r}, grid={self.grid!r}, {len(self.panels)} panels)"
