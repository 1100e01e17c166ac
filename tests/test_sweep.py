"""Sweeps on a local Dask cluster with two worker processes."""

import csv
import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("distributed")

from densflow.app.cli import main  # noqa: E402
from densflow.io.recorder import read_run_file  # noqa: E402
from densflow.app.runner import run_case  # noqa: E402
from densflow.app.sweep import Sweep, file_status, load_sweep, point_filename, run_sweep  # noqa: E402

CASES = Path(__file__).parent / "cases"
SWEEP = str(CASES / "small_sweep.py")


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_sweep_points_and_file_names():
    s = Sweep(lambda **kw: None, product=dict(n=[1, 2], wavelet=["db2", "db4"]))
    assert s.points == [dict(n=1, wavelet="db2"), dict(n=1, wavelet="db4"),
                        dict(n=2, wavelet="db2"), dict(n=2, wavelet="db4")]
    assert s.x == "n"
    assert point_filename("mesh", dict(dim=2, n=64)) == "mesh__dim=2_n=64.h5"
    with pytest.raises(ValueError, match="exactly one of product="):
        Sweep(lambda **kw: None)
    with pytest.raises(ValueError, match="must be distinct"):
        Sweep(lambda **kw: None, points=[dict(n=1), dict(n=1)])


def test_worker_killed_mid_point_then_rerun(tmp_path, monkeypatch, capfd, caplog):
    sweep = load_sweep(SWEEP)
    # the uninterrupted reference of the point whose worker gets killed
    ref_path = tmp_path / "reference.h5"
    run_case(sweep.case(dict(n=64)), str(ref_path))
    reference = {r.metric: r for r in read_run_file(ref_path).runs}

    kill_dir = tmp_path / "kill"
    kill_dir.mkdir()
    monkeypatch.setenv("DENSFLOW_TEST_KILL_DIR", str(kill_dir))
    out = tmp_path / "sweep"
    rows = run_sweep(SWEEP, str(out), workers=2)
    assert (kill_dir / "killed").exists(), "the worker of point n=64 was not killed"

    files = {n: out / point_filename("small_sweep", dict(n=n)) for n in (32, 64, 128)}
    assert all(file_status(f) == "complete" for f in files.values())
    assert len(rows) == 6 and all(r["file_status"] == "complete" for r in rows)
    # the killed point was resumed from its last snapshot and ends exactly as the reference
    resumed = {r.metric: r for r in read_run_file(files[64]).runs}
    for metric, run in reference.items():
        assert np.array_equal(resumed[metric].energies, run.energies), metric
    assert 5 <= resumed["combined"].attrs["resumed_from"] < 20

    with open(out / "index.csv", newline="") as fh:
        index = list(csv.DictReader(fh))
    assert [(int(r["n"]), r["metric"]) for r in index] == [
        (32, "combined"), (32, "fisher_rao"), (64, "combined"), (64, "fisher_rao"),
        (128, "combined"), (128, "fisher_rao")]
    assert all(r["status"] == "complete" for r in index)
    assert (out / "summary.png").stat().st_size > 0

    # a rerun touches no complete file; a partial one is resumed and completed
    before = {n: (digest(f), f.stat().st_mtime_ns) for n, f in files.items()}
    with h5py.File(files[128], "a") as f:
        del f.attrs["case_complete"]
    monkeypatch.delenv("DENSFLOW_TEST_KILL_DIR")
    monkeypatch.setenv("DENSFLOW_TEST_SLOW_EXIT", "5")  # beyond the nanny's 4 s
    capfd.readouterr()
    caplog.clear()
    code = main(["sweep", SWEEP, "-o", str(out), "--workers", "2", "--quiet"])
    assert code == 0
    # the local cluster shuts down cleanly: no worker killed after a timeout, no heartbeat
    # to a closed scheduler, no traceback (the workers write to this process's stderr)
    err = capfd.readouterr().err + "\n".join(r.getMessage() for r in caplog.records
                                             if r.levelname in ("WARNING", "ERROR"))
    for sign in ("Traceback", "still alive", "Failed to communicate", "CommClosedError"):
        assert sign not in err, err
    for n in (32, 64):
        assert (digest(files[n]), files[n].stat().st_mtime_ns) == before[n]
    assert file_status(files[128]) == "complete"


def test_sweep_command_errors(tmp_path, capsys):
    assert main(["sweep", str(CASES / "small_1d.py"), "-o", str(tmp_path)]) == 2
    assert "defines no sweep" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.py")]) == 2
    assert "no such case file" in capsys.readouterr().err


def test_sweep_without_dask_says_how_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import now raises ImportError
    assert main(["sweep", SWEEP]) == 2
    assert "pip install 'densflow[sweep]'" in capsys.readouterr().err


def test_sweep_on_a_running_scheduler(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["sweep", SWEEP, "-o", str(tmp_path), "--scheduler", cluster.scheduler_address, "-q"])
    assert code == 0
    with open(tmp_path / "index.csv", newline="") as fh:
        index = list(csv.DictReader(fh))
    assert len(index) == 6 and all(r["file_status"] == "complete" for r in index)
    assert all(int(r["converged"]) == 1 for r in index if r["metric"] == "combined")
