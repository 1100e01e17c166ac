"""The layers of docs/architecture.rst: the loop runs a problem kind it has never seen,
old module paths still import (with a warning), and the package has no import circle."""

import ast
import importlib
import pkgutil
import sys
import warnings

import numpy as np
import pytest

import densflow as df
from densflow.core.state import State
from densflow.optim import kinds
from densflow.optim.kinds import Bound
from densflow.optim.linesearch import Armijo


class _Quadratic:
    """f(x) = 1/2 (x - b)^T A (x - b) on R^n: a problem kind the loop knows nothing of."""

    min_value = 0.0

    def __init__(self, A, b):
        self.A, self.b = A, b

    def evaluate(self, x):
        r = x - self.b
        g = self.A @ r
        return State(x, 0.5 * float(r @ g), g)

    def line(self, state, s, positive=False):
        problem = self

        class Line:
            def delta(self, eta):
                return problem.evaluate(state.p - eta * s).value - state.value

            def state_at(self, eta):
                return problem.evaluate(state.p - eta * s)

        return Line()


def _prepare(problem, x0, metric=None, line_search=None, tol=None, gtol=None, max_iter=1000,
             safeguard=None, method=None, newton=None):
    # a diagonal preconditioner: s = diag(A)^-1 g
    d = np.diag(problem.A)
    return Bound(problem=problem, x0=np.array(x0, dtype=float), metric="jacobi",
                 line_search=line_search or Armijo(), setup={"kind": "toy"},
                 direction=lambda x, g, gap: g / d, positive=False, max_iter=max_iter)


@pytest.fixture
def toy_kind():
    kinds.register(lambda obj: isinstance(obj, _Quadratic), _prepare, "toy quadratic")
    yield
    kinds._KINDS[:] = [k for k in kinds._KINDS if k[2] != "toy quadratic"]


def test_the_loop_runs_a_kind_registered_from_outside(toy_kind, tmp_path):
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((6, 6))
    A = Q @ Q.T + 6 * np.eye(6)
    b = rng.standard_normal(6)
    problem = _Quadratic(A, b)
    res = df.solve(problem, np.zeros(6), tol=1e-20, max_iter=500, out=tmp_path / "toy.h5")
    assert res.converged and res.metric == "jacobi"
    np.testing.assert_allclose(res.p, np.linalg.solve(A, A @ b), atol=1e-9)
    # the energies it records are the problem's own
    r0 = -b
    assert res.energies[0] == pytest.approx(0.5 * r0 @ A @ r0, rel=1e-14)
    assert np.all(np.diff(res.energies) < 0)
    from densflow.io.runfile import read_run_file

    run = read_run_file(tmp_path / "toy.h5").runs[0]
    assert run.attrs["kind"] == "toy" and run.n_iter == res.n_iter


def test_an_object_of_no_kind_is_refused_naming_the_kinds():
    with pytest.raises(TypeError, match=r"energy must be a densflow Energy or term, got dict "
                                        r"\(the registered kinds: grid energy"):
        df.solve({}, np.ones(3) / 3)


@pytest.mark.parametrize("old,new,name", [
    ("densflow.solver", "densflow.solving", "solve"),
    ("densflow.recorder", "densflow.io.recorder", "Recorder"),
    ("densflow.case", "densflow.app.loading", "load_case"),
    ("densflow.operators", "densflow.core.operators", "laplacian"),
    ("densflow.parametric.case", "densflow.app.parametric_case", "ParametricCase"),
])
def test_old_module_paths_import_with_a_deprecation_warning(old, new, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; import {new} instead"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def _import_graph():
    graph = {}
    for info in pkgutil.walk_packages(df.__path__, "densflow."):
        if info.name.endswith("__main__") or ".torch" in info.name:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(info.name)
        source = open(module.__file__).read()
        deps = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = info.name.split(".")
                if not info.ispkg:
                    base = base[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(full if full in sys.modules else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("densflow"))
        graph[info.name] = {d for d in deps if d.startswith("densflow") and d != info.name}
    return graph


def test_no_import_circles():
    graph = _import_graph()
    # the package's own __init__ re-exports; circles through it are not circles of code
    graph = {m: {d for d in deps if d != "densflow"} for m, deps in graph.items() if m != "densflow"}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in graph.get(m, ()):
            if state.get(d) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
