"""Sessions: ``nox`` runs lint, the tests and the examples on Python 3.11 (PyMC 5.x) and 3.12
(PyMC 6.x), builds the docs and runs the benchmark suite's smoke run."""

import os

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests", "docs", "examples", "benchmarks_quick"]

PYTHONS = ["3.11", "3.12"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite, with the long statistical tests on Python 3.12 (PyMC 6).

    ``nox -s tests -- --runslow`` runs them on 3.11 too; ``SHMC_FAST=1 nox -s tests`` skips
    them. Their time is in the durations printed at the end.
    """
    session.install("-e", ".[test]")
    session.run(
        "python", "-c", "import pymc, jax; print('pymc', pymc.__version__, 'jax', jax.__version__)"
    )
    slow = ["--runslow"] if session.python == "3.12" and not os.environ.get("SHMC_FAST") else []
    session.run("pytest", "-n", "2", "--durations=25", *slow, *session.posargs)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """Ruff (lint and format check) and mypy on the package."""
    session.install("-e", ".", "ruff>=0.6", "mypy>=1.11")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def quickstart(session: nox.Session) -> None:
    """Install the package and run ``examples/quickstart.py``."""
    session.install("-e", ".")
    session.run("python", "examples/quickstart.py", *session.posargs)


EXAMPLES = ["quickstart", "gp", "ode", "ace"]


@nox.session(python=PYTHONS)
def examples(session: nox.Session) -> None:
    """Run the examples in ``examples/`` with ``--fast`` (``-- gp ode`` runs only those)."""
    session.install(".")
    unknown = sorted(set(session.posargs) - set(EXAMPLES))
    if unknown:
        session.error(f"Unknown examples {unknown}; choose from {EXAMPLES}.")
    for name in session.posargs or EXAMPLES:
        session.run("python", f"examples/{name}.py", "--fast")


@nox.session(python="3.12")
def benchmark(session: nox.Session) -> None:
    """Run the GP benchmark against PyMC's NUTS and nutpie (``-- --quick`` for a smoke run)."""
    session.install("-e", ".[benchmarks]")
    session.run("python", "benchmarks/gp_regression.py", *session.posargs)


@nox.session(python="3.12")
def benchmarks(session: nox.Session) -> None:
    """Run the benchmark suite against PyMC's NUTS and nutpie (3 seeds, every run in a fresh
    process with a cold JAX compilation cache); write the results into docs/."""
    session.install("-e", ".[benchmarks]")
    session.run("python", "benchmarks/suite.py", *session.posargs)


@nox.session(python="3.12")
def benchmarks_quick(session: nox.Session) -> None:
    """Smoke run of the benchmark suite (two small models, short runs, one seed); fails if a run
    fails, has an R-hat above 1.05 or a posterior mean more than 4 MCSE from PyMC NUTS's."""
    session.install("-e", ".[benchmarks]")
    session.run("python", "benchmarks/suite.py", "--quick", "--strict", *session.posargs)


@nox.session(python="3.12")
def diagnostics_figure(session: nox.Session) -> None:
    """Redraw ``docs/_static/diagnostics.png``: a GP run and its ``shmc.plot_diagnostics``."""
    session.install("-e", ".")
    session.run("python", "docs/scripts/diagnostics_figure.py", *session.posargs)


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    """Build the documentation into ``docs/_build/html``; Sphinx warnings are errors."""
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
        *session.posargs,
    )  # fmt: skip
