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
them as text and the case can be rerun from the file alone.
"""

import importlib.util
import numbers
import os
import sys
import traceback

import numpy as np

from .. import energies as _energies_free
from ..energies import terms as _energies
from ..metrics import natural as _metrics
from ..core.validation import check_positive_int, check_real_or_none, check_safeguard
from ..core.grid import BOUNDARIES, Grid
from ..gridproblem import DEFAULT_METHOD
from ..gridproblem import check_method as _check_method
from ..optim.linesearch import Armijo

__all__ = ["Case", "Panel", "CaseError", "evaluate_expression", "load_object", "recorded_path"]

#: Names available in potential and initial-density expressions (plus the coordinates).
EXPRESSION_NAMES = {"np": np, "pi": np.pi, "e": np.e, "sin": np.sin, "cos": np.cos,
                    "tan": np.tan, "exp": np.exp, "log": np.log, "sqrt": np.sqrt,
                    "abs": np.abs, "tanh": np.tanh, "cosh": np.cosh, "sinh": np.sinh}


#: Names of free-energy terms in a panel's ``terms`` expression (:ref:`free-energies`):
#: ``PorousMedium(m)``, ``Potential("V expression of x")``, ``Interaction("W expression
#: of the displacement x")`` (``x1, x2`` in 2D), ``Entropy()`` (KL to the uniform density).
TERM_NAMES = ("PorousMedium", "Potential", "Interaction", "Entropy")


def evaluate_terms(expr, grid):
    """The energy of a panel's ``terms`` expression, e.g. ``"PorousMedium(3) +
    Potential('cos(2*pi*x)')"`` or ``"0.1 * Entropy() + Interaction('-exp(-x**2/0.08)')"``
    (see :data:`TERM_NAMES`; ``Interaction``'s expression is evaluated on the wrapped
    displacements, :func:`densflow.energies.interaction.displacements`)."""
    from ..energies.interaction import displacements

    if not isinstance(expr, str) or not expr.strip():
        raise TypeError(f"Panel terms must be a non-empty expression string, got {expr!r}")

    def on(values):
        return lambda *_: values

    def potential(v):
        return _energies_free.Potential(grid, on(evaluate_expression(v, grid, name="Potential V")))

    def interaction(w):
        d = displacements(grid)
        shifted = _Shifted(grid, d)
        return _energies_free.Interaction(grid, on(evaluate_expression(w, shifted, name="Interaction W")))

    names = {"PorousMedium": lambda m: _energies_free.PorousMedium(grid, m),
             "Potential": potential, "Interaction": interaction,
             "Entropy": lambda: _energies.KL(grid, grid.uniform())}
    try:
        energy = eval(expr, {"__builtins__": {}, **EXPRESSION_NAMES}, names)  # noqa: S307
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Panel terms {expr!r}: {exc}") from None
    except Exception as exc:
        raise ValueError(f"Panel terms {expr!r} cannot be evaluated ({type(exc).__name__}: {exc}; "
                         f"allowed names: {', '.join(TERM_NAMES)} and numbers)") from None
    if isinstance(energy, _energies.Term):
        energy = 1.0 * energy
    if not isinstance(energy, _energies.Energy):
        raise ValueError(f"Panel terms {expr!r} must be a sum of terms ({', '.join(TERM_NAMES)}), "
                         f"got {type(energy).__name__}")
    return energy


class _Shifted:
    """A grid stand-in whose coordinates are the wrapped displacements."""

    def __init__(self, grid, d):
        self.dim, self.shape, self._d = grid.dim, grid.shape, d

    def coordinates(self):
        return self._d


def expression_names(dim, variables=None):
    """The names an expression may use on a ``dim``-dimensional grid, as text."""
    coords = ("x" if dim == 1 else "x1, x2") if variables is None else ", ".join(variables)
    return f"{coords}, " + ", ".join(n for n in EXPRESSION_NAMES if n != "np") + " and np (NumPy)"

_METRIC_LABELS = {"wasserstein": "Wasserstein", "fisher_rao": "Fisher–Rao",
                  "mahalanobis": "Mahalanobis", "combined": "combined"}


class CaseError(Exception):
    """A case file cannot be loaded; the message is one line naming the file."""


def evaluate_expression(expr, grid, name="expression", variables=None):
    """Evaluate a NumPy expression of the coordinates on ``grid``.

    Parameters
    ----------
    expr : str
        E.g. ``"sin(4*pi*x)"`` (1D) or ``"sin(4*pi*x1) * sin(4*pi*x2)"`` (2D); the
        functions of :data:`EXPRESSION_NAMES` and ``np`` are available.
    grid : Grid
        The grid.
    name : str
        The argument's name, for error messages.
    variables : dict or None
        Other variables than the coordinates (name to an array of the grid's shape),
        e.g. the displacements of an interaction kernel.

    Returns
    -------
    ndarray
        The finite values, of the grid's shape.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise TypeError(f"{name} must be a non-empty expression string, got {expr!r}")
    what = "coordinates" if variables is None else "variables"
    if variables is None:
        coords = grid.coordinates()
        variables = {"x": coords} if grid.dim == 1 else {"x1": coords[0], "x2": coords[1]}
    where = " and ".join(variables)
    try:
        with np.errstate(all="ignore"):
            values = eval(expr, {"__builtins__": {}, **EXPRESSION_NAMES}, variables)  # noqa: S307
        if np.iscomplexobj(values):
            raise TypeError("the expression has complex values")
        values = np.broadcast_to(np.asarray(values, dtype=float), grid.shape)
    except Exception as exc:
        raise ValueError(f"{name} {expr!r} cannot be evaluated on the {grid.dim}D grid "
                         f"({type(exc).__name__}: {exc}; the {what} are {where}; "
                         f"allowed names: {expression_names(grid.dim, variables)})") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} {expr!r} is not finite everywhere on the grid")
    return np.array(values)


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
        :data:`TERM_NAMES` (:func:`evaluate_terms`), e.g. ``"0.1 * Entropy() +
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


