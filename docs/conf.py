"""Sphinx configuration of the surrogate-hmc documentation (``nox -s docs`` builds it)."""

import inspect

import surrogate_hmc

project = "surrogate-hmc"
author = "The surrogate-hmc developers"
copyright = "The surrogate-hmc developers"
version = release = surrogate_hmc.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]

# Markdown pages (MyST). benchmarks/results.md is generated and included by benchmarks.md;
# scripts/ holds the scripts that draw the figures.
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "benchmarks", "scripts", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
myst_heading_anchors = 3

# API reference from the numpydoc docstrings; stub pages are generated into generated/.
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"  # the docstrings' Parameters sections say the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # the autosummary class template lists the members
numpydoc_class_members_toctree = False
add_module_names = False
toc_object_entries_show_parents = "hide"

html_theme = "pydata_sphinx_theme"
html_title = "surrogate-hmc"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 8,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# The guide's pages have no sub-pages to list on the left; the API reference has.
_GUIDE = [
    "index", "getting_started", "how_it_works", "options", "diagnostics", "what_can_go_wrong",
    "examples",
]  # fmt: skip
html_sidebars = {page: [] for page in [*_GUIDE, "benchmarks", "architecture"]}


def _constructor_signature(app, what, name, obj, options, signature, return_annotation):
    """Show ``__init__``'s parameters for step methods.

    PyMC's ``BlockedStep.__new__(*args, **kwargs)`` (which records the arguments for pickling)
    would otherwise be shown as the signature of every step method.
    """
    if what != "class" or signature != "(*args, **kwargs)":
        return None
    parameters = list(inspect.signature(obj.__init__).parameters.values())[1:]
    plain = [p.replace(annotation=inspect.Parameter.empty) for p in parameters]
    return str(inspect.Signature(plain)), None


def setup(app):
    """Register the signature fix."""
    app.connect("autodoc-process-signature", _constructor_signature)
