"""Flows in run files (densflow.flow(out=...)), flow case files and the command line:
recorded = unrecorded, interrupted + resumed = uninterrupted (bit for bit, also after a
SIGKILL of `densflow run`), resume refused on any change, case-file errors, inspect,
plot and movie."""

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
from densflow.app.cli import main
from densflow.app.flow_case import Flow, FlowCase, build_energy, displacements
from densflow.app.loading import load_case
from densflow.energies import KL, Dirichlet
from densflow.flows.recording import read_flow
from densflow.io.recorder import Recorder, ResumeError, RunFileError, read_run_file

ROOT = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().parent / "cases"
SMALL = str(CASES / "small_flow.py")
ARRAYS = ("p", "times", "densities", "step_times", "energies", "steps", "newton_iterations",
          "cg_iterations", "errors")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same(a, b):
    for key in ARRAYS:
        x, y = getattr(a, key), getattr(b, key)
        assert x.shape == y.shape and np.array_equal(x, y), key
    assert (a.t, a.n_steps, a.converged, a.message) == (b.t, b.n_steps, b.converged, b.message)


@pytest.fixture(scope="module")
def heat():
    grid = df.Grid(64)
    x = grid.coordinates()
    p0 = 1 + 0.5 * np.cos(2 * np.pi * x) + 0.3 * np.sin(6 * np.pi * x)
    return KL(grid, grid.uniform()), p0 / p0.sum()


# small max_memory: the saved densities are thinned in memory (the file keeps them all)
SETUPS = {
    "adaptive-bdf2": dict(t_end=0.05, rtol=1e-5, save_every=3, max_memory=8 * 64 * 7),
    "fixed-euler": dict(t_end=0.02, dt=5e-4, scheme="euler", save_times=[0.001, 0.01, 0.02]),
}


@pytest.mark.parametrize("setup", SETUPS)
def test_recorded_run_equals_unrecorded_and_reads_back(tmp_path, heat, setup):
    E, p0 = heat
    kw = SETUPS[setup]
    ref = df.flow(E, p0, **kw)
    rec = df.flow(E, p0, out=tmp_path / "a.h5", **kw)
    assert_same(ref, rec)
    back = read_flow(tmp_path / "a.h5")
    assert np.array_equal(back.p, ref.p) and np.array_equal(back.energies, ref.energies)
    assert np.array_equal(back.step_times, ref.step_times)
    # the file keeps every saved density; the result thinned them only in memory
    assert set(ref.times) <= set(back.times)
    if setup == "adaptive-bdf2":
        assert ref.info["frames_thinned"] > 0 and back.times.size > ref.times.size
    else:
        assert np.array_equal(back.times, ref.times) and back.times.tolist() == [0.001, 0.01, 0.02]
    # resuming a complete flow returns the stored result, thinned as the run was
    again = df.flow(E, p0, out=tmp_path / "a.h5", resume=True, **kw)
    assert_same(ref, again)
    assert again.info["resumed_from"] == -1
    with h5py.File(tmp_path / "a.h5", "r") as f:
        g = f["flow"]
        assert g.attrs["kind"] == "flow" and g.attrs["status"] == "complete"
        assert g.attrs["scheme"] == kw.get("scheme", "bdf2") and g.attrs["metric"] == "wasserstein"
        assert g["energies"].maxshape == (None,) and g["densities"].maxshape[0] is None
        assert g.attrs["energy_fingerprint"].startswith("sha256:")


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("stop_at", [1, 2, 17])
def test_interrupted_then_resumed_is_bit_identical(tmp_path, heat, setup, stop_at, monkeypatch):
    """A checkpoint after every step (tiny flush interval, no spacing); the run dies at
    step ``stop_at`` (after its checkpoint) and resumes from it."""
    import densflow.io.flowrecord as flowrecord

    monkeypatch.setattr(flowrecord, "CHECKPOINT_SPACING", 0)
    E, p0 = heat
    kw = SETUPS[setup]
    ref = df.flow(E, p0, **kw)
    path = tmp_path / "b.h5"

    def stop(k, t, p, info):
        if k == stop_at:
            raise Interrupt

    with Recorder(path, flush_interval=1e-9) as rec, pytest.raises(Interrupt):
        df.flow(E, p0, out=rec.flow(), on_step=stop, **kw)
    with h5py.File(path, "r") as f:
        assert f["flow"].attrs["status"] == "failed" and "Interrupt" in f["flow"].attrs["error"]
        assert f["flow"]["steps"].shape == (stop_at,)
    with Recorder(path, mode="a", flush_interval=1e-9) as rec:
        res = df.flow(E, p0, out=rec.flow(), resume=True, **kw)
    assert res.info["resumed_from"] == stop_at
    assert_same(ref, res)
    back = read_flow(path)
    assert np.array_equal(back.energies, ref.energies) and np.array_equal(back.steps, ref.steps)