def _case_frame_line(exc, path):
    """The line of ``path`` in the traceback of ``exc`` (deepest one), or None."""
    target = os.path.abspath(path)
    if isinstance(exc, SyntaxError) and exc.filename and os.path.abspath(exc.filename) == target:
        return exc.lineno
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
             if os.path.abspath(f.filename) == target]
    return lines[-1] if lines else None


def load_module(path, kind="case"):
    """Import the Python file ``path`` as a fresh module and return ``(module, stem)``.

    Raises
    ------
    CaseError
        With a one-line message naming the file and the problem: the file does not
        exist, is not a Python file or raises on import (with the line in the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = f"is a directory, not a {kind} file" if os.path.isdir(path) else f"no such {kind} file"
        raise CaseError(f"{path}: {what}")
    stem = os.path.splitext(os.path.basename(path))[0]
    module_name = f"densflow_case_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise CaseError(f"{path}: not a Python file ({kind} files end in .py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:
        line = _case_frame_line(exc, path)
        where = f" (line {line})" if line else ""
        raise CaseError(f"{path}{where}: calls sys.exit({exc.code!r}) on import; a {kind} "
                        f"file must define '{kind}', not exit") from None
    except Exception as exc:
        line = _case_frame_line(exc, path)
        where = f" (line {line})" if line else ""
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        first = msg.strip().splitlines()[0] if msg.strip() else ""
        raise CaseError(f"{path}{where}: {type(exc).__name__} on import: {first}") from None
    finally:
        sys.modules.pop(module_name, None)
    return module, stem


def load_object(path, attr, cls):
    """Import ``path`` and return ``(module.attr, stem)``, checking it is a ``cls``.

    Raises
    ------
    CaseError
        One line naming the file: as :func:`load_module`, or no (or a wrong) ``attr``.
    """
    module, stem = load_module(path)
    obj = getattr(module, attr, None)
    qualified = " or ".join(f"{c.__module__}.{c.__name__}"
                            for c in (cls if isinstance(cls, tuple) else (cls,)))
    if obj is None:
        raise CaseError(f"{path}: defines no {attr} (expected a module-level "
                        f"'{attr} = {qualified}(...)')")
    if not isinstance(obj, cls):
        raise CaseError(f"{path}: '{attr}' is a {type(obj).__name__}, not a {qualified}")
    return obj, stem


def recorded_path(path):
    """The path of a case file as a run file records it (``case_file``).

    Relative to the current directory when the file lies below it (as typed, e.g.
    ``cases/ying2021_fig1.py``), else the file's name alone: a run file names no
    folder of the machine it was written on (its ``case_source`` holds the text).
    """
    path = os.path.abspath(os.fspath(path))
    relative = os.path.relpath(path, os.getcwd())
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return os.path.basename(path)
    return relative.replace(os.sep, "/")
