"""The real-data case files (scikit-learn's digits and breast-cancer data), each run in a
seconds-long version (a handful of steps, one seed) whose run file is checked against
independent recomputations, drawn by the case's figure and listed by densflow inspect."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip(  # noqa: E402
    "torch", reason="needs PyTorch: pip install \".[torch]\" (about 5 GB with CUDA), then pytest -m torch")
pytestmark = pytest.mark.torch
from scipy.spatial.distance import cdist  # noqa: E402

from densflow.app.loading import load_case  # noqa: E402
from densflow.app.cli import main  # noqa: E402
from densflow.app.parametric_case import read_monitors, run_parametric_case  # noqa: E402
from densflow.parametric.data import frechet_distance  # noqa: E402
from densflow.parametric.torch.realdata import sequential  # noqa: E402
from densflow.parametric.vi import w2_gaussian  # noqa: E402
from densflow.io.recorder import read_run_file  # noqa: E402

CASES = Path(__file__).resolve().parents[1] / "cases"


# the cases, seconds-long -------------------------------------------------------------------
def _quick(name, tmp_path, max_iter, labels=None, groups=None, seeds=(0,)):
    """Run ``cases/NAME.py`` with at most ``max_iter`` iterations, ``seeds``, and only the
    experiments with a label in ``labels`` and a group in ``groups``; return the case, the
    case file's module (its globals), the run file and its monitors."""
    case = load_case(CASES / f"{name}.py")
    case.experiments = [e for e in case.experiments if (labels is None or e.label in labels)
                        and (groups is None or e.group in groups)]
    for e in case.experiments:
        e.max_iter = min(e.max_iter, max_iter)
        e.seeds = list(seeds)
    module = case.experiments[0].make.__globals__
    return case, module


def _run(case, tmp_path, capsys):
    path = tmp_path / f"{case.name}.h5"
    results = run_parametric_case(case, path)
    assert not any("error" in r.info for r in results)
    png = tmp_path / f"{case.name}.png"
    case.figure(str(path), str(png))
    assert 20_000 < png.stat().st_size < 400_000
    capsys.readouterr()
    assert main(["inspect", str(path)]) == 0
    table = capsys.readouterr().out
    for e in case.experiments:
        assert f"{e.group}/{e.label}/seed0" in table
    return read_run_file(path, snapshots=True), read_monitors(path)


def test_lin2021_digits_case(tmp_path, capsys):
    case, m = _quick("lin2021_digits", tmp_path, 3,
                     labels={"Adam", "RWP (h 0.2, l 5)", "O2Diag-SBE (h 0.05, l 3)"},
                     groups={"NS, lr 0.0002", "WGAN-GP, lr 0.001 (10x)"})
    assert len(case.experiments) == 4
    rf, monitors = _run(case, tmp_path, capsys)
    assert len(rf.runs) == 4 and rf.attrs["case_name"] == "lin2021_digits"
    X, _, _, _, clf, _, _ = m["digits"]()
    ref = clf.features(X)
    bandwidth = m["BANDWIDTH"]
    for run in rf.runs:
        assert run.n_iter == 3 and run.attrs["line_search"] == "fixed"
        assert run.attrs["problem_monitor"] == "digits FID, 256 samples"
        # the last value: the FID of the final generator, recomputed from the features
        F = clf.features(m["GENERATOR"].sample(run.p_final, m["Z_FID"]))
        fid = frechet_distance(F.mean(0), np.cov(F.T), ref.mean(0), np.cov(ref.T))
        assert run.energies[-1] == pytest.approx(fid, rel=1e-6)
        # the monitor: the unbiased MMD^2 of the final generator, by a direct double sum
        x = m["GENERATOR"].sample(run.p_final, m["Z_EVAL"])
        k = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * bandwidth ** 2))  # noqa: E731
        Kxx, Kyy = k(x, x), k(X, X)
        mmd = ((Kxx.sum() - np.trace(Kxx)) / (len(x) * (len(x) - 1)) - 2 * k(x, X).mean()
               + (Kyy.sum() - np.trace(Kyy)) / (len(X) * (len(X) - 1)))
        its, values = monitors[run.name]
        assert list(its) == [0, 3] and values["mmd2"][-1] == pytest.approx(mmd, rel=1e-8)
    # the generator moves; the seed fixes the start: every method of a group starts alike
    starts = {r.attrs["group"]: r.energies[0] for r in rf.runs}
    assert all(r.energies[0] == starts[r.attrs["group"]] for r in rf.runs)