def test_spaced_checkpoints_resume_from_an_earlier_step(tmp_path, heat):
    """With the default spacing (20 times a checkpoint's writing time) checkpoints are
    rarer than flushes; a run dying at step 30 resumes from an earlier one, and still
    ends bit-identical."""
    E, p0 = heat
    kw = SETUPS["adaptive-bdf2"]
    path = tmp_path / "s.h5"

    def stop(k, t, p, info):
        if k == 30:
            raise Interrupt

    with Recorder(path, flush_interval=1e-9) as rec, pytest.raises(Interrupt):
        df.flow(E, p0, out=rec.flow(), on_step=stop, **kw)
    with h5py.File(path, "r") as f:
        g = f["flow"]
        at = int(g[f"checkpoint{g.attrs['checkpoint']}"].attrs["k"])
        assert g["steps"].shape == (30,) and 1 <= at < 30
    res = df.flow(E, p0, out=path, resume=True, **kw)
    assert res.info["resumed_from"] == at
    assert_same(df.flow(E, p0, **kw), res)


def test_resume_without_checkpoint_starts_afresh(tmp_path, heat):
    E, p0 = heat
    kw = SETUPS["adaptive-bdf2"]

    def stop(k, t, p, info):
        if k == 5:
            raise Interrupt

    with Recorder(tmp_path / "c.h5", flush_interval=1e3) as rec, pytest.raises(Interrupt):
        df.flow(E, p0, out=rec.flow(), on_step=stop, **kw)
    res = df.flow(E, p0, out=tmp_path / "c.h5", resume=True, **kw)
    assert res.info["resumed_from"] == -1
    assert_same(df.flow(E, p0, **kw), res)


@pytest.mark.parametrize("change", ["rtol", "scheme", "metric", "p0", "energy_weight", "energy_mu",
                                    "save_every", "t_end", "newton", "mobility"])
def test_resume_refused_on_any_change(tmp_path, heat, change):
    E, p0 = heat
    kw = dict(t_end=0.02, rtol=1e-4, save_every=5)
    path = tmp_path / "d.h5"
    df.flow(E, p0, out=path, **kw)
    grid = E.grid
    other = dict(kw)
    energy, start = E, p0
    if change == "rtol":
        other["rtol"] = 2e-4
    elif change == "scheme":
        other["scheme"] = "euler"
    elif change == "metric":
        other["metric"] = "fisher_rao"
    elif change == "p0":
        start = p0.copy()
        start[0] += 1e-12
        start /= start.sum()
    elif change == "energy_weight":
        energy = 1.0000001 * E
    elif change == "energy_mu":
        mu = grid.uniform() * (1 + 1e-9 * np.cos(2 * np.pi * grid.coordinates()))
        energy = KL(grid, mu / mu.sum())
    elif change == "save_every":
        other["save_every"] = 6
    elif change == "t_end":
        other["t_end"] = 0.03
    elif change == "newton":
        other["newton"] = df.flows.FlowNewton(tol=0.01)
    elif change == "mobility":
        other["mobility"] = "logarithmic"
    with pytest.raises(ResumeError, match="cannot resume flow 'flow'") as info:
        df.flow(energy, start, out=path, resume=True, **other)
    assert "\n" not in str(info.value)
    # the file is untouched and still resumes with the recorded setup
    assert read_flow(path).n_steps > 0
    df.flow(E, p0, out=path, resume=True, **kw)


