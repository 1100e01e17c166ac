import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

import densflow as df
from densflow.app.case import Case, CaseError, Panel
from densflow.app.loading import load_case
from densflow.app.cli import main
from densflow.io.recorder import read_run_file

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "cases"
SMALL = str(CASES / "small_1d.py")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_paper_cases_declare_the_papers_panels():
    fig1 = load_case(ROOT / "cases" / "ying2021_fig1.py")
    assert fig1.name == "ying2021_fig1" and fig1.grid == df.Grid(512, 1)
    assert [p.weights for p in fig1.panels] == [(1, 1e-3, 0), (1, 0, 1e-4), (0, 1e-3, 1e-4),
                                                (1, 1e-3, 1e-4)]
    assert [p.metric_names[1:] for p in fig1.panels] == [
        ["wasserstein", "fisher_rao"], ["wasserstein", "mahalanobis"],
        ["fisher_rao", "mahalanobis"], ["wasserstein", "fisher_rao", "mahalanobis"]]
    assert all(p.metric_names[0] == "combined" for p in fig1.panels)
    assert fig1.panels[3].title == "(4) Wasserstein + Fisher–Rao + Mahalanobis"
    assert (fig1.tol, fig1.max_iter) == (1e-12, 1000)
    x = np.arange(512) / 512
    mu = np.exp(-np.sin(4 * np.pi * x))
    assert np.allclose(fig1.mu, mu / mu.sum(), rtol=1e-13, atol=0)
    fig2 = load_case(ROOT / "cases" / "ying2021_fig2.py")
    assert fig2.grid == df.Grid(64, 2)
    assert [p.weights for p in fig2.panels] == [(1, 3e-4, 0), (1, 0, 1e-4), (0, 3e-4, 1e-4),
                                                (1, 3e-4, 1e-4)]


def test_case_validation():
    grid = df.Grid(16, 1)
    with pytest.raises(ValueError, match="weights must be three"):
        Panel((1, 2), ["combined"])
    with pytest.raises(ValueError, match="not all be zero"):
        Panel((0, 0, 0), ["combined"])
    with pytest.raises(ValueError, match="metric must be one of"):
        Panel((1, 0, 0), ["combined", "sinkhorn"])
    with pytest.raises(ValueError, match="distinct"):
        Panel((1, 0, 0), ["combined", "combined"])
    with pytest.raises(ValueError, match="coordinates are x"):
        Case(grid=grid, potential="sin(x1)", panels=[Panel((1, 0, 0), ["combined"])])
    with pytest.raises(ValueError, match="positive"):
        Case(grid=grid, potential="0*x", p0="cos(2*pi*x)", panels=[Panel((1, 0, 0), ["combined"])])
    case = Case(grid=grid, potential="0*x", p0="2 + cos(2*pi*x)", panels=[Panel((1, 0, 0), ["fisher_rao"])])
    assert case.panels[0].title == "Fisher–Rao"
    p = 2 + np.cos(2 * np.pi * np.arange(16) / 16)
    assert np.allclose(case.initial_density(), p / p.sum(), rtol=1e-15)


