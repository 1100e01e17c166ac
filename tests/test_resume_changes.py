"""Issue 14, item 2: ``--resume`` refuses any change that alters a run's arithmetic."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

import densflow as df
import densflow.gridproblem as recorder_module  # the grid kind describes the setup
from conftest import V1, make_energy
from densflow.app.cli import main
from densflow.io.recorder import ResumeError, read_run_file

SMALL = Path(__file__).resolve().parent / "cases" / "small_1d.py"


def crash_at(k_crash):
    def callback(k, *args):
        if k == k_crash:
            raise KeyboardInterrupt("simulated kill")
    return callback


def partial_run(path, energy, p0, **kw):
    """A run interrupted at iteration 25 (snapshots at 0, 10, 20)."""
    with pytest.raises(KeyboardInterrupt):
        df.solve(energy, p0, "combined", max_iter=200, out=path, callback=crash_at(25), **kw, method="gradient")
    run, = read_run_file(path).runs
    assert run.status == "failed" and run.n_iter == 25


def test_a_changed_mu_is_refused(tmp_path):
    grid = df.Grid(64, 1)
    path = tmp_path / "r.h5"
    partial_run(path, make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0)), grid.uniform())
    other = grid.gibbs(lambda x: 2 * np.sin(4 * np.pi * x))
    with pytest.raises(ResumeError, match="reference measure mu differs"):
        df.solve(make_energy(grid, other, (1, 1e-3, 0)), grid.uniform(), "combined",
                 max_iter=200, out=path, resume=True, method="gradient")
    # unchanged, it resumes and ends like an uninterrupted run
    res = df.solve(make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0)), grid.uniform(), "combined",
                   max_iter=200, out=path, resume=True, method="gradient")
    ref = df.solve(make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0)), grid.uniform(), "combined",
                   max_iter=200, method="gradient")
    assert res.info["resumed_from"] == 20 and np.array_equal(res.energies, ref.energies)


@pytest.mark.parametrize("change", [
    dict(safeguard=None), dict(safeguard=0.2), dict(gtol=1e-9), dict(tol=1e-10),
    dict(line_search=df.Armijo(shrink=0.25)), dict(metric=df.metrics.Combined(wavelet="db2")),
])
def test_any_changed_setting_is_refused(tmp_path, change):
    grid = df.Grid(64, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0))
    path = tmp_path / "r.h5"
    partial_run(path, E, grid.uniform())
    metric = change.pop("metric", "combined")
    with pytest.raises(ResumeError, match="cannot resume run 'run': recorded "):
        df.solve(E, grid.uniform(), metric, max_iter=200, out=path, resume=True, **change, method="gradient")


def test_setup_keys_added_later_are_compared_too(tmp_path, monkeypatch):
    """A key that :func:`setup_attributes` gains later is compared without being
    listed anywhere else; so is one it loses."""
    grid = df.Grid(64, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 0))
    original = recorder_module.setup_attributes

    def with_setting(value):
        def setup(*args, **kw):
            return {**original(*args, **kw), "future_setting": value}
        return setup

    path = tmp_path / "r.h5"
    monkeypatch.setattr(recorder_module, "setup_attributes", with_setting("a"))
    partial_run(path, E, grid.uniform())
    monkeypatch.setattr(recorder_module, "setup_attributes", with_setting("b"))
    with pytest.raises(ResumeError, match="recorded future_setting = 'a', this run has 'b'"):
        df.solve(E, grid.uniform(), "combined", max_iter=200, out=path, resume=True, method="gradient")
    monkeypatch.setattr(recorder_module, "setup_attributes", original)
    with pytest.raises(ResumeError, match="recorded future_setting = 'a', this run has None"):
        df.solve(E, grid.uniform(), "combined", max_iter=200, out=path, resume=True, method="gradient")
    monkeypatch.setattr(recorder_module, "setup_attributes", with_setting("a"))
    res = df.solve(E, grid.uniform(), "combined", max_iter=200, out=path, resume=True, method="gradient")
    assert res.converged and res.info["resumed_from"] == 20


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_cli_refuses_a_changed_potential_and_leaves_the_file_alone(tmp_path, capsys):
    h5 = tmp_path / "r.h5"
    assert main(["run", str(SMALL), "-o", str(h5), "-q"]) == 0
    before = read_run_file(h5)
    changed = tmp_path / "small_1d.py"
    changed.write_text(SMALL.read_text().replace('potential="sin(4*pi*x)"',
                                                 'potential="2*sin(4*pi*x)"'))
    assert changed.read_text() != SMALL.read_text()
    code = main(["run", str(changed), "-o", str(h5), "--resume"])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert "cannot resume run 'panel1/combined': recorded mu_recipe = " in err
    assert "V(x) = sin(4*pi*x)', this run has " in err and "2*sin(4*pi*x)" in err
    after = read_run_file(h5)
    assert after.attrs["case_source"] == before.attrs["case_source"]  # not the new text
    for a, b in zip(before.runs, after.runs):
        assert np.array_equal(a.energies, b.energies) and np.array_equal(a.mu, b.mu)
    # a changed initial density is refused as well
    changed.write_text(SMALL.read_text().replace("1 + 0.5*cos(2*pi*x)", "1 + 0.4*cos(2*pi*x)"))
    assert main(["run", str(changed), "-o", str(h5), "--resume"]) == 2
    assert "recorded p0_recipe = 'normalised 1 + 0.5*cos(2*pi*x)'" in capsys.readouterr().err
    # a change that does not alter the arithmetic (a comment) is accepted
    changed.write_text("# a comment\n" + SMALL.read_text())
    assert main(["run", str(changed), "-o", str(h5), "--resume", "-q"]) == 0
    assert read_run_file(h5).attrs["case_source"].startswith("# a comment")
