"""Issue 14, item 4: a numerical failure ends the run with ``converged=False`` and a
message (the run file marks it failed, ``densflow run`` prints why), never a traceback."""

import numpy as np
import pytest

import densflow as df
from conftest import V1, V2, make_energy
from densflow.app.cli import main
from densflow.core.operators import LinearSolveError, WeightedLaplacianSolver
from densflow.io.recorder import read_run_file

HIGH_CONTRAST = "20*sin(2*pi*x1)*sin(2*pi*x2)"


def high_contrast_mu(grid, amplitude=20):
    return grid.gibbs(lambda x1, x2: amplitude * np.sin(2 * np.pi * x1) * np.sin(2 * np.pi * x2))


def test_the_2d_solve_fails_with_a_linear_solve_error_naming_the_contrast():
    grid = df.Grid(32, 2)
    mu = high_contrast_mu(grid)
    solver = WeightedLaplacianSolver(mu, 32)
    with pytest.raises(LinearSolveError, match=r"mu spans max/min = 2\.\de\+17") as info:
        solver.solve(grid.uniform() - mu)
    assert isinstance(info.value, RuntimeError)
    # below the contrast where double precision suffices, it converges as before
    easy = WeightedLaplacianSolver(grid.gibbs(V2), 32)
    x = easy.solve(grid.uniform() - grid.gibbs(V2))
    assert easy.last_iterations <= 30 and abs(x.mean()) < 1e-15


@pytest.mark.parametrize("recorded", [False, True])
def test_high_contrast_gives_a_result_not_an_exception(tmp_path, recorded):
    grid = df.Grid(32, 2)
    E = make_energy(grid, high_contrast_mu(grid), (1, 3e-4, 1e-4))
    out = tmp_path / "hc.h5" if recorded else None
    res = df.solve(E, grid.uniform(), "combined", out=out)
    assert not res.converged and res.n_iter == 0
    assert res.message.startswith("numerical failure at iteration 0 (E = nan): the H^-1 term's "
                                  "linear solve (weighted Laplacian CG) did not reach rtol=1e-13")
    assert res.info["error"].startswith("LinearSolveError: ")
    assert np.array_equal(res.p, grid.uniform())
    if recorded:
        run, = read_run_file(out).runs
        assert run.status == "failed" and not run.converged and run.message == res.message


class _SolveFailsAt(df.metrics.Metric):
    """The combined metric, until its k-th direction, which fails as a linear solve."""

    name = "fails"

    def __init__(self, k):
        self.k = k

    def bind(self, energy):
        inner, k = df.metrics.Combined().bind(energy), self.k
        calls = [0]

        class Op:
            def direction(self, p, g):
                calls[0] += 1
                if calls[0] > k:
                    raise LinearSolveError("simulated: CG did not converge")
                return inner.direction(p, g)
        return Op()


@pytest.mark.parametrize("recorded", [False, True])
def test_failure_mid_run_keeps_the_history(tmp_path, recorded):
    grid = df.Grid(64, 1)
    E = make_energy(grid, grid.gibbs(V1), (1, 1e-3, 1e-4))
    ref = df.solve(E, grid.uniform(), "combined", method="gradient")
    out = tmp_path / "m.h5" if recorded else None
    seen = []
    res = df.solve(E, grid.uniform(), _SolveFailsAt(7), out=out, callback=lambda *a: seen.append(a[0]), method="gradient")
    assert seen == list(range(1, 8))  # the user's callback still sees every step
    assert not res.converged and res.n_iter == 7
    assert res.message == (f"numerical failure at iteration 7 (E = {ref.energies[7]:.6e}): "
                           "simulated: CG did not converge")
    assert np.array_equal(res.energies, ref.energies[:8])
    assert np.array_equal(res.steps, ref.steps[:7])
    assert np.array_equal(res.decrements, ref.decrements[:7])
    assert res.times.size == 7
    if recorded:
        run, = read_run_file(out).runs
        assert run.status == "failed" and run.n_iter == 7 and run.message == res.message
        assert np.array_equal(run.energies, res.energies)
        # the failed run stays resumable: from its last snapshot it fails the same way
        again = df.solve(E, grid.uniform(), _SolveFailsAt(2), out=out, resume=True, method="gradient")
        assert again.info["resumed_from"] == 0 and again.n_iter == 2


def test_cli_reports_the_failure_in_one_line(tmp_path, capsys):
    case = tmp_path / "contrast.py"
    case.write_text(
        "import densflow as df\nfrom densflow.app.case import Case, Panel\n"
        f"case = Case(grid=df.Grid(32, dim=2), potential={HIGH_CONTRAST!r},\n"
        "            panels=[Panel((1, 3e-4, 1e-4), ['combined', 'fisher_rao'])])\n")
    h5 = tmp_path / "contrast.h5"
    code = main(["run", str(case), "-o", str(h5)])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in out + err
    assert err == (f"densflow: 2 run(s) ended in a numerical failure (see 'stopped:' above and "
                   f"'densflow inspect {h5}')\n")
    lines = out.splitlines()
    assert "failed" in lines[0] and lines[1].startswith("    stopped: numerical failure at iteration 0")
    assert lines[-1] == f"wrote {h5} and {tmp_path / 'contrast.png'}"
    runs = read_run_file(h5)
    assert [r.status for r in runs.runs] == ["failed", "failed"]
    assert "case_complete" not in runs.attrs
    code = main(["inspect", str(h5)])
    out, err = capsys.readouterr()
    assert code == 0 and "not converged:" in out
    assert "  panel 1 combined: numerical failure at iteration 0" in out
