"""Issue 14, items 1, 5 and 6: run files that nothing destroys, errors in one line.

* ``--overwrite`` (and ``df.solve(out=path)``) never truncates or replaces a file that
  another process has open;
* a full disk (here: a file-size limit, ``RLIMIT_FSIZE``) stops ``densflow run`` with
  one line and exit status 2, every run finished before stays readable, and
  ``--resume`` completes the file once there is room;
* damaged files, hand-made files and data failing their checksums give one line.
"""

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import densflow as df
from conftest import V1
from densflow.app.cli import main
from densflow.io.recorder import (DamagedFileError, FileLockedError, Recorder, RunFileError,
                               read_run_file)

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "cases"
SMALL = str(CASES / "small_1d.py")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_line(err, path):
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"densflow: error: {path}"), err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small case run once, undisturbed."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    assert main(["run", SMALL, "-o", str(path), "-q"]) == 0
    return path


# -- item 1: --overwrite ----------------------------------------------------------------

HOLDER = """
import sys
import densflow as df
from densflow.io.recorder import Recorder
rec = Recorder(sys.argv[1], mode="a")  # holds the HDF5 lock, like a running densflow run
print("ready", flush=True)
sys.stdin.readline()
grid = df.Grid(16, 1)
df.solve(df.energies.KL(grid, grid.uniform()), grid.uniform(), out=rec.run("extra"))
rec.close()
print("done", flush=True)
"""


def test_overwrite_never_touches_a_file_open_in_another_process(tmp_path, capsys, reference):
    path = tmp_path / "dup.h5"
    shutil.copy(reference, path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env=ENV, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "ready"
        before = digest(path)
        code, out, err = run_cli(capsys, "run", SMALL, "-o", path, "--overwrite")
        assert code == 2 and out == ""
        one_line(err, path)
        assert "open in another process" in err
        for attempt in (lambda: Recorder(path, mode="w"),
                        lambda: df.solve(df.energies.KL(df.Grid(8), df.Grid(8).uniform()),
                                         df.Grid(8).uniform(), out=path, overwrite=True)):
            with pytest.raises(FileLockedError, match="open in another process"):
                attempt()
        assert digest(path) == before
        assert [p.name for p in tmp_path.iterdir()] == ["dup.h5"]  # no temporary left
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "done"
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    # the holder's own writes went into the intact file
    names = [r.name for r in read_run_file(path).runs]
    assert "extra" in names and "panel2/mahalanobis" in names
    # once nobody holds it, --overwrite replaces it
    assert run_cli(capsys, "run", SMALL, "-o", path, "--overwrite", "-q")[0] == 0
    assert "extra" not in [r.name for r in read_run_file(path).runs]


def test_new_files_appear_whole_and_are_not_clobbered(tmp_path):
    grid = df.Grid(16, 1)
    E = df.energies.KL(grid, grid.gibbs(V1))
    path = tmp_path / "r.h5"
    df.solve(E, grid.uniform(), out=path)
    first = digest(path)
    with pytest.raises(RunFileError, match="already exists"):
        Recorder(path, mode="x")
    assert digest(path) == first
    with pytest.raises(RunFileError, match="exists; pass resume=True .* or overwrite=True"):
        df.solve(E, grid.uniform(), "fisher_rao", out=path)  # like densflow run: refused
    assert digest(path) == first
    df.solve(E, grid.uniform(), "fisher_rao", out=path, overwrite=True)  # replaced
    assert read_run_file(path).runs[0].metric == "fisher_rao"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]


# -- item 5: a full disk ----------------------------------------------------------------

def _limited(limit):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return pre


