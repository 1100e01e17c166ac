"""Settings of Newton in the potential side by side on the problems of ``peers.py``:
time to ``E <= 1e-12`` (minimum of the repeats, the settings interleaved, one process),
outer steps, Hessian products per step, and the final energy evaluated afresh.

    python benchmarks/newton_settings.py --only "2D 256²" \\
        --settings "start_rtol=0; start_rtol=1e-2; start_rtol=1e-3" --repeats 3

Each setting is a comma-separated list of ``PotentialNewton`` keywords (``name=value``).
"""

import argparse
import ast
import time

import densflow as df
from densflow.potential_newton import PotentialNewton

import peers


def parse(text):
    """``"a=1, b=2"`` -> ``{"a": 1, "b": 2}``."""
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, value = item.split("=")
        out[key.strip()] = ast.literal_eval(value.strip())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="run the problems whose name starts with this")
    ap.add_argument("--settings", default="", help="';'-separated PotentialNewton settings")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    settings = [parse(s) for s in args.settings.split(";")] or [{}]
    for problem in peers.problems():
        if not problem.name.startswith(args.only):
            continue
        E, p0 = problem.build()
        best = {}
        for rep in range(args.repeats + 1):  # the first round warms up (compilation)
            for k, kw in enumerate(settings):
                t0 = time.perf_counter()
                res = df.solve(E, p0, tol=1e-12, max_iter=100, newton=PotentialNewton(**kw))
                elapsed = time.perf_counter() - t0
                if rep == 0:
                    continue
                if k not in best or elapsed < best[k][0]:
                    best[k] = (elapsed, res)
        print(problem.name)
        for k, kw in enumerate(settings):
            elapsed, res = best[k]
            print(f"  {kw or 'defaults'}: {elapsed * 1e3:.2f} ms, {res.n_iter} steps, "
                  f"Hessian products {res.hessian_products.tolist()}, "
                  f"E = {E.value(res.p):.2e}, converged {res.converged}")


if __name__ == "__main__":
    main()
