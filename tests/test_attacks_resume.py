"""Issue 29, item 4: a parametric run on fresh batches, interrupted and resumed,
continues bit for bit (the run file records the batches' generator state with every
snapshot). The SIGKILL loops of ``benchmarks/attacks.py`` check the same through
``densflow run``; here the interruption is a callback that raises."""

import numpy as np
import pytest

import densflow as df
from densflow.io.recorder import Recorder, read_run_file
from densflow.parametric import Gaussian, MMD, Problem
from densflow.parametric.targets import GaussianTarget
from densflow.parametric.vi import vi_problem
from densflow.solving import FixedStep


def vi(seed):
    return vi_problem(GaussianTarget([0.0, 0.0], [[1.0, 0.8], [0.8, 0.89]]), 2,
                      n_samples=10, rng=seed)


def mmd(seed):
    X = np.random.default_rng(5).standard_normal((40, 2)) * [1.0, 0.5] + [1.0, -1.0]
    return Problem(Gaussian(2, "diag"), MMD(X), batch_size=16, rng=seed)


THETA0 = {vi: np.concatenate([[3.0, -2.0], np.diag([2.0, 0.5]).ravel()]),
          mmd: np.array([0.0, 0.0, 1.0, 1.0])}


def run(path, make, stop_at=None, resume=False, max_iter=57):
    def interrupt(k, *args):
        if stop_at is not None and k == stop_at:
            raise KeyboardInterrupt
        return False

    with Recorder(path, mode="a", snapshot_every=10) as rec:
        return df.solve(make(7), THETA0[make], "euclidean", line_search=FixedStep(0.01),
                        tol=None, max_iter=max_iter, out=rec.run("run"), resume=resume,
                        callback=interrupt)


@pytest.mark.parametrize("make", [vi, mmd], ids=["gaussian_vi", "mmd"])
@pytest.mark.parametrize("stop_at", [5, 23, 40])
def test_a_fresh_batch_run_resumes_bit_for_bit(tmp_path, make, stop_at):
    whole = run(tmp_path / "whole.h5", make)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut.h5", make, stop_at=stop_at)
    resumed = run(tmp_path / "cut.h5", make, resume=True)
    assert resumed.info["resumed_from"] == 10 * (stop_at // 10)
    assert np.array_equal(resumed.energies, whole.energies)
    assert np.array_equal(resumed.p, whole.p)
    a, b = (read_run_file(tmp_path / f, snapshots=True).runs[0] for f in ("whole.h5", "cut.h5"))
    assert np.array_equal(a.snapshots, b.snapshots)


def test_the_recorded_state_is_the_generator_before_each_snapshot(tmp_path):
    import h5py

    run(tmp_path / "r.h5", mmd, max_iter=20)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        states = f["run/snapshot_states"][()]
        its = f["run/snapshot_iterations"][()]
    assert list(its) == [0, 10, 20] and states.shape == (3, 1024)
    # snapshot 0: the generator as seeded, before the first batch was drawn
    fresh = np.random.default_rng(7)
    first = bytes(states[0]).rstrip(b"\0").decode()
    problem = mmd(7)
    problem.set_random_state(first)
    assert np.array_equal(problem.rng.standard_normal(5), fresh.standard_normal(5))
