"""Issue 14, item 8: case files that behave like the library, and runs that say why
they stopped."""

import inspect
import re
from pathlib import Path

import pytest

import densflow as df
from densflow.app.case import EXPRESSION_NAMES, Case, Panel
from densflow.app.loading import load_case
from densflow.app.cli import main
from densflow.io.recorder import read_run_file

ROOT = Path(__file__).resolve().parents[1]
BUMP = "exp(-(x-0.5)**2/(2*0.05**2))"


def test_case_defaults_are_the_librarys():
    case, solve = inspect.signature(Case).parameters, inspect.signature(df.solve).parameters
    for key in ("tol", "gtol", "max_iter", "line_search", "safeguard"):
        assert case[key].default == solve[key].default, key


@pytest.mark.parametrize("name", ["ying2021_fig1", "ying2021_fig2", "mesh_independence"])
def test_shipped_cases_state_the_plain_method_and_why(name):
    source = (ROOT / "cases" / f"{name}.py").read_text()
    line = next(i for i, text in enumerate(source.splitlines()) if "safeguard=None" in text)
    around = "\n".join(source.splitlines()[max(0, line - 3):line + 1])
    assert "paper's plain Armijo" in around


def _copy_with_bump(tmp_path, keep_plain):
    source = (ROOT / "cases" / "ying2021_fig1.py").read_text().replace('p0="uniform"', f'p0="{BUMP}"')
    if not keep_plain:  # what the case file's comment says to do
        source = source.replace("    safeguard=None,\n", "")
    path = tmp_path / ("plain.py" if keep_plain else "bump.py")
    path.write_text(source)
    return load_case(path)


def test_a_copied_case_started_from_a_bump_converges_with_the_default(tmp_path):
    for keep_plain in (True, False):
        case = _copy_with_bump(tmp_path, keep_plain)
        assert (case.safeguard is None) == keep_plain
        results = [df.solve(case.energy(p), case.initial_density(), "combined",
                            **case.solve_options()) for p in case.panels]
        converged = [r.converged for r in results]
        if keep_plain:
            assert converged.count(False) >= 3
        else:
            assert all(converged), [r.message for r in results]


def test_run_and_inspect_print_why_runs_stopped(tmp_path, capsys):
    source = (ROOT / "cases" / "ying2021_fig1.py").read_text()
    source = source.replace('p0="uniform"', f'p0="{BUMP}"').replace("max_iter=1000", "max_iter=30")
    source = source.replace("grid=df.Grid(512, dim=1)", "grid=df.Grid(64, dim=1)")
    case = tmp_path / "stall.py"
    case.write_text(source)
    h5 = tmp_path / "stall.h5"
    assert main(["run", str(case), "-o", str(h5)]) == 0
    out = capsys.readouterr().out.splitlines()
    runs = read_run_file(h5).runs
    stopped = [r for r in runs if not r.converged]
    assert len(stopped) >= 3
    for run in stopped:
        label = next(i for i, text in enumerate(out) if f"panel {run.panel} {run.metric} " in text)
        assert out[label + 1] == f"    stopped: {run.message}"
        assert run.message.startswith(("line search failed", "reached max_iter"))
    assert main(["inspect", str(h5)]) == 0
    out = capsys.readouterr().out
    listed = out.split("not converged:\n")[1].splitlines()
    assert listed == [f"  panel {r.panel} {r.metric}: {r.message}" for r in stopped]


def test_a_lowered_wavelet_level_is_reported(tmp_path, capsys):
    case = tmp_path / "n200.py"
    case.write_text("import densflow as df\nfrom densflow.app.case import Case, Panel\n"
                    "case = Case(grid=df.Grid(200, dim=1), potential='sin(4*pi*x)',\n"
                    "            panels=[Panel((1, 1e-3, 0), ['combined', 'wasserstein'])])\n")
    assert main(["run", str(case), "-o", str(tmp_path / "n.h5")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("note: panel 1 combined: wavelet level 3 instead of 4 (PyWavelets' advice "
                      "for db4 at n = 200): n = 200 is divisible by 2**3 but not by 2**4")
    assert read_run_file(tmp_path / "n.h5").runs[0].attrs["metric_level"] == 3
    assert load_case(ROOT / "cases" / "ying2021_fig1.py").notes() == []  # 512: nothing lowered


def test_expression_names_are_listed_in_the_error_and_the_readme():
    with pytest.raises(ValueError) as info:
        Case(grid=df.Grid(16, 1), potential="erf(x)", panels=[Panel((1, 0, 0), ["combined"])])
    message = str(info.value)
    assert "NameError: name 'erf' is not defined" in message
    listed = message.split("allowed names: ")[1]
    readme = (ROOT / "README.rst").read_text()
    names = re.search(r"allowed in ``potential`` and ``p0``:(.*?)\n\n", readme, re.S).group(1)
    for name in EXPRESSION_NAMES:
        assert re.search(rf"\b{name}\b", listed), name
        assert f"``{name}``" in names, name
