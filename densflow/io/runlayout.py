"""The layout of a recorded run (written by :mod:`densflow.io.runrecord`): the
descriptions and storage options of its datasets, the attributes every run carries
(versions, times, recipes, strings) and the encoding of a problem's state in
``snapshot_states``."""

import datetime

import h5py
import numpy as np

__all__ = ["DEFAULT_RECIPES", "DATASET_ATTRS", "STATE_BYTES", "CHECKED", "PACKED",
           "encode_state", "decode_state", "string_array", "describe", "now", "versions",
           "nbytes"]

#: Recipes a run records when the caller gives none.
DEFAULT_RECIPES = {"p0_recipe": "array (snapshots[0])", "mu_recipe": "array (dataset mu)"}
#: ``units`` (UDUNITS spelling, ``"1"``: dimensionless) and ``description`` attributes of
#: every dataset of a run, in ASCII so that every HDF5 tool prints them as they are.
DATASET_ATTRS = {
    "energies": ("1", "energy E(p_k) for k = 0 ... n_iter"),
    "steps": ("1", "accepted step size eta_k of iteration k = 1 ... n_iter"),
    "decrements": ("1", "natural-gradient decrement s_k . g_k"),
    "times": ("s", "wall time of each iteration"),
    "snapshots": ("1", "density p_k (probability per cell) every snapshot_every iterations"),
    "snapshot_iterations": ("1", "the iteration k of each snapshot"),
    "snapshot_states": ("1", "problem state before each snapshot's evaluation (a random "
                             "generator's, JSON as zero-padded ASCII bytes), for exact resume"),
    "cg_iterations": ("1", "Newton: preconditioned CG iterations of each step"),
    "hessian_products": ("1", "Newton: Hessian-vector products of each step"),
    "inner_iterations": ("1", "Newton, 2D: CG iterations of the L_mu^+ solves of each step"),
    "p_final": ("1", "last iterate p_n_iter (probability per cell)"),
    "mu": ("1", "reference measure mu, the minimiser (probability per cell)"),
}
#: Checksums of the growing datasets (histories, snapshot iterations).
CHECKED = {"fletcher32": True}
#: Checksums and compression of the array datasets (snapshots, states, μ, p_final).
PACKED = {"compression": "gzip", "shuffle": True, "fletcher32": True}

#: Bytes of one recorded problem state (``snapshot_states``); a longer state is not
#: recorded (that run then resumes with the generator as it is, statistically).
STATE_BYTES = 1024


def encode_state(text):
    """A problem state (text) as a zero-padded row of :data:`STATE_BYTES` bytes, or
    ``None`` when it does not fit."""
    raw = text.encode("ascii")
    if len(raw) > STATE_BYTES:
        return None
    row = np.zeros(STATE_BYTES, dtype=np.uint8)
    row[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return row


def decode_state(row):
    """The text of a row written by :func:`encode_state` (``None`` for an empty row)."""
    raw = bytes(np.asarray(row, dtype=np.uint8)).rstrip(b"\0")
    return raw.decode("ascii") if raw else None


def string_array(values):
    """``values`` as an array of HDF5 variable-length strings (for attributes)."""
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


def describe(ds, key):
    """Give the dataset ``ds`` its ``units`` and ``description`` attributes
    (:data:`DATASET_ATTRS`)."""
    units, description = DATASET_ATTRS[key]
    ds.attrs.update({"units": units, "description": description})
    return ds


def now():
    """The current UTC time, ISO 8601 to the second (``started``, ``finished``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def versions():
    """The versions a run records: densflow, NumPy, h5py and the HDF5 library."""
    from .._version import __version__

    return {"densflow_version": __version__, "numpy_version": np.__version__,
            "h5py_version": h5py.__version__, "hdf5_version": h5py.version.hdf5_version}


def nbytes(*items):
    """Bytes of the arrays ``items`` (``None`` counts nothing), for reserving room."""
    return sum(np.asarray(a).nbytes for a in items if a is not None)
