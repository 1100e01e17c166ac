"""Issue 29, items 1, 2 and 6: what an attacker (or a careless user) gives as paths.

* ``-o`` naming a character device, a FIFO, a folder or a path ending in ``/`` is
  refused in one line before any work, and leaves no temporary file;
* the figure never overwrites the run file, an unsupported figure format is refused
  before the run, and the message names the file actually written;
* a potential whose ``exp(-V)`` underflows, a masked ``p0``, a hand-made file with an
  empty run group, ``sweep -o FILE``, an unreachable scheduler and Ctrl-C on a sweep
  each give one clear line.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import densflow as df
from densflow.app.cli import main
from densflow.io.recorder import Recorder, RunFileError

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "cases"
SMALL = str(CASES / "small_1d.py")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(code, out, err, path=None):
    """Exit status 2, one line on stderr naming ``path``, nothing run."""
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("densflow: error: "), err
    if path is not None:
        assert err.startswith(f"densflow: error: {path}"), err
    assert "iterations" not in out, out  # refused before any run


def leftovers(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp-" in p.name)


# -- item 1: special files ----------------------------------------------------------------

def _char_device(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 3))  # the same device as /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a character device here ({exc})")


def test_a_character_device_is_never_replaced(tmp_path, capsys):
    dev = tmp_path / "null"
    _char_device(dev)
    for extra in ((), ("--overwrite",), ("--resume",)):
        code, out, err = run_cli(capsys, "run", SMALL, "-o", dev, *extra)
        refused(code, out, err, dev)
        assert "character device" in err
        assert stat.S_ISCHR(os.stat(dev).st_mode)
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]
    with pytest.raises(RunFileError, match="character device"):
        Recorder(dev, mode="w")
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_a_fifo_is_refused_at_once_and_leaves_no_temporary_file(tmp_path):
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    for argv in (["run", SMALL, "-o", fifo, "--overwrite", "-q"], ["run", SMALL, "-o", fifo, "--resume"],
                 ["inspect", fifo], ["plot", fifo]):
        try:
            proc = subprocess.run([sys.executable, "-m", "densflow", *map(str, argv)], env=ENV,
                                  cwd=tmp_path, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"densflow {argv[0]} on a FIFO hangs")
        refused(proc.returncode, proc.stdout, proc.stderr, fifo)
        assert "FIFO" in proc.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode)
        assert leftovers(tmp_path) == []


def test_solve_refuses_a_special_file_as_out(tmp_path):
    fifo = tmp_path / "fifo.h5"
    os.mkfifo(fifo)
    grid = df.Grid(16, 1)
    with pytest.raises(RunFileError, match="FIFO"):
        df.solve(df.energies.KL(grid, grid.gibbs(lambda x: np.sin(2 * np.pi * x))),
                 grid.uniform(), "fisher_rao", out=str(fifo), max_iter=2)
    assert leftovers(tmp_path) == []


def test_a_path_ending_in_a_separator_names_itself_not_a_temporary_file(tmp_path, capsys):
    target = f"{tmp_path / 'newdir'}{os.sep}"
    code, out, err = run_cli(capsys, "run", SMALL, "-o", target)
    refused(code, out, err, target)
    assert ".tmp-" not in err and "folder" in err
    assert list(tmp_path.iterdir()) == []
    code, out, err = run_cli(capsys, "run", SMALL, "-o", tmp_path, "--overwrite")
    refused(code, out, err, tmp_path)
    assert "directory" in err
    assert list(tmp_path.iterdir()) == []


# -- item 2: the figure and the run file ------------------------------------------------

def test_a_run_file_named_like_its_figure_is_refused_before_the_run(tmp_path, capsys):
    out_png = tmp_path / "out.png"
    code, out, err = run_cli(capsys, "run", SMALL, "-o", out_png)
    refused(code, out, err, out_png)
    assert "overwrite the run file" in err
    assert not out_png.exists()


def test_a_figure_equal_to_the_run_file_is_refused_before_the_run(tmp_path, capsys):
    h5 = tmp_path / "c.h5"
    for figure in (h5, tmp_path / "." / "c.h5"):
        code, out, err = run_cli(capsys, "run", SMALL, "-o", h5, "--figure", figure)
        refused(code, out, err)
        assert "overwrite the run file" in err
        assert not h5.exists()


def test_an_unsupported_figure_format_is_refused_before_the_run(tmp_path, capsys):
    h5 = tmp_path / "a.h5"
    code, out, err = run_cli(capsys, "run", SMALL, "-o", h5, "--figure", tmp_path / "out.xyz")
    refused(code, out, err, tmp_path / "out.xyz")
    assert "'xyz'" in err and "png" in err
    assert list(tmp_path.iterdir()) == []


def test_plot_checks_its_figure_before_reading_and_never_overwrites_the_run_file(tmp_path, capsys):
    h5 = tmp_path / "b.h5"
    assert main(["run", SMALL, "-o", str(h5), "-q", "--figure", str(tmp_path / "b.svg")]) == 0
    before = h5.read_bytes()
    for target in (tmp_path / "x.xyz", h5):
        code, out, err = run_cli(capsys, "plot", h5, "-o", target)
        refused(code, out, err, target)
    assert h5.read_bytes() == before
    assert not (tmp_path / "x.xyz").exists()
    # a name without suffix: matplotlib adds .png, and the message says so
    code, out, err = run_cli(capsys, "plot", h5, "-o", tmp_path / "fig")
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'fig.png'}"
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_message_names_the_figure_actually_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adir").mkdir()
    code, out, err = run_cli(capsys, "run", SMALL, "-o", "b.h5", "--figure", "adir")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "wrote b.h5 and adir.png"
    assert (tmp_path / "adir.png").is_file() and list((tmp_path / "adir").iterdir()) == []


# -- item 6 ----------------------------------------------------------------------------------

def test_gibbs_says_what_underflows_and_by_how_much():
    grid = df.Grid(64, 1)
    v = 800 * np.sin(2 * np.pi * np.arange(64) / 64)
    zeros = np.count_nonzero(v - v.min() > 1075 * np.log(2))  # exp(-t) = 0 beyond 745.13
    assert zeros == 33
    with pytest.raises(ValueError, match=rf"underflows to 0 at {zeros} of 64 grid points: "
                                         r"V spans 1600 ") as exc:
        grid.gibbs(lambda x: 800 * np.sin(2 * np.pi * x))
    # the excess over float64's span, -log(2**-1075) = 745.13
    assert f"by {1600 - 1075 * np.log(2):.4g}" in str(exc.value)
    mu = grid.gibbs(lambda x: 370 * np.sin(2 * np.pi * x))  # spans 740: representable
    assert np.all(mu > 0) and abs(mu.sum() - 1) < 1e-15


UNDERFLOW = '''
import densflow as df
from densflow.app.case import Case, Panel

case = Case(grid=df.Grid(32, dim=1), potential="800*sin(2*pi*x)",
            panels=[Panel((1, 1e-3, 0), ["combined"])], max_iter=5)
'''


def test_a_case_whose_measure_underflows_names_its_file_and_leaves_no_run_file(tmp_path, capsys):
    case = tmp_path / "under.py"
    case.write_text(UNDERFLOW)
    h5 = tmp_path / "under.h5"
    code, out, err = run_cli(capsys, "run", case, "-o", h5)
    refused(code, out, err, case)
    assert "underflows" in err
    assert not h5.exists()


def test_a_masked_p0_is_refused_not_unmasked():
    grid = df.Grid(16, 1)
    energy = df.energies.KL(grid, grid.uniform())
    p0 = np.ma.masked_array(grid.uniform(), mask=np.arange(16) == 3)
    with pytest.raises(ValueError, match="p0 is a masked array with 1 masked entries"):
        df.solve(energy, p0, "fisher_rao", max_iter=2)
    ok = np.ma.masked_array(grid.uniform())  # nothing masked: its data is used
    assert df.solve(energy, ok, "fisher_rao", max_iter=2).converged


def test_an_empty_run_group_is_damaged_not_no_runs(tmp_path, capsys):
    for name in ("panel1/combined", "run"):
        path = tmp_path / "hand.h5"
        with h5py.File(path, "w") as f:
            f.attrs["format"] = "densflow-run"
            f.create_group(name)
        code, out, err = run_cli(capsys, "inspect", path)
        assert code == 2 and "no runs" not in out, (out, err)
        assert err.count("\n") == 1 and f"damaged run file: run '{name}'" in err, err


def test_sweep_to_an_existing_file_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    taken = tmp_path / "existing.h5"
    taken.write_bytes(b"x")
    code, out, err = run_cli(capsys, "sweep", CASES / "small_sweep.py", "-o", taken)
    refused(code, out, err, taken)
    assert taken.read_bytes() == b"x"


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code, out, err = run_cli(capsys, "sweep", CASES / "small_sweep.py", "-o", tmp_path / "sw",
                                 "--scheduler", "tcp://127.0.0.1:9")
    refused(code, out, err)
    assert "tcp://127.0.0.1:9" in err and "scheduler" in err
    assert not (tmp_path / "sw").exists()


def test_ctrl_c_on_a_sweep_does_not_advise_an_option_sweep_lacks(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import densflow.app.sweep as sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    code, out, err = run_cli(capsys, "sweep", CASES / "small_sweep.py", "-o", tmp_path / "sw")
    assert code == 130
    assert "--resume" not in err and "rerun" in err, err
    code = main(["sweep", str(CASES / "small_sweep.py"), "--resume"])
    assert code == 2  # sweep has no --resume: the advice must not name it
    capsys.readouterr()
