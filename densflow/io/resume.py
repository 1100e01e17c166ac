"""Resuming a recorded run (``densflow run --resume``, :func:`densflow.solve` with
``resume=True``): the comparison of a run's setup with the recorded one, and the cut of
the recorded histories back to the last snapshot (used by :mod:`densflow.io.runrecord`).

A run resumes only if nothing that alters its arithmetic changed: every setup attribute,
the recipes, its reference array (μ) and p0. Values compare exactly (NaN equal to NaN).
"""

from dataclasses import dataclass, field

import numpy as np

from .h5io import DamagedFileError
from .runlayout import STATE_BYTES, decode_state
from .runfile import INNER_HISTORIES
from ..optim.result import SolveResult

__all__ = ["Resume", "ResumeError", "SETUP_KEYS", "same", "plain", "setup_difference",
           "check_identity", "refusal", "damaged", "read_last_snapshot", "truncate"]

#: Attributes that identified a run's setup in files written before runs recorded their
#: ``setup_keys``. Resuming now compares every attribute
#: the problem kind returns (:attr:`densflow.optim.kinds.Bound.setup`), and the run's recipes,
#: its reference array (μ) and p0, whatever their names.
SETUP_KEYS = ("metric", "metric_wavelet", "metric_level", "grid_n", "grid_dim", "energy_terms",
              "energy_kinds", "energy_weights", "tol", "gtol", "max_iter", "line_search_eta0",
              "line_search_shrink", "line_search_c1", "line_search_min_step", "snapshot_every",
              "safeguard_floor")


class ResumeError(ValueError):
    """A recorded run cannot be resumed by this call (it was set up differently)."""


@dataclass
class Resume:
    """Where a recorded run continues: histories up to the last snapshot ``k`` and the
    density there, or the stored ``result`` of a complete run."""

    k: int = 0
    p: np.ndarray = None
    energies: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    decrements: list = field(default_factory=list)
    times: list = field(default_factory=list)
    result: SolveResult = None
    inner: dict = field(default_factory=dict)
    #: The problem's state recorded with the snapshot (``None``: none was recorded).
    state: str = None


def same(a, b):
    """Whether two recorded values are equal: arrays of the same shape, floats equal
    or both NaN, anything else equal as text."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return a.shape == b.shape and bool(np.all(a.astype(str) == b.astype(str)))


def plain(value):
    """A value as plain Python, shortened, for messages."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    value = value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def setup_difference(identity, attrs, legacy=True):
    """The first attribute in which a run's setup ``identity`` differs from the recorded
    ``attrs`` (a group's attributes), as ``"recorded KEY = OLD, this run has NEW"``, or
    ``None``. Compared: every key of ``identity``, then the recorded ``setup_keys``.

    ``legacy`` reads the groups written before runs recorded their ``setup_keys`` (then
    :data:`SETUP_KEYS` are compared) or their ``mu_recipe`` in ASCII (a recorded
    proportionality sign reads as ``" proportional to "``); flows, which always recorded
    both, pass ``False``: without ``setup_keys`` only the keys of ``identity`` compare."""
    recorded = attrs.get("setup_keys")
    if recorded is None:
        recorded = SETUP_KEYS if legacy else ()
    recorded = [k.decode() if isinstance(k, bytes) else str(k) for k in recorded]
    for key in list(identity) + [k for k in recorded if k not in identity]:
        new, old = identity.get(key), attrs.get(key)
        if legacy and key == "mu_recipe" and isinstance(old, str):  # recorded before ASCII
            old = old.replace(" \u221d ", " proportional to ")
        if (new is None) != (old is None) or (new is not None and not same(new, old)):
            return f"recorded {key} = {plain(old)}, this run has {plain(new)}"
    return None


def refusal(path, what_run, name, what):
    """The :class:`ResumeError` refusing to resume the recorded ``what_run`` (``"run"``,
    ``"flow"``) ``name`` of the file ``path`` because of ``what``."""
    return ResumeError(f"{path}: cannot resume {what_run} {name!r}: {what}; "
                       "use --overwrite (or a new output file) to run the changed case")


def damaged(path, what_run, name, what, exc):
    """The :class:`~densflow.io.h5io.DamagedFileError` saying that ``what`` of the
    recorded ``what_run`` ``name`` of the file ``path`` cannot be read (``exc``: the
    error, its first line shortened to 120 characters)."""
    return DamagedFileError(f"{path}: damaged run file: {what_run} {name!r}: {what} "
                            f"cannot be read ({str(exc).splitlines()[0][:120]})")


def check_identity(g, identity, mu, p0, refuse):
    """Raise ``refuse(what)`` (a :class:`ResumeError`) if anything that alters the
    arithmetic of the recorded run ``g`` changed: the setup, μ, or p0 (its first
    snapshot)."""
    difference = setup_difference(identity, g.attrs)
    if difference is not None:
        raise refuse(difference)
    if mu is not None:
        old_mu = g["mu"][()] if "mu" in g else None
        if old_mu is None or not same(old_mu, mu):
            raise refuse("its reference measure mu differs from the recorded one (dataset mu)")
    if "snapshots" in g and g["snapshots"].shape[0] and not same(g["snapshots"][0], p0):
        raise refuse("its initial density differs from p0 (snapshots[0])")


def _lengths(g, k):
    """The length of each history of ``g`` up to the snapshot at iteration ``k``."""
    return {"energies": k + 1, "steps": k, "decrements": k, "times": k,
            **{key: k for key in INNER_HISTORIES if key in g}}


def read_last_snapshot(g, k, m, refuse):
    """Read the recorded run ``g`` up to its ``m``-th snapshot, at iteration ``k``.

    Returns a :class:`Resume` (histories, the density and the problem's state there);
    raises ``refuse(what)`` when a history is shorter than the snapshot needs.
    """
    data = {}
    for key, n in _lengths(g, k).items():
        if g[key].shape[0] < n:
            raise refuse(f"{key} holds {g[key].shape[0]} entries, the snapshot "
                         f"at iteration {k} needs {n}")
        data[key] = [v.item() for v in g[key][:n]]
    p = g["snapshots"][m - 1]
    states = g["snapshot_states"] if "snapshot_states" in g else None
    state = (decode_state(states[m - 1]) if states is not None and states.shape[0] >= m
             else None)
    inner = {key: data.pop(key) for key in INNER_HISTORIES if key in data}
    return Resume(k=k, p=p, inner=inner, state=state, **data)


def truncate(g, k, m):
    """Cut the recorded run ``g`` back to its ``m``-th snapshot, at iteration ``k``,
    and mark it running again (the caller flushes the file)."""
    for key, n in _lengths(g, k).items():
        g[key].resize((n,))
    g["snapshot_iterations"].resize((m,))
    g["snapshots"].resize((m, *g["snapshots"].shape[1:]))
    states = g["snapshot_states"] if "snapshot_states" in g else None
    if states is not None and states.shape[0] >= m:
        states.resize((m, STATE_BYTES))
    for key in ("p_final", "error"):
        if key in g:
            del g[key]
        if key in g.attrs:
            del g.attrs[key]
    g.attrs.update({"status": "running", "resumed_from": k, "n_iter": k})
