"""Loading a case file, grid (:class:`~densflow.app.case.Case`) or parametric
(:class:`~densflow.app.parametric_case.ParametricCase`)."""

import os

from .case import Case, CaseError, Panel, evaluate_expression, load_object, recorded_path  # noqa: F401
from .parametric_case import ParametricCase

__all__ = ["load_case", "Case", "CaseError", "Panel", "ParametricCase", "evaluate_expression"]


def load_case(path):
    """Import the case file ``path`` and return its ``case`` (a :class:`Case`, or a
    :class:`densflow.app.parametric_case.ParametricCase`).

    Raises
    ------
    CaseError
        With a one-line message naming the file and the problem: the file does not
        exist, raises on import (with the line in the case file), or does not define
        a module-level ``case`` that is a :class:`Case`.
    """
    path = os.fspath(path)
    case, stem = load_object(path, "case", (Case, ParametricCase))
    if case.name is None:
        case.name = stem
    case.path = path
    return case