def test_run_inspect_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "run", SMALL)
    assert code == 0, err
    assert Path("small_1d.h5").is_file() and Path("small_1d.png").stat().st_size > 10_000
    assert "[5/5] panel 2 mahalanobis" in out
    runfile = read_run_file("small_1d.h5")
    assert [(r.panel, r.metric) for r in runfile.runs] == [
        (1, "combined"), (1, "wasserstein"), (2, "combined"), (2, "fisher_rao"), (2, "mahalanobis")]
    assert runfile.attrs["case_name"] == "small_1d"
    assert "Panel((1, 1e-3, 0)" in runfile.attrs["case_source"]

    # the same numbers as the library call with a recorder
    case = load_case(SMALL)
    ref = df.solve(case.energy(case.panels[1]), case.initial_density(), "fisher_rao", tol=1e-12,
                   max_iter=200, out=tmp_path / "lib.h5", method="gradient")
    run = runfile.runs[3]
    assert np.array_equal(run.energies, ref.energies) and run.n_iter == ref.n_iter
    assert run.attrs["p0_recipe"] == "normalised 1 + 0.5*cos(2*pi*x)"
    assert "sin(4*pi*x)" in run.attrs["mu_recipe"]
    assert runfile.runs[0].converged and runfile.runs[0].energies[-1] <= 1e-12

    code, out, err = run_cli(capsys, "inspect", "small_1d.h5")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert "case small_1d" in lines[0] and lines[1].split()[:2] == ["panel", "metric"]
    row = lines[3 + 3].split()  # panel 2, fisher_rao
    assert row[:2] == ["2", "fisher_rao"] and row[5] == str(ref.n_iter)
    assert float(row[6]) == pytest.approx(ref.energies[-1], rel=1e-3)
    assert len(lines) == 3 + 5 + 3
    # why the two runs that did not converge stopped (issue 14, item 8)
    assert lines[8] == "not converged:"
    assert lines[9] == f"  panel 2 fisher_rao: {ref.message}"
    assert lines[10].startswith("  panel 2 mahalanobis: reached max_iter = 200")

    code, out, err = run_cli(capsys, "plot", "small_1d.h5", "-o", "again.png")
    assert code == 0 and Path("again.png").stat().st_size > 10_000


def test_existing_output_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    h5 = tmp_path / "r.h5"
    assert run_cli(capsys, "run", SMALL, "-o", h5, "-q")[0] == 0
    before = read_run_file(h5).runs
    code, out, err = run_cli(capsys, "run", SMALL, "-o", h5)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"densflow: error: {h5} exists") and "--overwrite" in err
    code, out, err = run_cli(capsys, "run", SMALL, "-o", h5, "--resume")
    assert code == 0 and out.count(", recorded") == 5
    assert all(np.array_equal(a.energies, b.energies) and a.attrs["started"] == b.attrs["started"]
               for a, b in zip(before, read_run_file(h5).runs))
    assert run_cli(capsys, "run", SMALL, "-o", h5, "--overwrite", "-q")[0] == 0
    code, _, err = run_cli(capsys, "run", SMALL, "-o", h5, "--overwrite", "--resume")
    assert code == 2 and "not allowed with argument" in err


def test_resume_refuses_a_changed_case_and_unwritable_outputs(tmp_path, capsys):
    h5 = tmp_path / "r.h5"
    assert run_cli(capsys, "run", SMALL, "-o", h5, "-q")[0] == 0
    changed = tmp_path / "small_1d.py"
    changed.write_text(Path(SMALL).read_text().replace("max_iter=200", "max_iter=300"))
    code, out, err = run_cli(capsys, "run", changed, "-o", h5, "--resume", "-q")
    assert code == 2 and err.count("\n") == 1
    assert "cannot resume run 'panel1/combined'" in err and "max_iter = 200" in err
    code, out, err = run_cli(capsys, "run", SMALL, "-o", tmp_path / "no" / "dir.h5")
    assert code == 2 and err.count("\n") == 1 and "cannot create" in err


BAD_CASES = {
    "nocase.py": ("import densflow\nx = 1\n", "defines no case"),
    "raises.py": ("import densflow\n\n1 / 0\n", "(line 3): ZeroDivisionError on import: division by zero"),
    "syntax.py": ("case = (\n", "SyntaxError on import"),
    "badpanel.py": ("import densflow as df\nfrom densflow.app.case import Case, Panel\n"
                    "case = Case(grid=df.Grid(8), potential='x', panels=[Panel((1, 0), ['combined'])])\n",
                    "(line 3): ValueError on import: Panel weights must be three"),
    "notacase.py": ("case = 42\n", "'case' is a int, not a densflow.app.case.Case"),
}


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_bad_case_files_give_one_line_errors(tmp_path, capsys, name):
    source, expected = BAD_CASES[name]
    path = tmp_path / name
    path.write_text(source)
    code, out, err = run_cli(capsys, "run", path, "-o", tmp_path / "o.h5")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"densflow: error: {path}")
    assert expected in err
    assert not (tmp_path / "o.h5").exists()
    with pytest.raises(CaseError):
        load_case(path)


