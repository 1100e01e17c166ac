"""Importing a case (or sweep) file as a fresh module, with one-line errors naming the
file, and the path a run file records for it."""

import importlib.util
import os
import sys
import traceback

__all__ = ["CaseError", "load_module", "load_object", "recorded_path"]


class CaseError(Exception):
    """A case file cannot be loaded; the message is one line naming the file."""


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