def test_resume_refused_on_a_change_of_boundary(tmp_path, heat):
    E, p0 = heat
    kw = dict(t_end=0.01, rtol=1e-4, save_every=5)
    path = tmp_path / "b.h5"
    df.flow(E, p0, out=path, **kw)
    box = df.Grid(64, boundary="neumann")
    with pytest.raises(ResumeError, match="grid_boundary"):
        df.flow(KL(box, box.uniform()), p0, out=path, resume=True, **kw)
    box_path = tmp_path / "box.h5"
    df.flow(KL(box, box.uniform()), p0, out=box_path, **kw)
    with pytest.raises(ResumeError, match="grid_boundary"):
        df.flow(E, p0, out=box_path, resume=True, **kw)


@pytest.mark.parametrize("missing", ["newton_warm_start", "newton_multigrid"])
def test_file_of_an_older_version_is_refused_by_the_setting_it_lacks(tmp_path, heat, missing):
    """A flow file written before a Newton setting existed (the attribute deleted here)
    computed its steps differently: resuming it is refused, naming that setting."""
    E, p0 = heat
    kw = dict(t_end=0.01, rtol=1e-4, save_every=5)
    path = tmp_path / "old.h5"
    df.flow(E, p0, out=path, **kw)
    with h5py.File(path, "r+") as f:
        del f["flow"].attrs[missing]
    with pytest.raises(ResumeError, match=f"recorded {missing} = None, this run has"):
        df.flow(E, p0, out=path, resume=True, **kw)


@pytest.mark.parametrize("rule", ["objective", "first"])
def test_resume_refused_on_a_change_of_warm_start(tmp_path, heat, rule):
    E, p0 = heat
    kw = dict(t_end=0.01, rtol=1e-4, save_every=5)
    path = tmp_path / "w.h5"
    df.flow(E, p0, out=path, **kw)
    with h5py.File(path, "r") as f:
        assert f["flow"].attrs["newton_warm_start"] == "residual"
    with pytest.raises(ResumeError, match="newton_warm_start"):
        df.flow(E, p0, out=path, resume=True, newton=df.flows.FlowNewton(warm_start=rule), **kw)


def test_out_arguments(tmp_path, heat):
    E, p0 = heat
    df.flow(E, p0, 0.001, dt=1e-3, out=tmp_path / "e.h5")
    with pytest.raises(RunFileError, match="exists; pass resume=True"):
        df.flow(E, p0, 0.001, dt=1e-3, out=tmp_path / "e.h5")
    df.flow(E, p0, 0.001, dt=1e-3, out=tmp_path / "e.h5", overwrite=True)
    with pytest.raises(ValueError, match="resume=True needs out="):
        df.flow(E, p0, 0.001, resume=True)
    with pytest.raises(ValueError, match="exclude each other"):
        df.flow(E, p0, 0.001, out=tmp_path / "e.h5", resume=True, overwrite=True)
    with pytest.raises(TypeError, match="out must be a path"):
        df.flow(E, p0, 0.001, out=3)
    with Recorder(tmp_path / "f.h5") as rec:
        with pytest.raises(TypeError, match="Recorder.flow"):
            df.flow(E, p0, 0.001, out=rec.run("x"))
        # two flows in one file, read back by name
        df.flow(E, p0, 0.001, dt=1e-3, out=rec.flow("a"))
        df.flow(2.0 * E, p0, 0.001, dt=1e-3, out=rec.flow("b"))
    assert read_flow(tmp_path / "f.h5", "b").energies[0] == pytest.approx(2 * E.value(p0))
    with pytest.raises(RunFileError, match="2 flows"):
        read_flow(tmp_path / "f.h5")
    assert [f.name for f in read_run_file(tmp_path / "f.h5").flows] == ["a", "b"]


