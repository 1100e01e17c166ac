"""Reading recorded flows back (the layout is described in :mod:`densflow.io.flowrecord`).

:func:`densflow.io.runfile.read_run_file` lists the flows of a file in
``RunFile.flows``; :func:`densflow.io.runfile.read_flows` reads them alone (with their densities when
asked). As for runs, a damaged or hand-made group gives a one-line
:class:`~densflow.io.h5io.DamagedFileError`.
"""

from dataclasses import dataclass

import h5py
import numpy as np

from .h5io import DamagedFileError, RunFileError, numeric_dataset

__all__ = ["FlowRun", "FLOW_KIND", "FLOW_HISTORIES", "FRAME_DATASETS", "is_flow_group",
           "read_flow_group", "flow_groups"]

#: The ``kind`` attribute of a flow's group.
FLOW_KIND = "flow"
#: Per-step datasets of a flow (``step_times`` and ``energies`` have one more entry).
FLOW_HISTORIES = ("step_times", "energies", "steps", "newton_iterations", "cg_iterations", "errors")
#: The datasets of the saved densities, one row per density.
FRAME_DATASETS = ("times", "frame_steps", "densities")
_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError)


def _text(value, default=""):
    if value is None:
        return default
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


@dataclass
class FlowRun:
    """One recorded flow.

    Attributes
    ----------
    name : str
        The group.
    attrs : dict
        Its attributes (the setup, ``status``, ``message``, ...).
    step_times, energies, steps, newton_iterations, cg_iterations, errors : ndarray
        The trajectory, as in :class:`densflow.flows.FlowResult`.
    times, frame_steps : ndarray
        Times and steps of the saved densities.
    densities : ndarray or None
        The saved densities (read when asked for).
    p0, p_final, mu : ndarray or None
    """

    name: str
    attrs: dict
    step_times: np.ndarray
    energies: np.ndarray
    steps: np.ndarray
    newton_iterations: np.ndarray
    cg_iterations: np.ndarray
    errors: np.ndarray
    times: np.ndarray
    frame_steps: np.ndarray
    densities: np.ndarray = None
    p0: np.ndarray = None
    p_final: np.ndarray = None
    mu: np.ndarray = None

    @property
    def label(self):
        return _text(self.attrs.get("label"), self.name)

    @property
    def metric(self):
        return _text(self.attrs.get("metric"), "?")

    @property
    def scheme(self):
        return _text(self.attrs.get("scheme"), "?")

    @property
    def status(self):
        return _text(self.attrs.get("status"), "?")

    @property
    def converged(self):
        return bool(self.attrs.get("converged", False))

    @property
    def failed(self):
        return bool(self.attrs.get("failed", False))

    @property
    def message(self):
        return _text(self.attrs.get("message"))

    @property
    def n_steps(self):
        return int(self.steps.size)

    @property
    def t(self):
        """The last recorded time."""
        return float(self.step_times[-1]) if self.step_times.size else float("nan")

    @property
    def t_end(self):
        return float(self.attrs.get("t_end", np.nan))

    @property
    def wall_time(self):
        return float(self.attrs.get("wall_time", np.nan))

    @property
    def grid_dim(self):
        return int(self.attrs.get("grid_dim", self.p0.ndim if self.p0 is not None else 1))


def is_flow_group(obj):
    """Whether the HDF5 object is a recorded flow."""
    try:
        return isinstance(obj, h5py.Group) and _text(obj.attrs.get("kind")) == FLOW_KIND
    except _READ_ERRORS:
        return False


def _array(g, key, where, required=True, ndim=None):
    obj = numeric_dataset(g, key, where, required=required, ndim=ndim)
    return None if obj is None else obj[()]


def read_flow_group(g, densities=False, path="run file"):
    """Read the flow in the group ``g`` (with its saved densities if ``densities``)."""
    where = f"{path}: damaged run file: flow {g.name.lstrip('/')!r}"
    try:
        data = {key: _array(g, key, where, ndim=1) for key in FLOW_HISTORIES + FRAME_DATASETS[:2]}
        n = data["steps"].size
        for key in FLOW_HISTORIES:
            want = n + 1 if key in ("step_times", "energies") else n
            if data[key].size != want:
                raise DamagedFileError(f"{where}: {key} holds {data[key].size} entries for "
                                       f"{n} steps")
        if data["times"].size != data["frame_steps"].size:
            raise DamagedFileError(f"{where}: times and frame_steps differ in length")
        run = FlowRun(name=g.name.lstrip("/"), attrs=dict(g.attrs), **data,
                      densities=_array(g, "densities", where) if densities else None,
                      p0=_array(g, "p0", where, required=False),
                      p_final=_array(g, "p_final", where, required=False),
                      mu=_array(g, "mu", where, required=False))
        run.metric, run.scheme, run.status, run.message, run.wall_time, run.t_end  # noqa: B018
        return run
    except RunFileError:
        raise
    except _READ_ERRORS as exc:
        raise DamagedFileError(f"{where}: cannot be read ({str(exc).splitlines()[0][:160]})") from None


def flow_groups(f, path):
    """The flow groups of an open file, by their ``index`` attribute (a case's order),
    then by name."""
    groups = []
    try:
        f.visititems(lambda name, obj: groups.append(obj) if is_flow_group(obj) else None)
    except _READ_ERRORS as exc:
        raise DamagedFileError(f"{path}: damaged run file, its groups cannot be listed "
                               f"({str(exc).splitlines()[0][:160]})") from None

    def order(g):
        try:
            return (int(g.attrs.get("index", 0)), g.name)
        except _READ_ERRORS:
            return (0, g.name)

    return sorted(groups, key=order)
