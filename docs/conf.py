"""Sphinx configuration of the deepobs documentation (``make docs`` builds it)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "deepobs"
author = "the deepobs authors"
copyright = "2026, the deepobs authors"
release = (ROOT / "VERSION").read_text().strip()
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

# The API reference comes from the Google-style docstrings.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Inherited docstrings (torch.nn.Module.forward, autograd.Function) are torch's, not ours.
autodoc_inherit_docstrings = False

html_theme = "furo"
html_title = f"deepobs {release}"


def _keep_attribute_colons(app, what, name, obj, options, lines):
    """``#: Largest run seed: NumPy's ...`` is prose, but napoleon would read the text
    before the colon as a type; an en dash keeps the sentence whole."""
    if what in ("data", "attribute") and lines and ": " in lines[0]:
        lines[0] = lines[0].replace(": ", " – ", 1)


def setup(app):
    # Runs before napoleon (priority 500), which parses attribute docstrings.
    app.connect("autodoc-process-docstring", _keep_attribute_colons, priority=400)