# ------------------------------------------------------------------ case files
def test_flow_case_builds_the_energy_and_runs_like_flow(tmp_path, capsys):
    case = load_case(SMALL)
    assert case.kind == "flow" and case.name == "small_flow" and len(case.flows) == 1
    energy, p0, recipes = case.build(case.flows[0])
    grid = case.grid
    x = grid.coordinates()
    expect = 1 + 0.5 * np.cos(2 * np.pi * x) + 0.3 * np.sin(6 * np.pi * x)
    assert np.allclose(p0, expect / expect.sum(), rtol=1e-14)
    assert energy.value(p0) == pytest.approx(float(np.sum(p0 * np.log(p0 * grid.size))), rel=1e-12)
    code, out, err = run_cli(capsys, "run", SMALL, "-o", tmp_path / "s.h5")
    assert code == 0, err
    assert "reached t_end" in out
    direct = df.flow(energy, p0, **case.flows[0].options)
    back = read_flow(tmp_path / "s.h5")
    assert np.array_equal(back.p, direct.p) and np.array_equal(back.energies, direct.energies)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f.attrs["case_kind"] == "flow" and f.attrs["case_complete"] == 1
        assert f["flow"].attrs["p0_recipe"].startswith("normalised 1 + 0.5*cos")
        assert f["flow"].attrs["energy_recipe"] == "{entropy: 1.0}"
    code, out, _ = run_cli(capsys, "run", SMALL, "-o", tmp_path / "s.h5", "--resume")
    assert code == 0 and "recorded" in out


def test_energy_dicts_build_the_named_terms():
    grid = df.Grid(32)
    x = grid.coordinates()
    p = 1 + 0.3 * np.sin(2 * np.pi * x)
    p /= p.sum()
    V = np.cos(2 * np.pi * x)
    mu = np.exp(-V) / np.exp(-V).sum()
    E, recipe = build_energy({"kl": (2.0, "cos(2*pi*x)"), "dirichlet": "cos(2*pi*x)"}, grid)
    want = 2 * KL(grid, mu).value(p) + Dirichlet(grid, mu).value(p)
    assert E.value(p) == pytest.approx(want, rel=1e-12)
    assert "kl" in recipe and "dirichlet" in recipe
    assert np.allclose(displacements(grid)["d"], np.where(x >= 0.5, x - 1, x))
    d2 = displacements(df.Grid(8, 2))
    assert d2["d1"][5, 0] == -3 / 8 and d2["d2"][0, 3] == 3 / 8


