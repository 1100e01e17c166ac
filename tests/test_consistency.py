"""What the library, the command line, the run files and the README say must agree:
replacing files, units and text of run files, progress lines, README's snippet."""

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import densflow as df
from conftest import V1
from densflow.app.case import recorded_path
from densflow.app.loading import load_case
from densflow.io.recorder import RunFileError, read_run_file
from densflow.app.runner import run_case

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "cases"
SMALL = str(CASES / "small_1d.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _kl_problem(n=16):
    grid = df.Grid(n, 1)
    return df.energies.KL(grid, grid.gibbs(V1)), grid.uniform()


# -- solve(out=path) agrees with densflow run: an existing file is refused --------------

def test_solve_refuses_an_existing_file_unless_told(tmp_path):
    E, p0 = _kl_problem()
    path = tmp_path / "r.h5"
    # the first-order method: the metric shapes the run (the default Newton solves KL
    # alone in one compact step whatever the metric)
    first = df.solve(E, p0, "combined", out=path, method="gradient")
    with pytest.raises(RunFileError, match=r"out='.*r\.h5' exists; pass resume=True to continue "
                                           r"it or overwrite=True to replace it"):
        df.solve(E, p0, "fisher_rao", out=path)
    assert read_run_file(path).runs[0].metric == "combined"
    again = df.solve(E, p0, "fisher_rao", out=path, overwrite=True, method="gradient")
    run, = read_run_file(path).runs
    assert run.metric == "fisher_rao" and np.array_equal(run.energies, again.energies)
    assert not np.array_equal(first.energies, again.energies)
    with pytest.raises(ValueError, match="overwrite=True and resume=True exclude each other"):
        df.solve(E, p0, out=path, overwrite=True, resume=True)
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        df.solve(E, p0, out=tmp_path / "s.h5", overwrite="yes")
    assert not (tmp_path / "s.h5").exists()


def test_recorder_refuses_an_existing_file_by_default(tmp_path):
    from densflow.io.recorder import Recorder

    path = tmp_path / "r.h5"
    Recorder(path).close()
    with pytest.raises(RunFileError, match="already exists"):
        Recorder(path)
    Recorder(path, mode="w").close()


# -- run files: units, ASCII recipes, a portable case_file ------------------------------

def _run_small_case(tmp_path, method="gradient"):
    case = load_case(SMALL)
    case.method = method
    path = tmp_path / "small.h5"
    run_case(case, str(path))
    return path


def test_every_dataset_has_units_and_a_description(tmp_path):
    path = _run_small_case(tmp_path, method="newton")
    seen = set()
    with h5py.File(path, "r") as f:
        def check(name, obj):
            if isinstance(obj, h5py.Dataset):
                key = name.rsplit("/", 1)[-1]
                seen.add(key)
                units = obj.attrs["units"]
                assert units == ("s" if key == "times" else "1"), name
                assert obj.attrs["description"].isascii() and obj.attrs["description"], name
        f.visititems(check)
    assert seen == {"energies", "steps", "decrements", "times", "snapshots",
                    "snapshot_iterations", "cg_iterations", "hessian_products",
                    "inner_iterations", "p_final", "mu"}


def test_recipes_are_ascii_and_old_recipes_still_resume(tmp_path):
    path = _run_small_case(tmp_path)
    with h5py.File(path, "r") as f:
        recipes = [f[r.name].attrs["mu_recipe"] for r in read_run_file(path).runs]
    assert recipes and all(r == "gibbs: mu proportional to exp(-V(x)), V(x) = sin(4*pi*x)"
                           for r in recipes)
    # a file written while the recipe said "∝" resumes (it describes the same mu)
    names = [r.name for r in read_run_file(path).runs]
    with h5py.File(path, "a") as f:
        for name in names:
            f[name].attrs["mu_recipe"] = "gibbs: mu \u221d exp(-V(x)), V(x) = sin(4*pi*x)"
        del f.attrs["case_complete"]
    run_case(load_case(SMALL), str(path), resume=True)
    # a different potential is still refused
    case = load_case(SMALL)
    with h5py.File(path, "a") as f:
        f[names[0]].attrs["mu_recipe"] = "gibbs: mu \u221d exp(-V(x)), V(x) = sin(2*pi*x)"
    with pytest.raises(ValueError, match="recorded mu_recipe"):
        run_case(case, str(path), resume=True)


def test_case_file_is_recorded_without_the_machine_s_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert recorded_path(SMALL) == "tests/cases/small_1d.py"
    assert recorded_path(ROOT / "cases" / "ying2021_fig1.py") == "cases/ying2021_fig1.py"
    monkeypatch.chdir(tmp_path)
    assert recorded_path(SMALL) == "small_1d.py"  # outside the current folder: the name
    path = _run_small_case(tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["case_file"] == "small_1d.py"
        assert f.attrs["case_source"] == Path(SMALL).read_text()


# -- progress lines ---------------------------------------------------------------------

def test_compile_notice_only_when_numba_compiles():
    import numba

    from densflow.app.progress import COMPILE_MESSAGE, compile_notice

    @numba.njit(cache=False)
    def twice(x):
        return 2 * x

    lines = []
    with compile_notice(lines.append, modules=(__name__,)):
        assert twice(3) == 6      # compiles: announced
        assert twice(4) == 8      # compiled: nothing more
    assert lines == [COMPILE_MESSAGE]
    with compile_notice(lines.append, modules=(__name__,)):
        twice(5)                  # already compiled in this process: nothing
    assert lines == [COMPILE_MESSAGE]
    with compile_notice(lines.append, modules=("densflow",)):
        twice(1.5)                # compiles, but only kernels of the named modules count
    assert lines == [COMPILE_MESSAGE]
    with compile_notice(lines.append, modules=(__name__,)):
        twice(2.5 + 1j)           # a new signature compiles
    assert lines == [COMPILE_MESSAGE] * 2


def test_densflow_run_says_it_compiles_on_a_cold_cache_only(tmp_path):
    env = {**ENV, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    # a case that compiles few kernels: what is checked is the notice, not the kernels
    tiny = str(CASES / "tiny_1d.py")
    cmd = [sys.executable, "-m", "densflow", "run", tiny, "-o", str(tmp_path / "a.h5")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines()[0] == "compiling numba kernels (first run only)…"
    second = subprocess.run(cmd[:-1] + [str(tmp_path / "b.h5")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "compiling" not in second.stderr
    quiet = subprocess.run(cmd[:-1] + [str(tmp_path / "c.h5"), "-q"],
                           env={**env, "NUMBA_CACHE_DIR": str(tmp_path / "cold")},
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_a_sweep_point_reports_its_progress(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from densflow.app import sweep as sweep_module

    monkeypatch.setattr(sweep_module, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(sweep_module, "PROGRESS_INTERVAL", 0.0)
    lines = []
    path = tmp_path / "p.h5"
    sweep_module.run_point(str(CASES / "small_sweep.py"), dict(n=32), str(path),
                           progress=lines.append)
    runs = {r.metric: r for r in read_run_file(path).runs}
    assert lines[0] == "n=32: started"
    for metric, run in runs.items():
        label = f"n=32: [{1 if metric == 'combined' else 2}/2] panel 1 {metric}"
        steps = [line for line in lines if line.startswith(label + ": iteration ")]
        assert len(steps) == run.n_iter  # interval 0: one line per iteration
        for line in steps:
            k, value = re.match(r".*: iteration (\d+), E = (\S+),", line).groups()
            assert value == f"{run.energies[int(k)]:.3e}"
        done = f"{label}: {run.n_iter} iterations, E = {run.energies[-1]:.3e}, "
        assert any(line.startswith(done) for line in lines)
    # a complete point runs nothing and says nothing
    lines.clear()
    sweep_module.run_point(str(CASES / "small_sweep.py"), dict(n=32), str(path),
                           progress=lines.append)
    assert lines == []
