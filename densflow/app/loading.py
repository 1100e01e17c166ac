"""Loading a case file, grid (:class:`~densflow.app.case.Case`), parametric
(:class:`~densflow.app.parametric_case.ParametricCase`) or flow
(:class:`~densflow.app.flow_case.FlowCase`)."""

import os

from .case import Case, Panel
from .expressions import evaluate_expression
from .importing import CaseError, load_object, recorded_path  # noqa: F401
from .flow_case import FlowCase
from .parametric_case import ParametricCase

__all__ = ["load_case", "Case", "CaseError", "Panel", "ParametricCase", "FlowCase",
           "evaluate_expression"]


def load_case(path):
    """Import the case file ``path`` and return its ``case`` (a :class:`Case`, or a
    :class:`densflow.app.parametric_case.ParametricCase`, or a
    :class:`densflow.app.flow_case.FlowCase`).

    Raises
    ------
    CaseError
        With a one-line message naming the file and the problem: the file does not
        exist, raises on import (with the line in the case file), or does not define
        a module-level ``case`` that is a :class:`Case`.
    """
    path = os.fspath(path)
    case, stem = load_object(path, "case", (Case, ParametricCase, FlowCase))
    if case.name is None:
        case.name = stem
    case.path = path
    return case