@pytest.mark.parametrize("kwargs, message", [
    (dict(energy={"entropy": 1}, flow=dict(rtol=1e-3)), "needs t_end"),
    (dict(energy={"entropy": 1}, flow=dict(t_end=1, speed=2)), "unknown option"),
    (dict(energy={"entropy": 1}), "needs flow="),
    (dict(energy={"entropy": 1}, flow=dict(t_end=1), flows=[Flow(t_end=1)]), "not both"),
    (dict(energy={"enthalpy": 1}, flow=dict(t_end=1)), "unknown term 'enthalpy'"),
    (dict(energy={"kl": "cos(2*pi*y)"}, flow=dict(t_end=1)), "energy 'kl' V"),
    (dict(energy={"kl": (1, 2, 3)}, flow=dict(t_end=1)), "(weight, parameter)"),
    (dict(energy={"entropy": -1}, flow=dict(t_end=1)), "weight must be a finite number >= 0"),
    (dict(flow=dict(t_end=1)), "has no energy"),
    (dict(energy={"entropy": 1}, p0="cos(2*pi*x)", flow=dict(t_end=1)), "must be positive"),
    (dict(energy={"entropy": 1}, flow=dict(t_end=1, metric="combined")), "combined.* has no flow"),
    (dict(energy={"entropy": 1}, flow=dict(t_end=1, metric="l2")), "metric must be one of"),
    (dict(energy={"entropy": 1}, flows=[Flow("a", t_end=1), Flow("a", t_end=2)]), "distinct labels"),
])
def test_flow_case_errors_name_the_problem(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
        FlowCase(df.Grid(16), **kwargs)


def test_free_energy_terms_without_issue_24_are_named():
    if hasattr(df.energies, "PorousMedium"):
        E, _ = build_energy({"porous_medium": 2}, df.Grid(16))
        p = df.Grid(16).uniform()
        assert E.value(p) == pytest.approx(1.0, rel=1e-12)  # (1/N) sum rho^2 / (2 - 1), rho = 1
    else:
        with pytest.raises(ValueError, match="densflow.energies.PorousMedium"):
            build_energy({"porous_medium": 2}, df.Grid(16))


@pytest.mark.parametrize("text, message", [
    ("from densflow.app.flow_case import FlowCase\nimport densflow as df\n"
     "case = FlowCase(df.Grid(8), energy={'entropy': 1}, flow=dict(t_end=1, dt='x'))\n", None),
    ("from densflow.app.flow_case import FlowCase\nimport densflow as df\n"
     "case = FlowCase(df.Grid(8), energy={'kl': 'x +'}, flow=dict(t_end=1))\n", "line 3"),
])
def test_case_file_errors_are_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.py"
    path.write_text(text)
    code, out, err = run_cli(capsys, "run", path, "-o", tmp_path / "bad.h5")
    assert code == 2 and err.startswith("densflow: error: ") and err.count("\n") == 1, err
    if message:
        assert message in err
    assert not (tmp_path / "bad.h5").exists() or message is None


def test_method_is_refused_for_flow_cases(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", SMALL, "-o", tmp_path / "m.h5", "--method", "newton")
    assert code == 2 and "--method applies to grid cases" in err


def test_changed_case_is_refused_on_resume(tmp_path, capsys):
    code, _, _ = run_cli(capsys, "run", SMALL, "-o", tmp_path / "r.h5")
    assert code == 0
    changed = tmp_path / "small_flow.py"
    changed.write_text(Path(SMALL).read_text().replace("rtol=1e-5", "rtol=2e-5"))
    code, _, err = run_cli(capsys, "run", changed, "-o", tmp_path / "r.h5", "--resume")
    assert code == 2 and "cannot resume flow 'flow': recorded rtol = 1e-05" in err
    assert err.count("\n") == 1


# ------------------------------------------------------------------ inspect, plot, movie
def test_inspect_plot_and_movie(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "p.h5"
    assert run_cli(capsys, "run", SMALL, "-o", path, "-q")[0] == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000
    code, out, _ = run_cli(capsys, "inspect", path)
    assert code == 0
    lines = out.splitlines()
    row = lines[lines.index(next(line for line in lines if line.startswith("----"))) + 1]
    res = read_flow(path)
    assert "wasserstein" in row and "bdf2" in row and "complete" in row
    assert f" {res.n_steps} " in row and f"{res.energies[-1]:.6e}" in row
    code, out, _ = run_cli(capsys, "plot", path, "-o", tmp_path / "q.png", "--movie", tmp_path / "q.gif")
    assert code == 0 and "wrote" in out
    with Image.open(tmp_path / "q.png") as im:
        assert im.size[0] > 800
    with Image.open(tmp_path / "q.gif") as gif:
        assert gif.n_frames == res.times.size
    assert (tmp_path / "q.gif").stat().st_size < 1_000_000


def test_two_dimensional_figure_and_movie(tmp_path):
    from densflow.app.flow_figures import save_flow_figure, save_flow_movie

    grid = df.Grid(16, 2)
    x1, x2 = grid.coordinates()
    p0 = 1.5 + np.cos(2 * np.pi * x1) * np.sin(2 * np.pi * x2)
    with Recorder(tmp_path / "2d.h5") as rec:
        for i, metric in enumerate(("wasserstein", "fisher_rao"), start=1):
            df.flow(KL(grid, grid.uniform()), p0 / p0.sum(), 0.01, metric=metric,
                    save_times=np.linspace(0, 0.01, 5), out=rec.flow(metric, {"index": i}))
    save_flow_figure(tmp_path / "2d.h5", tmp_path / "2d.png", title="two flows")
    save_flow_movie(tmp_path / "2d.h5", tmp_path / "2d.gif")
    from PIL import Image

    with Image.open(tmp_path / "2d.gif") as gif:
        assert gif.n_frames == 5


def test_plot_movie_refused_without_flows(tmp_path, capsys):
    small = CASES / "small_1d.py"
    assert run_cli(capsys, "run", small, "-o", tmp_path / "g.h5", "-q")[0] == 0
    code, _, err = run_cli(capsys, "plot", tmp_path / "g.h5", "--movie", tmp_path / "g.gif")
    assert code == 2 and "--movie animates flows" in err


# ------------------------------------------------------------------ SIGKILL
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Kill a real ``densflow run`` of a flow case with SIGKILL mid-run; the file must
    open, show the flow unfinished, and ``--resume`` must end bit-identical to an
    uninterrupted run."""
    case = str(CASES / "slow_flow.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "densflow", "run", case]
    killed = tmp_path / "killed.h5"
    victim = subprocess.Popen(cmd + ["-o", str(killed)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(300, victim.kill)
    watchdog.start()
    try:
        # progress lines come about once a second after two; checkpoints 0.5 s apart
        for line in victim.stderr:
            if "flow: step" in line and int(line.split("step")[1].split(",")[0]) >= 100:
                break
        victim.send_signal(signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL, "the flow ended before a progress line: make " \
                                                   "tests/cases/slow_flow.py longer"
    finally:
        watchdog.cancel()

    partial = read_run_file(killed).flows[0]
    assert partial.status == "running" and 0 < partial.n_steps < 4000
    proc = subprocess.run([sys.executable, "-m", "densflow", "inspect", str(killed)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "unfinished at t = " in proc.stdout
    proc = subprocess.run(cmd + ["-o", str(killed), "--resume"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resumed from step" in proc.stdout

    loaded = load_case(case)
    energy, p0, _ = loaded.build(loaded.flows[0])
    ref = df.flow(energy, p0, **loaded.flows[0].options)
    back = read_flow(killed)
    assert back.info["resumed_from"] > 0
    assert back.n_steps == ref.n_steps == 4000
    for key in ("p", "step_times", "energies", "steps", "newton_iterations", "cg_iterations",
                "errors", "times", "densities"):
        assert np.array_equal(getattr(back, key), getattr(ref, key)), key


def test_a_first_step_landing_on_the_first_save_time_saves_it():
    """save_times = [t0, t1, ...] with a first step ending at t1: t1 is saved (it was
    skipped while t0 stayed first in the queue)."""
    grid = df.Grid(32)
    x = grid.coordinates()
    p0 = 1 + 0.5 * np.cos(2 * np.pi * x)
    times = [0.0, 1e-3, 2e-3, 1e-2]
    res = df.flow(KL(grid, grid.uniform()), p0 / p0.sum(), 1e-2, metric="fisher_rao", dt=1e-3,
                  save_times=times)
    assert res.step_times[1] == 1e-3
    assert res.times.tolist() == times


# ------------------------------------------------------------------ committed animations
def test_every_flow_animation_is_small_shown_and_has_its_command():
    """plots/*.gif: under 1.5 MB, shown in the gallery, and made by exactly one command
    of the guide's Figures block (``densflow plot ... --movie plots/NAME.gif``)."""
    import re

    plots = ROOT / "plots"
    gifs = {p.name: p.stat().st_size for p in plots.glob("*.gif")}
    assert {"flow_fokker_planck_2d.gif", "flow_porous_medium_2d.gif", "flow_aggregation_2d.gif"} <= set(gifs)
    gallery = (ROOT / "docs" / "gallery.rst").read_text(encoding="utf-8")
    shown = set(re.findall(r"^\.\. (?:figure|image):: \.\./plots/(\S+\.gif)", gallery, re.M))
    assert shown == set(gifs)
    figures = (ROOT / "docs" / "guide.rst").read_text(encoding="utf-8").split("\nFigures\n=======\n")[1]
    for name, size in gifs.items():
        assert size < 1.5 * 2**20, (name, size)
        makers = [line for line in figures.splitlines() if f"--movie plots/{name}" in line]
        assert len(makers) == 1, (name, makers)
        from PIL import Image

        with Image.open(plots / name) as im:
            assert im.n_frames >= 10, name