def test_missing_case_file(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", tmp_path / "nope.py")
    assert code == 2 and err == f"densflow: error: {tmp_path / 'nope.py'}: no such case file\n"


@pytest.mark.parametrize("command", ["inspect", "plot"])
def test_non_densflow_files_give_one_line_errors(tmp_path, capsys, command):
    text = tmp_path / "text.h5"
    text.write_text("hello")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.zeros(3)
    for path, expected in ((text, "cannot open as HDF5"), (other, "not a densflow run file"),
                           (tmp_path / "missing.h5", "no such file")):
        code, out, err = run_cli(capsys, command, path)
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"densflow: error: {path}: ") and expected in err


def test_python_dash_m_densflow(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "densflow", "inspect", str(tmp_path / "x.h5")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("densflow: error: ")


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill a real ``densflow run`` with SIGKILL mid-run; the file must open and hold
    the flushed iterations, and ``--resume`` must end exactly like a run left alone."""
    case = str(CASES / "slow_2d.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "densflow", "run", case]
    killed, ref = tmp_path / "killed.h5", tmp_path / "ref.h5"
    # the uninterrupted reference runs alongside (2 cores)
    reference = subprocess.Popen(cmd + ["-o", str(ref), "-q"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    victim = subprocess.Popen(cmd + ["-o", str(killed)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(300, lambda: (victim.kill(), reference.kill()))
    watchdog.start()
    try:
        # progress lines come about once a second; wait until the Fisher-Rao run is
        # well under way (flushes are at most 0.5 s apart), then kill it
        for line in victim.stderr:
            if "fisher_rao: iteration" in line and int(line.split("iteration")[1].split(",")[0]) >= 300:
                break
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        assert reference.wait() == 0, reference.stderr.read()
    finally:
        watchdog.cancel()

    partial = {r.metric: r for r in read_run_file(killed).runs}
    assert partial["combined"].status == "complete"
    fr = partial["fisher_rao"]
    assert fr.status == "running" and 50 < fr.n_iter < 2500
    full = {r.metric: r for r in read_run_file(ref).runs}
    assert np.array_equal(fr.energies, full["fisher_rao"].energies[: fr.n_iter + 1])

    proc = subprocess.run(cmd + ["-o", str(killed), "--resume"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "resumed from iteration" in proc.stdout
    resumed = {r.metric: r for r in read_run_file(killed, snapshots=True).runs}
    for metric in ("combined", "fisher_rao"):
        a, b = resumed[metric], full[metric]
        assert a.status == "complete" and a.n_iter == b.n_iter
        assert np.array_equal(a.energies, b.energies), metric
        assert np.array_equal(a.p_final, b.p_final), metric
    assert resumed["fisher_rao"].n_iter == 2500
    assert 0 < resumed["fisher_rao"].attrs["resumed_from"] <= fr.n_iter
    assert np.array_equal(resumed["fisher_rao"].snapshot_iterations, np.arange(0, 2501, 50))


def test_run_method_newton_overrides_the_case_and_is_recorded(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "run", SMALL, "-o", tmp_path / "n.h5", "--method", "newton")
    assert code == 0 and "not converged" not in out
    runs = read_run_file(tmp_path / "n.h5").runs
    assert runs and all(r.attrs["method"] == "newton" and r.status == "complete" for r in runs)
    with h5py.File(tmp_path / "n.h5", "r") as f:
        for r in runs:
            assert f[r.name]["cg_iterations"].shape == (r.n_iter,)
    # the case says method="gradient": resuming the file with it is refused
    code, _, err = run_cli(capsys, "run", SMALL, "-o", tmp_path / "n.h5", "--resume")
    assert code == 2 and "method" in err
    code, _, err = run_cli(capsys, "run", SMALL, "--method", "Newton")
    assert code == 2 and "invalid choice" in err
