"""Errors in the user's input to the ``densflow`` command, reported in one line
(``densflow: error: ...``, exit status 2), and the printers of its progress lines."""

import contextlib

__all__ = ["UsageError", "usage_errors", "printer"]


class UsageError(Exception):
    """A problem with the user's input, reported in one line."""


@contextlib.contextmanager
def usage_errors(*errors):
    """Turn the exceptions ``errors`` raised in the block into a :class:`UsageError`
    with the same message (and no chained traceback)."""
    try:
        yield
    except errors as exc:
        raise UsageError(str(exc)) from None


def printer(stream, indent=""):
    """``emit(line)`` printing ``indent + line`` to ``stream``, flushed."""
    return lambda line: print(indent + line, file=stream, flush=True)
