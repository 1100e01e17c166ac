"""Parametric case files through the densflow command: run, inspect, plot, resume."""

import numpy as np
import pytest

from densflow.cli import main
from densflow.recorder import read_run_file

CASE = '''
import numpy as np
from densflow.parametric import Gaussian, Problem, W2Gaussian
from densflow.parametric.case import Experiment, ParametricCase
from densflow.parametric.metrics import Adam
from densflow.solver import FixedStep


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
    from densflow.parametric.case import Experiment, ParametricCase

    with pytest.raises(ValueError, match="label"):
        Experiment("a/b", lambda s: None)
    with pytest.raises(TypeError, match="make"):
        Experiment("a", None)
    with pytest.raises(ValueError, match="distinct"):
        ParametricCase([Experiment("a", print), Experiment("a", print)])
    with pytest.raises(ValueError, match="seeds"):
        ParametricCase([Experiment("a", print)], seeds=[])
