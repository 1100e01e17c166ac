"""The shared helpers of resuming and reading run files: ``resume.setup_difference``
(with and without the legacy readings), ``resume.refusal`` / ``resume.damaged`` and
``h5io.numeric_dataset``, checked against messages written out here."""

import h5py
import numpy as np
import pytest

from densflow.io.h5io import DamagedFileError, numeric_dataset
from densflow.io.resume import (SETUP_KEYS, ResumeError, damaged, refusal,
                                setup_difference)


def test_setup_difference_compares_identity_then_recorded_keys():
    identity = {"a": 1.0, "b": "x"}
    attrs = {"a": 1.0, "b": "x", "c": 3, "setup_keys": np.array([b"a", b"b", b"c"])}
    # c is recorded (as bytes) but this run has none
    assert setup_difference(identity, attrs) == "recorded c = 3, this run has None"
    assert setup_difference(identity, attrs, legacy=False) == "recorded c = 3, this run has None"
    attrs["b"] = "y"  # an identity key differs first
    assert setup_difference(identity, attrs) == "recorded b = 'y', this run has 'x'"
    nan = {"a": np.nan, "setup_keys": ["a"]}
    assert setup_difference({"a": float("nan")}, nan) is None


def test_legacy_fallback_keys_only_when_legacy():
    key = SETUP_KEYS[0]
    attrs = {key: "old"}  # no setup_keys recorded
    assert setup_difference({}, attrs) == f"recorded {key} = 'old', this run has None"
    assert setup_difference({}, attrs, legacy=False) is None


def test_mu_recipe_rewrite_only_when_legacy():
    old = {"mu_recipe": "mu \u221d exp(-V)", "setup_keys": ["mu_recipe"]}
    new = {"mu_recipe": "mu proportional to exp(-V)"}
    assert setup_difference(new, old) is None
    assert setup_difference(new, old, legacy=False) == (
        "recorded mu_recipe = 'mu \u221d exp(-V)', this run has 'mu proportional to exp(-V)'")


def test_refusal_and_damaged_messages():
    err = refusal("r.h5", "flow", "flow2", "its initial density differs")
    assert isinstance(err, ResumeError)
    assert str(err) == ("r.h5: cannot resume flow 'flow2': its initial density differs; "
                        "use --overwrite (or a new output file) to run the changed case")
    err = damaged("r.h5", "run", "w2", "the recorded run", OSError("bad\nsecond line" + "z" * 200))
    assert isinstance(err, DamagedFileError)
    assert str(err) == "r.h5: damaged run file: run 'w2': the recorded run cannot be read (bad)"
    long = damaged("r.h5", "run", "w", "x", OSError("q" * 300))
    assert str(long).endswith("(" + "q" * 120 + ")")


def test_numeric_dataset(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["v"] = np.arange(4.0)
        f["s"] = np.array([b"a", b"b"])
        f.create_group("g")
        assert np.array_equal(numeric_dataset(f, "v", "W")[()], np.arange(4.0))
        assert numeric_dataset(f, "v", "W", ndim=1).shape == (4,)
        assert numeric_dataset(f, "missing", "W", required=False) is None
        for key, kw, message in [("missing", {}, "W: has no dataset 'missing'"),
                                 ("s", {}, "W: 's' is not a numeric dataset"),
                                 ("g", {}, "W: 'g' is not a numeric dataset"),
                                 ("v", {"ndim": 2}, "W: 'v' has 1 dimensions, not 2")]:
            with pytest.raises(DamagedFileError) as info:
                numeric_dataset(f, key, "W", **kw)
            assert str(info.value) == message
