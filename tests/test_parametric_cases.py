"""The parametric case files of cases/ (gan2d, monoflow, gaussian_vi, lin2021_toy), each run
with a budget of seconds (fewer iterations and seeds than the case's) into a run file
whose contents are checked against independent computations, then drawn by the case's
figure and read by densflow inspect/plot."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from densflow.app.loading import load_case
from densflow.app.cli import main
from densflow.app.parametric_case import read_monitors, run_parametric_case
from densflow.parametric.vi import kl_gaussian, w2_gaussian
from densflow.io.recorder import read_run_file

CASES = Path(__file__).resolve().parents[1] / "cases"


def _module(name):
    spec = importlib.util.spec_from_file_location(f"case_{name}", CASES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _quick(name, tmp_path, max_iter, seeds, labels=None):
    """Run ``cases/NAME.py`` with at most ``max_iter`` iterations and ``seeds`` (an
    experiment with its own single seed keeps it), only the experiments ``labels``; return
    the module, the run file and the figure."""
    case = load_case(CASES / f"{name}.py")
    module = _module(name)  # the same definitions, for the checks
    case.experiments = [e for e in case.experiments if labels is None or e.label in labels]
    for e in case.experiments:
        e.max_iter = min(e.max_iter, max_iter)
        if e.seeds is None or len(e.seeds) > 1:
            e.seeds = list(seeds)
    path = tmp_path / f"{name}.h5"
    results = run_parametric_case(case, path)
    assert not any("error" in r.info for r in results)
    png = tmp_path / f"{name}.png"
    case.figure(str(path), str(png))
    assert 20_000 < png.stat().st_size < 400_000
    return module, read_run_file(path, snapshots=True), read_monitors(path)


def _runs(runfile, **attrs):
    return [r for r in runfile.runs if all(str(r.attrs[k]) == str(v) for k, v in attrs.items())]


def test_lin2021_toy_case_is_the_closed_form_proximal_iteration(tmp_path):
    toy, rf, _ = _quick("lin2021_toy", tmp_path, 40, [0, 1, 13])
    assert len(rf.runs) == 6 and rf.attrs["case_kind"] == "parametric"
    for run in rf.runs:
        metric, seed = run.attrs["experiment"].lower(), int(run.attrs["seed"])
        # the same iteration from the closed form (soft thresholding), stopped at F <= tol
        path = [toy.STARTS[seed]]
        while toy.w1(path[-1], toy.THETA_STAR) > toy.TOL:
            path.append(toy.proximal_step_closed_form(path[-1], metric))
        assert run.converged and run.n_iter == len(path) - 1
        np.testing.assert_allclose(run.snapshots, path, atol=1e-6)
        np.testing.assert_allclose(run.energies, [toy.w1(p, toy.THETA_STAR) for p in run.snapshots],
                                   rtol=1e-12)
    # from (-1.8, 0.2): the Wasserstein steps move both atoms by h = 0.25 (5 steps), the
    # Euclidean ones the left atom by h alpha = 0.0625 (20 steps)
    assert _runs(rf, experiment="Wasserstein", seed=1)[0].n_iter == 5
    assert _runs(rf, experiment="Euclidean", seed=1)[0].n_iter == 20


def test_monoflow_case_records_particles_and_the_gaussian_fit_kl(tmp_path):
    mono, rf, monitors = _quick("monoflow", tmp_path, 20, [0],
                                labels=["logit", "MLE (exp), clip 2"])
    assert sorted(r.name for r in rf.runs) == ["MonoFlow/MLE (exp), clip 2/seed0",
                                               "MonoFlow/logit/seed0"]
    x0 = np.random.default_rng(1000).standard_normal((1000, 2)) + 1.0
    for run in rf.runs:
        assert run.n_iter == 20 and run.attrs["problem"] == "ParticleFlow"
        np.testing.assert_array_equal(run.snapshots[0], x0)
        its, values = monitors[run.name]
        np.testing.assert_array_equal(its, [0, 10, 20])
        fits = [(p.mean(0), np.cov(p.T)) for p in (run.snapshots[0], run.snapshots[1], run.p_final)]
        np.testing.assert_allclose(values["kl_fit"],
                                   [kl_gaussian(m, C, [0, 0], mono.C_TARGET) for m, C in fits],
                                   rtol=1e-12)
        assert values["kl_fit"][-1] < 0.5 * values["kl_fit"][0]   # the particles move to p
    # both flows start from the same particles; they differ after the first step
    first, second = (monitors[r.name][1]["kl_fit"] for r in rf.runs)
    assert first[0] == second[0] and first[1] != second[1]


def _ou(mu0, Sigma0, C, t):
    """The Bures-Wasserstein flow to N(0, C) in closed form (Ornstein-Uhlenbeck)."""
    E = scipy.linalg.expm(-np.linalg.inv(C) * t)
    return E @ mu0, C + E @ (Sigma0 - C) @ E.T


def test_gaussian_vi_case_against_closed_forms(tmp_path):
    vi, rf, monitors = _quick("gaussian_vi", tmp_path, 30, [0, 1])
    assert len(rf.runs) == 2 * (1 + 2 + 2 + 1)
    C = np.array([[1.0, 0.8], [0.8, 0.89]])
    Sigma0 = vi.S0 @ vi.S0.T
    for run in rf.runs:
        its, w2 = monitors[run.name][0], monitors[run.name][1]["w2"]
        np.testing.assert_array_equal(its, [0, 10, 20, 30])
        ref = vi.reference(run.attrs["group"])
        assert w2[0] == pytest.approx(w2_gaussian(vi.MU0, Sigma0, *ref), rel=1e-10)
    flow = _runs(rf, group="Gaussian target", experiment=vi.FLOW)[0]
    # RK4 with step 0.01 against the Ornstein-Uhlenbeck solution at t = 0.1, 0.2, 0.3: the
    # covariance relaxes at rates up to 2 / lambda_min(C) = 14, so RK4's error is about
    # (14 x 0.01)^4 / 120 per unit of rate and time: 2.2e-7 relative measured
    exact = [w2_gaussian(*_ou(vi.MU0, Sigma0, C, 0.01 * k), [0, 0], C) for k in (10, 20, 30)]
    np.testing.assert_allclose(monitors[flow.name][1]["w2"][1:], exact, rtol=1e-6)
    natural = _runs(rf, group="Gaussian target", experiment=vi.NATURAL)[0]
    # ReverseKL on a Gaussian target is the closed-form KL
    assert natural.energies[0] == pytest.approx(kl_gaussian(vi.MU0, Sigma0, [0, 0], C), rel=1e-10)
    assert natural.attrs["metric"] == "exact_wasserstein" and natural.attrs["line_search_eta"] == 0.05
    # the two VI seeds draw different batches from the same start
    reparam = _runs(rf, group="Gaussian target", experiment=vi.VI["reparam"])
    assert len(reparam) == 2 and reparam[0].energies[-1] != reparam[1].energies[-1]
    np.testing.assert_array_equal(reparam[0].snapshots[0], reparam[1].snapshots[0])


def _unbiased_mmd2(x, y, bandwidth):
    k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * bandwidth ** 2))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_gan2d_case_records_mmd_against_generator_iterations(tmp_path):
    gan, rf, monitors = _quick("gan2d", tmp_path, 60, [0])
    assert len(rf.runs) == 8
    data = gan.ring(np.random.default_rng(1000), 500)
    for run in rf.runs:
        assert run.n_iter == 60 and run.attrs["problem"] == "ProximalGAN"
        assert run.attrs["line_search_eta"] == gan.LEARNING_RATES[run.attrs["group"]]
        its, mmd2 = monitors[run.name][0], monitors[run.name][1]["mmd2"]
        np.testing.assert_array_equal(its, [0, 50, 60])
        thetas = [run.snapshots[0], run.snapshots[1], run.p_final]
        expected = [_unbiased_mmd2(gan.GENERATOR.sample(t, gan.Z_EVAL), data, 0.5) for t in thetas]
        np.testing.assert_allclose(mmd2, expected, rtol=1e-9, atol=1e-12)
        assert np.all(run.times > 0) and run.times.size == 60  # wall time recorded per iteration
    # every method of a seed starts from the same generator
    starts = [r.snapshots[0] for r in rf.runs]
    assert all(np.array_equal(s, starts[0]) for s in starts)
    penalty = {r.attrs["experiment"]: r.attrs["problem_penalty"] for r in _runs(rf, group="20x lr 2e-2")}
    assert penalty == {"Adam": "none", "Adam + RWP": "rwp, h=0.2, steps=5",
                       "Adam + O1-SBE": "o1sbe, h=0.2, steps=5",
                       "Adam + O2Diag-SBE": "o2diagsbe, h=0.2, steps=5"}
    # the noise level of the estimator that the figure draws
    lo, hi = np.quantile(gan.noise(), [0.05, 0.95])
    assert lo < 0 < hi < 1e-2


def test_densflow_inspect_and_plot_read_a_case_file_with_monitors(tmp_path, capsys):
    _quick("lin2021_toy", tmp_path, 3, [0])
    h5 = tmp_path / "lin2021_toy.h5"
    assert main(["inspect", str(h5)]) == 0
    assert "proximal iteration/Euclidean/seed0" in capsys.readouterr().out
    assert main(["plot", str(h5), "-o", str(tmp_path / "generic.png")]) == 0
    assert (tmp_path / "generic.png").stat().st_size > 10_000
