"""Deprecated module paths of densflow 0.1, kept for one release.

The package was reorganised into layers (``docs/architecture.rst``); importing a module
by its old path still works and returns the module at its new path, with a
:class:`DeprecationWarning` naming it.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module path -> new module path.
MOVED = {
    "densflow.solver": "densflow.solving",
    "densflow.grid": "densflow.core.grid",
    "densflow.operators": "densflow.core.operators",
    "densflow.wavelets": "densflow.core.wavelets",
    "densflow.energy_lines": "densflow.energies.lines",
    "densflow.linesearch": "densflow.optim.linesearch",
    "densflow.recorder": "densflow.io.recorder",
    "densflow.runfile": "densflow.io.runfile",
    "densflow.case": "densflow.app.loading",
    "densflow.runner": "densflow.app.runner",
    "densflow.sweep": "densflow.app.sweep",
    "densflow.cli": "densflow.app.cli",
    "densflow.figures": "densflow.app.figures",
    "densflow.parametric.case": "densflow.app.parametric_case",
    "densflow.parametric.figures": "densflow.app.parametric_figures",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        warnings.warn(f"{spec.name} is deprecated; import {self.new} instead",
                      DeprecationWarning, stacklevel=4)
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        new = MOVED.get(name)
        if new is None:
            return None
        return importlib.util.spec_from_loader(name, _AliasLoader(new))


def install():
    """Put the finder for the deprecated paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
