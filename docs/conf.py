"""Sphinx configuration of densflow's documentation (``sphinx-build -W docs docs/_build``)."""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's densflow, also when it is not installed

import densflow  # noqa: E402

project = "densflow"
author = "the densflow developers"
copyright = "2026, the densflow developers"  # noqa: A001 - Sphinx's name
release = densflow.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # a copy of MathJax in _static: formulas render offline
    "numpydoc",
]

exclude_patterns = ["_build"]
root_doc = "index"
language = "en"
today_fmt = "%Y-%m-%d"

autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

html_theme = "alabaster"
html_title = f"densflow {release}"
html_theme_options = {"description": "Natural-gradient flows of probability densities",
                      "fixed_sidebar": True}
html_static_path = ["_static"]  # custom.css: code blocks scroll, never cut off

