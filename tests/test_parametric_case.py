"""Parametric case files through the densflow command: run, inspect, plot, resume."""

import numpy as np
import pytest

from densflow.app.cli import main
from densflow.io.recorder import read_run_file

CASE = '''
import numpy as np
from densflow.parametric import Gaussian, Problem, W2Gaussian
from densflow.app.parametric_case import Experiment, ParametricCase
from densflow.parametric.metrics import Adam
from densflow.solving import FixedStep


def make(seed):
    model = Gaussian(2, "diag")
    problem = Problem(model, W2Gaussian([1.0, -1.0], [[2.0, 0.0], [0.0, 0.5]]),
                      z=model.latent(seed, 4), min_value=0.0)
    return problem, model.pack(np.random.default_rng(seed).standard_normal(2), [1.0, 1.0])


case = ParametricCase(
    title="tiny",
    experiments=[Experiment("exact", make, metric="exact_wasserstein", max_iter=40, tol=1e-10),
                 Experiment("adam", make, metric=lambda seed: Adam(), line_search=FixedStep(0.05),
                            max_iter=7)],
    seeds=[0, 1])
'''


def test_densflow_run_inspect_plot_a_parametric_case(tmp_path, capsys):
    path = tmp_path / "tiny.py"
    path.write_text(CASE)
    h5 = tmp_path / "tiny.h5"
    assert main(["run", str(path), "-o", str(h5), "--figure", str(tmp_path / "t.png"), "-q"]) == 0
    rf = read_run_file(h5, snapshots=True)
    names = sorted(r.name for r in rf.runs)
    assert names == ["runs/adam/seed0", "runs/adam/seed1", "runs/exact/seed0", "runs/exact/seed1"]
    exact = [r for r in rf.runs if r.attrs["experiment"] == "exact"]
    # natural gradient with the exact Wasserstein metric reaches the target: W2^2 <= tol
    assert all(r.converged and r.energies[-1] <= 1e-10 for r in exact)
    adam = [r for r in rf.runs if r.attrs["experiment"] == "adam"]
    assert all(r.n_iter == 7 and r.attrs["line_search"] == "fixed" for r in adam)
    assert rf.attrs["case_kind"] == "parametric" and (tmp_path / "t.png").stat().st_size > 5000
    capsys.readouterr()
    assert main(["inspect", str(h5)]) == 0
    assert "runs/adam/seed1" in capsys.readouterr().out
    assert main(["plot", str(h5), "-o", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 5000
    # a complete file resumes to the same results; --method is refused
    assert main(["run", str(path), "-o", str(h5), "--resume", "-q"]) == 0
    np.testing.assert_array_equal(read_run_file(h5).runs[0].energies, rf.runs[0].energies)
    assert main(["run", str(path), "-o", str(h5), "--overwrite", "--method", "newton"]) == 2
    assert "--method applies to grid cases" in capsys.readouterr().err


def test_parametric_case_bad_input():
    from densflow.app.parametric_case import Experiment, ParametricCase

    with pytest.raises(ValueError, match="label"):
        Experiment("a/b", lambda s: None)
    with pytest.raises(TypeError, match="make"):
        Experiment("a", None)
    with pytest.raises(ValueError, match="distinct"):
        ParametricCase([Experiment("a", print), Experiment("a", print)])
    with pytest.raises(ValueError, match="seeds"):
        ParametricCase([Experiment("a", print)], seeds=[])


MONITORED = '''
import numpy as np
from densflow.parametric import Gaussian, Problem, W2Gaussian
from densflow.app.parametric_case import Experiment, ParametricCase, read_monitors
from densflow.solving import FixedStep


def make(seed):
    model = Gaussian(1, "diag")
    problem = Problem(model, W2Gaussian([1.0], [[4.0]]), z=model.latent(0, 2))
    return problem, np.array([-1.0 - seed, 0.5])


def monitor(problem, theta):
    return {"mean": theta[0], "sd": theta[1]}


def figure(runfile_path, png):
    with open(png, "w") as fh:
        fh.write(" ".join(sorted(read_monitors(runfile_path))))


case = ParametricCase(
    experiments=[Experiment("euclidean", make, line_search=FixedStep(0.1), max_iter=12,
                            monitor=monitor),
                 Experiment("exact", make, metric="exact_wasserstein", line_search=FixedStep(0.1),
                            max_iter=7, seeds=[4], monitor=monitor)],
    seeds=[0, 1], snapshot_every=5, figure=figure)
'''


def test_monitors_per_experiment_seeds_and_the_case_figure(tmp_path, capsys):
    from densflow.app.parametric_case import read_monitors

    path = tmp_path / "monitored.py"
    path.write_text(MONITORED)
    h5, png = tmp_path / "m.h5", tmp_path / "m.png"
    assert main(["run", str(path), "-o", str(h5), "--figure", str(png), "-q"]) == 0
    rf = read_run_file(h5, snapshots=True)
    assert sorted(r.name for r in rf.runs) == ["runs/euclidean/seed0", "runs/euclidean/seed1",
                                               "runs/exact/seed4"]
    monitors = read_monitors(h5)
    for run in rf.runs:
        its, values = monitors[run.name]
        # every snapshot and the last iterate (12 is not a multiple of 5; 7 neither)
        expected_its = [0, 5, 10, 12] if run.n_iter == 12 else [0, 5, 7]
        np.testing.assert_array_equal(its, expected_its)
        points = np.vstack([run.snapshots, run.p_final])
        np.testing.assert_array_equal(values["mean"], points[:, 0])
        np.testing.assert_array_equal(values["sd"], points[:, 1])
    assert rf.runs[-1].snapshots[0][0] == -5.0              # seed 4 of its own
    # the case's figure, drawn from the run file
    assert png.read_text() == "runs/euclidean/seed0 runs/euclidean/seed1 runs/exact/seed4"
    finished = [r.attrs["finished"] for r in rf.runs]
    png.unlink()
    # --resume on a complete file redraws the figure and runs nothing again
    assert main(["run", str(path), "-o", str(h5), "--resume", "--figure", str(png), "-q"]) == 0
    assert png.exists() and [r.attrs["finished"] for r in read_run_file(h5).runs] == finished
    # densflow plot draws the generic figure: the value and one row per monitor
    assert main(["plot", str(h5), "-o", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").stat().st_size > 20_000


def test_monitor_errors_are_named(tmp_path):
    from densflow.parametric import Gaussian, Problem, W2Gaussian
    from densflow.app.parametric_case import Experiment, ParametricCase, run_parametric_case

    def make(seed):
        model = Gaussian(1, "diag")
        return Problem(model, W2Gaussian([1.0], [[4.0]]), z=model.latent(0, 2)), np.array([0.0, 1.0])

    case = ParametricCase([Experiment("a", make, max_iter=2, monitor=lambda p, t: {"bad name": 1.0})])
    case.path, case.name = __file__, "bad"
    with pytest.raises(ValueError, match="ASCII identifiers"):
        run_parametric_case(case, tmp_path / "bad.h5")
    with pytest.raises(TypeError, match="monitor must be callable"):
        Experiment("a", make, monitor=3)
    with pytest.raises(ValueError, match="distinct"):
        Experiment("a", make, seeds=[1, 1])
    with pytest.raises(TypeError, match="figure must be callable"):
        ParametricCase([Experiment("a", make)], figure="plot.png")