@pytest.mark.parametrize("limit", [150_000, 300_000])
def test_full_disk_stops_in_one_line_and_resume_completes(tmp_path, reference, limit):
    path = tmp_path / "full.h5"
    cmd = [sys.executable, "-m", "densflow", "run", SMALL, "-o", str(path)]
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited(limit))
    assert proc.returncode == 2, proc.stderr
    one_line(proc.stderr, path)
    assert "no space left" in proc.stderr and "--resume" in proc.stderr
    assert os.path.getsize(path) <= limit
    # every run recorded before the disk filled up is intact
    ref = {r.name: r for r in read_run_file(reference).runs}
    partial = read_run_file(path).runs
    done = [r for r in partial if r.status == "complete"]
    assert len(done) < 5 and (limit < 200_000 or len(done) >= 2)
    for run in done:
        assert np.array_equal(run.energies, ref[run.name].energies)
        assert np.array_equal(run.p_final, ref[run.name].p_final)
    # with room again, --resume ends exactly like the undisturbed run
    proc = subprocess.run(cmd + ["--resume", "-q"], env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    final = read_run_file(path).runs
    assert [r.name for r in final] == list(ref)
    for run in final:
        assert run.status == "complete"
        assert np.array_equal(run.energies, ref[run.name].energies), run.name
        assert np.array_equal(run.p_final, ref[run.name].p_final), run.name


def test_no_room_to_create_leaves_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "densflow", "run", SMALL, "-o",
                           str(tmp_path / "x.h5")], env=ENV, capture_output=True, text=True,
                          timeout=120, preexec_fn=_limited(20_000))
    assert proc.returncode == 2 and "no space left" in proc.stderr
    one_line(proc.stderr, tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []


# -- item 6: damaged and hand-made files --------------------------------------------------

def _chunk(path, dataset, index=0):
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(index)
    return info.byte_offset, info.size


@pytest.mark.parametrize("dataset", ["panel2/fisher_rao/snapshots", "panel1/combined/energies"])
def test_data_failing_its_checksum_is_reported_by_inspect(tmp_path, capsys, reference, dataset):
    path = tmp_path / "bad.h5"
    shutil.copy(reference, path)
    offset, size = _chunk(path, dataset, 0)
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        byte = fh.read(1)
        fh.seek(offset + size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    code, out, err = run_cli(capsys, "inspect", path)
    assert code == 2
    one_line(err, path)
    run, name = dataset.rsplit("/", 1)
    assert f"run {run!r}: dataset {name!r} cannot be read" in err
    # resuming needs that data too: one line, not a traceback
    code, out, err = run_cli(capsys, "run", SMALL, "-o", path, "--resume", "-q")
    assert code == 2
    one_line(err, path)
    assert "damaged run file" in err


def test_random_bytes_never_give_a_traceback(tmp_path, capsys, reference):
    size = os.path.getsize(reference)
    rng = np.random.default_rng(14)
    codes = []
    for trial in range(12):
        path = tmp_path / f"r{trial}.h5"
        data = bytearray(Path(reference).read_bytes())
        start = int(rng.integers(0, size - 256))
        data[start:start + 256] = rng.integers(0, 256, 256, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
        for command in ("inspect", "plot"):
            code, out, err = run_cli(capsys, command, path)
            assert code in (0, 2), (trial, command, err)
            if code == 2:
                one_line(err, path)
            codes.append(code)
    assert codes.count(2) >= 4  # most blocks of the file are data or metadata


def _hand_made(path, build):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "densflow-run"
        g = f.create_group("panel1/combined")
        f["panel1"].attrs.update({"index": 1, "title": "t", "weights": [1.0, 0, 0]})
        for key, n in (("energies", 3), ("steps", 2), ("decrements", 2), ("times", 2)):
            g[key] = np.ones(n)
        g.attrs.update({"metric": "combined", "status": "complete", "weights": [1.0, 0, 0]})
        build(f, g)


HAND_MADE = {
    "energies is a group": (lambda f, g: (g.__delitem__("energies"), g.create_group("energies")),
                            "'energies' is not a numeric dataset"),
    "text energies": (lambda f, g: (g.__delitem__("energies"), g.__setitem__("energies", ["a", "b"])),
                      "'energies' is not a numeric dataset"),
    "2-D steps": (lambda f, g: (g.__delitem__("steps"), g.__setitem__("steps", np.ones((2, 2)))),
                  "'steps' has 2 dimensions"),
    "no times": (lambda f, g: g.__delitem__("times"), "has no dataset 'times'"),
    "lengths disagree": (lambda f, g: (g.__delitem__("energies"), g.__setitem__("energies", np.ones(7))),
                         "energies holds 7 entries for 2 steps"),
    "weights text": (lambda f, g: g.attrs.__setitem__("weights", "heavy"), "bad attribute"),
    "tol text": (lambda f, g: g.attrs.__setitem__("tol", "tight"), "bad attribute"),
    "panel index text": (lambda f, g: f["panel1"].attrs.__setitem__("index", "one"), "bad attribute"),
    "newer format": (lambda f, g: f.attrs.__setitem__("format_version", 99), "newer densflow"),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_files_with_the_right_format_give_one_line(tmp_path, capsys, name):
    build, expected = HAND_MADE[name]
    path = tmp_path / "hand.h5"
    _hand_made(path, build)
    for command in ("inspect", "plot"):
        code, out, err = run_cli(capsys, command, path)
        assert code == 2, (command, out)
        one_line(err, path)
        assert expected in err
    with pytest.raises(RunFileError):
        read_run_file(path)


def test_truncated_file(tmp_path, capsys, reference):
    path = tmp_path / "cut.h5"
    path.write_bytes(Path(reference).read_bytes()[:50_000])
    for argv in (["inspect", path], ["plot", path], ["run", SMALL, "-o", path, "--resume"]):
        code, out, err = run_cli(capsys, *argv)
        assert code == 2
        one_line(err, path)
        assert "damaged run file (truncated" in err
    with pytest.raises(DamagedFileError):
        read_run_file(path)


def test_sys_exit_in_a_case_file(tmp_path, capsys):
    case = tmp_path / "leaves.py"
    case.write_text("import sys\n\nsys.exit(3)\n")
    code, out, err = run_cli(capsys, "run", case, "-o", tmp_path / "o.h5")
    assert code == 2 and out == ""
    one_line(err, case)
    assert "(line 3): calls sys.exit(3) on import" in err


def test_truncated_sweep_point_is_set_aside_and_rerun(tmp_path):
    from densflow.app.sweep import file_status, point_filename, run_point

    sweep_file = str(CASES / "small_sweep.py")
    path = tmp_path / point_filename("small_sweep", dict(n=32))
    whole = tmp_path / "whole.h5"
    run_point(sweep_file, dict(n=32), str(whole))
    path.write_bytes(whole.read_bytes()[:20_000])
    assert file_status(str(path)) == "damaged"
    rows = run_point(sweep_file, dict(n=32), str(path))
    assert file_status(str(path)) == "complete"
    assert all(r["status"] == "complete" for r in rows)
    assert rows[0]["note"] == f"damaged file set aside as {path.name}.damaged"
    assert (tmp_path / f"{path.name}.damaged").stat().st_size == 20_000
    ref = {r.name: r.energies for r in read_run_file(whole).runs}
    assert all(np.array_equal(r.energies, ref[r.name]) for r in read_run_file(path).runs)