def test_arbel2020_illconditioned_case(tmp_path, capsys):
    case, m = _quick("arbel2020_illconditioned", tmp_path, 4, labels={"SGD", "KWNG"},
                     groups={"kappa = 1", "kappa = 1e7"})
    rf, _ = _run(case, tmp_path, capsys)
    assert len(rf.runs) == 4
    _, Xtest, ytest = m["digits"]()
    for run in rf.runs:
        kappa = float(run.attrs["group"].split("= ")[1])
        assert run.n_iter == 4
        # test error of the final parameters by an independent forward pass: U * net(x)
        torch.manual_seed(0)
        net = sequential([64, 64, 64, 10], "relu", dtype=torch.float64)
        torch.nn.utils.vector_to_parameters(torch.tensor(run.p_final), net.parameters())
        with torch.no_grad():
            logits = net(torch.tensor(Xtest)).numpy() * m["scale"](kappa)
        assert run.energies[-1] == np.mean(logits.argmax(1) != ytest)
        assert np.isclose(m["scale"](kappa).max() / m["scale"](kappa).min(), kappa)
    kwng = [r for r in rf.runs if r.attrs["experiment"] == "KWNG"]
    # the direction is clipped to norm 1: each step moves theta by at most the step size
    for r in kwng:
        assert r.attrs["metric"] == "kwng" and "ClippedDirection" in r.attrs["metric_repr"]
        assert np.all(r.steps == 0.3)


def test_shen2020_digits_case(tmp_path, capsys):
    case, m = _quick("shen2020_digits", tmp_path, 2, labels={"Adam", "SiNG"})
    rf, _ = _run(case, tmp_path, capsys)
    loss = m["loss"]()
    for run in rf.runs:
        # the first value: the loss of the first fresh batch of the problem's random stream
        model = m["generator"](0)
        z = model.latent(np.random.default_rng(1000), m["BATCH"])
        assert run.energies[0] == pytest.approx(loss.value(model, model.theta(), z), rel=1e-10)
    sing = next(r for r in rf.runs if r.attrs["experiment"] == "SiNG")
    # eq. (11): the step puts the update on the ball 1/2 eta^2 d.SIM d = r
    np.testing.assert_allclose(sing.steps, np.sqrt(2 * 0.05 / sing.decrements), rtol=1e-12)


def test_yi2023_monoflow_digits_case(tmp_path, capsys):
    case, m = _quick("yi2023_monoflow_digits", tmp_path, 3, labels={"vanilla, C = 0", "NS"})
    rf, _ = _run(case, tmp_path, capsys)
    assert len(rf.runs) == 4
    X, fid = m["digits"]()
    moved = {}
    for run in rf.runs:
        far = "far" in run.attrs["group"]
        x0 = m["start"](0, far)
        assert np.all(x0.mean(0) - X.mean(0) == pytest.approx(1.5 if far else 0.0, abs=0.2))
        assert run.energies[0] == pytest.approx(fid(x0), rel=1e-10)
        assert run.energies[-1] == pytest.approx(fid(run.p_final), rel=1e-10)
        moved[(far, run.attrs["experiment"])] = np.sqrt(np.mean(np.sum((run.p_final - x0) ** 2, axis=1)))
    # from the far start the vanilla velocity sigma(d) (d clipped at -5) is at most e^-5 of NS's
    assert moved[(True, "vanilla, C = 0")] < 0.05 * moved[(True, "NS")]


def test_gaussian_vi_cancer_case(tmp_path, capsys):
    case, m = _quick("gaussian_vi_cancer", tmp_path, 4)
    m["REFERENCE_DRAWS"] = (2_000, 20_000)
    m["reference"].cache_clear()
    rf, monitors = _run(case, tmp_path, capsys)
    assert len(rf.runs) == 4
    mean, cov, _, _ = m["reference"]()
    post = m["target"]()
    for run in rf.runs:
        kind = {"Laplace (Newton)": "laplace", "BW natural gradient (solve)": "ng", "BW flow (RK4)": "flow",
                "STL VI (Euclidean on mu, S)": "stl"}[run.attrs["experiment"]]
        mu, Sigma = m["moments"](kind, run.p_final)
        assert run.energies[-1] == pytest.approx(w2_gaussian(mu, Sigma, mean, cov), rel=1e-9)
        its, values = monitors[run.name]
        mean_error = np.linalg.norm(mu - mean) / np.linalg.norm(mean)
        cov_error = np.linalg.norm(Sigma - cov) / np.linalg.norm(cov)
        assert values["mean_error"][-1] == pytest.approx(mean_error, rel=1e-9)
        assert values["cov_error"][-1] == pytest.approx(cov_error, rel=1e-9)
        if kind == "laplace":
            # Newton's iterates from 0, by hand
            w = np.zeros(31)
            for _ in range(4):
                w = w - np.linalg.solve(post.hess_log_p(w)[0], post.grad_log_p(w)[0])
            np.testing.assert_allclose(run.p_final, w, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(Sigma, np.linalg.inv(-post.hess_log_p(w)[0]), rtol=1e-10)
        else:
            assert run.n_iter == 4
            mu0, Sigma0 = m["moments"](kind, run.snapshots[0])
            w, C = m["laplace"]()
            np.testing.assert_allclose(mu0, w, rtol=1e-12)
            np.testing.assert_allclose(Sigma0, C, rtol=1e-10, atol=1e-14)
    # the three VI methods start at the Laplace approximation: the same first value
    firsts = {r.attrs["experiment"]: r.energies[0] for r in rf.runs if "Laplace" not in r.attrs["experiment"]}
    assert max(firsts.values()) - min(firsts.values()) < 1e-10 * max(firsts.values())
