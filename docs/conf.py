"""Sphinx configuration for the hards-h5 documentation (built with -W in CI)."""

from __future__ import annotations

import hards_h5

project = "hards-h5"
author = "hards-h5 developers"
copyright = "2026, hards-h5 developers"  # noqa: A001 - Sphinx's name
release = hards_h5.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx_click",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples/*.h5"]
myst_heading_anchors = 3
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["mpi4py"]
nitpicky = False
suppress_warnings = ["myst.xref_missing"]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
html_theme = "alabaster"
html_title = f"hards-h5 {release}"
