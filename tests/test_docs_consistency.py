"""The README, the documentation, CI and the package metadata say the same things; the
README stays short and every page of the documentation stands on its own."""

import configparser
import re
from pathlib import Path

import numpy as np
import pytest

import densflow as df

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.rst").read_text(encoding="utf-8")
PAGES = {p.stem: p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.rst"))}
DOCS = "\n".join([README, *PAGES.values()])  # everything a reader is shown


def _code_blocks(text, language):
    """The bodies of the ``.. code-block:: language`` blocks of an RST text."""
    blocks = []
    for m in re.finditer(rf"^\.\. code-block:: {language}\n\n((?:(?:    .*)?\n)+)", text, re.M):
        lines = [line[4:] for line in m.group(1).splitlines()]
        blocks.append("\n".join(lines).strip("\n"))
    return blocks


def _first_screen():
    return README.split(".. end of the first screen")[0]


def test_readme_test_command_is_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = _code_blocks(_first_screen(), "bash")[0].splitlines()
    test_command = [c for c in commands if "pytest" in c]
    assert test_command == ['python3.11 -m venv .venv && .venv/bin/pip install -e ".[test]" && '
                            '.venv/bin/python -m pytest -q tests']
    assert test_command[0] in ci.splitlines()
    # the documentation: CI builds it exactly as the README says, with the docs extra
    docs = [c for b in _code_blocks(DOCS, "bash") for c in b.splitlines() if "sphinx" in c]
    assert docs == ['pip install -e ".[docs]" && python -m sphinx -W --keep-going -q -b html '
                    'docs docs/_build/html']
    assert '.venv/bin/pip install -q -e ".[docs]" && .venv/bin/python -m sphinx -W --keep-going ' \
           '-q -b html docs docs/_build/html' in ci.splitlines()
    extras = configparser.ConfigParser()
    extras.read(ROOT / "setup.cfg")
    docs_extra = extras["options.extras_require"]["docs"].split()
    assert {re.split(">=", r)[0] for r in docs_extra} == {"sphinx", "numpydoc",
                                                          "sphinx-mathjax-offline"}
    assert all(">=" in r for r in docs_extra)


def test_readme_refers_to_nothing_outside_the_repository():
    for pattern in (r"\bissue \d", r"seeds/", r"DESIGN\.md", r"\bthe seed\b", r"seed's",
                    r"shared notes"):
        found = re.findall(rf".{{0,40}}{pattern}.{{0,40}}", README, re.I)
        assert not found, (pattern, found)
    docs = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.rst"))
    for pattern in (r"\bissue \d", r"seeds/", r"DESIGN\.md"):
        assert not re.search(pattern, docs, re.I), pattern


def test_first_screen_has_the_figure_the_commands_and_a_table_of_contents():
    first = _first_screen()
    assert first.count(".. image:: plots/ying2021_fig1.png") == 1
    assert len(_code_blocks(first, "bash")[0].splitlines()) == 2
    assert ".. contents::" in first
    assert len(first.splitlines()) < 60


def test_every_figure_is_committed_shown_and_has_its_command():
    committed = {p.name for p in (ROOT / "plots").glob("*.png")}
    shown = set(re.findall(r"^\.\. image:: (?:\.\./)?plots/(\S+)", DOCS, re.M))
    in_gallery = set(re.findall(r"^\.\. image:: \.\./plots/(\S+)", PAGES["gallery"], re.M))
    assert shown <= committed and in_gallery <= committed
    assert in_gallery == committed, committed - in_gallery
    figures = PAGES["guide"].split("\nFigures\n=======\n")[1]
    commands = _code_blocks(figures, "bash")[0].splitlines()
    for name in committed:
        makers = [c for c in commands if f"plots/{name}" in c]
        assert len(makers) == 1, (name, makers)
    # outside that block, no command of the README or the documentation writes into plots/
    writing = [line.strip() for line in DOCS.splitlines()
               if re.search(r"(-o|--plot|--figure|cp \S+) plots/", line)]
    assert writing and set(writing) <= set(commands), set(writing) - set(commands)


def test_version_changelog_citation_and_license_agree():
    version = df.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    changelog = (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8")
    versions = re.findall(r"^(\d+\.\d+\.\d+)(?: \(.*\))?\n=+$", changelog, re.M)
    assert versions and versions[0] == version
    yaml = pytest.importorskip("yaml")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["version"] == version
    assert citation["license"] == "BSD-3-Clause"
    titles = [r["title"] for r in citation["references"]]
    assert len(titles) == 5 and all(r["authors"] and r["year"] for r in citation["references"])
    for title in titles:  # the README's "How to cite" names the same five works
        assert title in re.sub(r"\s+", " ", README), title
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["license"] == "BSD-3-Clause"
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")


def test_readme_library_snippet_runs_as_printed():
    snippet = next(b for b in _code_blocks(README, "python") if "df.Grid(n=512" in b)
    namespace = {}
    exec(compile(snippet, "README.rst", "exec"), namespace)  # noqa: S102 - our own README
    res, paper, E = namespace["res"], namespace["paper"], namespace["E"]
    newton_steps = int(re.search(r"# (\d+) Newton steps", snippet).group(1))
    low, high = map(int, re.search(r"the paper's: (\d+)–(\d+) steps", snippet).groups())
    assert res.converged and res.n_iter == newton_steps
    # The first-order method's count moves by a few steps whenever a kernel sums in
    # another order (31-38 over recent rewrites of the kernels), so the README gives a
    # range; the count must lie in it.
    assert paper.converged and low <= paper.n_iter <= high, paper.n_iter
    # E.weights, as the README describes it: the total weight of each kind, as a dict
    assert E.weights == {"wasserstein": 1.0, "fisher_rao": 1e-3, "mahalanobis": 1e-4}
    assert '``{"wasserstein": α1, "fisher_rao": α2, "mahalanobis": α3}``' in PAGES["guide"]
    assert np.isclose(res.p.sum(), 1.0)


def test_readme_is_short_and_links_into_the_documentation():
    assert len(README.splitlines()) <= 300
    links = re.findall(r"<(docs/[\w.]+\.rst)>`_", README)
    assert len(set(links)) >= 8
    assert all((ROOT / link).exists() for link in links), links
    # every page of the documentation is in a table of contents of the index
    listed = set(re.findall(r"^   ([\w-]+)$", PAGES["index"], re.M))
    assert set(PAGES) - {"index"} <= listed, set(PAGES) - {"index"} - listed


def test_every_page_stands_on_its_own():
    for name, text in PAGES.items():
        assert not re.search(r"commands? (above|below)", text, re.I), name
        assert "README" not in text and ".. include:: ../README" not in text, name
        # no section links that only resolve inside the README (`Figures`_)
        assert not re.findall(r"(?<![\w`])`[A-Z][^`<>]*`_", text), (name, re.findall(
            r"(?<![\w`])`[A-Z][^`<>]*`_", text))
    guide = PAGES["guide"]
    quick = guide.split("\nQuick start\n===========\n")[1].split("\n===")[0]
    commands = _code_blocks(quick, "bash")
    assert any("pytest" in c for c in commands) and any("densflow run" in c for c in commands)


def test_solve_signature_is_quoted_as_it_is():
    import inspect

    actual = re.sub(r"\s+", " ", str(inspect.signature(df.solve)).replace("'", '"'))
    for name, text in [("README", README), ("guide", PAGES["guide"])]:
        quoted = [re.sub(r"\s+", " ", q) for q in re.findall(r"``df\.solve(\(.*?\))``", text, re.S)]
        full = [q for q in quoted if q.startswith("(energy")]
        assert full and all(q == actual for q in full), (name, full, actual)
    # no call shows the metric as a required positional argument
    assert not re.search(r"df\.solve\(E, p0, metric[,)]", DOCS)


def _conf():
    namespace = {"__file__": str(ROOT / "docs" / "conf.py")}
    exec(compile((ROOT / "docs" / "conf.py").read_text(encoding="utf-8"), "conf.py", "exec"),
         namespace)  # noqa: S102 - our own configuration
    return namespace


def test_mathematics_renders_offline_and_code_blocks_scroll():
    conf = _conf()
    # a copy of MathJax next to the pages (CI checks the built HTML loads it from _static)
    assert "sphinx-mathjax-offline" in conf["extensions"]
    assert not str(conf.get("mathjax_path", "")).startswith(("http", "//"))
    assert "_static" in conf["html_static_path"]
    css = (ROOT / "docs" / "_static" / "custom.css").read_text(encoding="utf-8")
    assert re.search(r"pre[^{]*\{[^}]*overflow-x:\s*auto", css)
