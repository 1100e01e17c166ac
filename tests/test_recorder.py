import h5py
import numpy as np
import pytest

import densflow as df
from conftest import V1, make_energy, random_density
from densflow.io.recorder import Recorder, RunFileError, read_run_file


def problem(n=64, weights=(1, 1e-3, 1e-4)):
    grid = df.Grid(n, 1)
    mu = grid.gibbs(V1)
    return grid, make_energy(grid, mu, weights)


@pytest.mark.parametrize("metric", ["combined", "wasserstein"])
def test_round_trip_equals_solve_result(tmp_path, metric):
    grid, E = problem()
    p0 = random_density(grid, 1)
    path = tmp_path / "run.h5"
    res = df.solve(E, p0, metric, max_iter=150, out=path, method="gradient")
    run, = read_run_file(path, snapshots=True).runs
    for key in ("energies", "steps", "decrements", "times"):
        assert np.array_equal(getattr(run, key), getattr(res, key)), key
    assert np.array_equal(run.p_final, res.p)
    assert np.array_equal(run.mu, E.mu)
    assert run.n_iter == res.n_iter > 20 and run.status == "complete"
    assert run.converged == res.converged and run.attrs["message"] == res.message
    assert np.array_equal(run.snapshot_iterations, np.arange(0, res.n_iter + 1, 10))
    assert np.array_equal(run.snapshots[0], p0)
    a = run.attrs
    assert a["metric"] == metric and a["grid_n"] == 64 and a["grid_dim"] == 1
    assert np.array_equal(a["weights"], [1, 1e-3, 1e-4])
    assert list(a["energy_terms"]) == ["HMinus1", "KL", "Dirichlet"]
    assert a["tol"] == 1e-12 and np.isnan(a["gtol"]) and a["max_iter"] == 150
    assert a["line_search_c1"] == 0.5 and a["snapshot_every"] == 10
    if metric == "combined":
        assert a["metric_wavelet"] == "db4" and a["metric_level"] >= 1


def test_recording_keeps_the_iterates_of_an_unrecorded_run(tmp_path):
    grid, E = problem()
    plain = df.solve(E, grid.uniform(), "combined")
    rec = df.solve(E, grid.uniform(), "combined", out=tmp_path / "r.h5")
    # both re-evaluate the state every 10 iterations: the same arithmetic
    assert rec.n_iter == plain.n_iter
    assert np.array_equal(rec.p, plain.p) and np.array_equal(rec.energies, plain.energies)


def test_file_holds_only_plain_hdf5_types(tmp_path):
    grid, E = problem()
    with Recorder(tmp_path / "r.h5", attrs={"case_name": "x"}) as rec:
        df.solve(E, grid.uniform(), "combined", out=rec.run("panel1/combined"))
    seen = []

    def check(name, obj):
        if isinstance(obj, h5py.Dataset):
            assert obj.dtype.kind in "fi", name
        for key in obj.attrs:
            dt = obj.attrs.get_id(key).dtype
            assert dt.kind in "fiub" or h5py.check_string_dtype(dt) is not None, (name, key, dt)
            seen.append(key)

    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["format"] == "densflow-run"
        check("/", f)
        f.visititems(check)
        assert f["panel1/combined/snapshots"].compression == "gzip"
        assert f["panel1/combined/snapshots"].chunks == (1, 64)
        assert f["panel1/combined/energies"].maxshape == (None,)
    assert "energy_terms" in seen and "started" in seen and "densflow_version" in seen


def test_gtol_stop_records_the_last_decrement(tmp_path):
    grid, E = problem(weights=(1, 1e-3, 0))
    res = df.solve(E, grid.uniform(), "combined", tol=None, gtol=1e-10, out=tmp_path / "g.h5")
    run, = read_run_file(tmp_path / "g.h5").runs
    assert res.decrements.size == res.n_iter + 1
    assert np.array_equal(run.decrements, res.decrements)


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    grid, E = problem(n=128, weights=(1, 1e-3, 0))
    ref = df.solve(E, grid.uniform(), "wasserstein", max_iter=200, method="gradient")

    def crash(k, *args):
        if k == 57:
            raise RuntimeError("simulated crash")

    path = tmp_path / "c.h5"
    with pytest.raises(RuntimeError):
        df.solve(E, grid.uniform(), "wasserstein", max_iter=200, out=path, callback=crash, method="gradient")
    run, = read_run_file(path, snapshots=True).runs
    assert run.status == "failed" and "simulated crash" in run.attrs["error"]
    assert run.n_iter == 57 and np.array_equal(run.snapshot_iterations, [0, 10, 20, 30, 40, 50])

    recorded = df.solve(E, grid.uniform(), "wasserstein", max_iter=200, out=tmp_path / "u.h5", method="gradient")
    res = df.solve(E, grid.uniform(), "wasserstein", max_iter=200, out=path, resume=True, method="gradient")
    assert res.info["resumed_from"] == 50
    assert res.n_iter == recorded.n_iter == ref.n_iter
    assert np.array_equal(res.energies, recorded.energies)
    assert np.array_equal(res.p, recorded.p)
    run, = read_run_file(path).runs
    assert run.status == "complete" and np.array_equal(run.energies, res.energies)

    calls = []
    again = df.solve(E, grid.uniform(), "wasserstein", max_iter=200, out=path, resume=True,
                     callback=lambda *a: calls.append(a), method="gradient")
    assert calls == [] and np.array_equal(again.energies, res.energies)


def test_resume_refuses_a_different_setup(tmp_path):
    grid, E = problem()
    df.solve(E, grid.uniform(), "combined", max_iter=5, out=tmp_path / "r.h5")
    with pytest.raises(ValueError, match="max_iter"):
        df.solve(E, grid.uniform(), "combined", max_iter=6, out=tmp_path / "r.h5", resume=True)
    with pytest.raises(ValueError, match="metric"):
        df.solve(E, grid.uniform(), "wasserstein", max_iter=5, out=tmp_path / "r.h5", resume=True)


def test_not_a_run_file(tmp_path):
    text = tmp_path / "a.h5"
    text.write_text("not hdf5")
    with pytest.raises(RunFileError, match="cannot open as HDF5"):
        read_run_file(text)
    other = tmp_path / "b.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(RunFileError, match="not a densflow run file"):
        read_run_file(other)
    with pytest.raises(RunFileError, match="not a densflow run file"):
        Recorder(other, mode="a")
    with pytest.raises(RunFileError, match="no such file"):
        read_run_file(tmp_path / "missing.h5")


def test_recorder_arguments(tmp_path):
    Recorder(tmp_path / "x.h5").close()
    with pytest.raises(RunFileError, match="already exists"):
        Recorder(tmp_path / "x.h5", mode="x")
    with pytest.raises(ValueError, match="snapshot_every"):
        Recorder(tmp_path / "y.h5", snapshot_every=0)
    with pytest.raises(ValueError, match="mode"):
        Recorder(tmp_path / "y.h5", mode="r")
    grid, E = problem()
    with pytest.raises(TypeError, match="out must be"):
        df.solve(E, grid.uniform(), out=3)
