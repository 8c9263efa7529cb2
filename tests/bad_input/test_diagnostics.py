"""Bad input for plot_diagnostics: each one a clear error, before anything is drawn."""

import re
from types import SimpleNamespace

import matplotlib as mpl
import matplotlib.pyplot as plt
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.lifecycle import PilotRecord, TrainingRecord
from tests.step_methods import models

mpl.use("Agg")

QUIET = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}


def refused(error, words):
    """``pytest.raises`` for ``error`` whose message contains ``words`` literally."""
    return pytest.raises(error, match=re.escape(words))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def surrogate_run():
    """A SurrogateHMC trace with 2 chains and tuning kept, and the model and step."""
    model, *_ = models.banana()
    with model:
        step = shmc.SurrogateHMC(
            surrogate="logp", schedule=shmc.Schedule(start=60, every=30),
            network=shmc.NetworkConfig(width=32), training=shmc.TrainingConfig(max_steps=500),
        )  # fmt: skip
        idata = pm.sample(
            step=step, tune=200, draws=50, chains=2, random_seed=1,
            discard_tuned_samples=False, **QUIET,
        )  # fmt: skip
    return model, step, idata


# -- the trace ------------------------------------------------------------------------------------


def test_not_a_trace_is_refused(surrogate_run):
    _, _, idata = surrogate_run
    with refused(
        TypeError,
        "trace must be what pm.sample returned (an arviz.InferenceData on PyMC 5, an "
        "xarray.DataTree on PyMC 6), got dict.",
    ):
        shmc.plot_diagnostics({"sample_stats": idata["sample_stats"]})


def test_a_group_instead_of_the_trace_is_refused(surrogate_run):
    # A Dataset (PyMC 5: a TypeError) or a DataTree node without groups (PyMC 6: a ValueError).
    _, _, idata = surrogate_run
    with pytest.raises((TypeError, ValueError), match=r"pm\.sample returned"):
        shmc.plot_diagnostics(idata["sample_stats"])


def test_a_trace_without_sample_stats_is_refused():
    model, *_ = models.conjugate_regression()
    with model:
        prior = pm.sample_prior_predictive(draws=10, random_seed=0)
    with refused(ValueError, "The trace has no sample_stats group: pass what pm.sample returned."):
        shmc.plot_diagnostics(prior)


def test_a_plain_nuts_trace_is_refused():
    model, *_ = models.banana()
    with model:
        idata = pm.sample(step=pm.NUTS(), tune=20, draws=20, chains=1, random_seed=0, **QUIET)
    with refused(
        ValueError,
        "The trace has no sample stats phase, n_exact_grad, n_exact_logp: it was not sampled "
        "by shmc.SurrogateHMC or shmc.ACE (a plain NUTS or nutpie trace has none of them).",
    ):
        shmc.plot_diagnostics(idata)


# -- the step -------------------------------------------------------------------------------------


def test_a_step_of_another_kind_is_refused(surrogate_run):
    model, _, idata = surrogate_run
    with refused(
        TypeError,
        "step must be the shmc.SurrogateHMC or shmc.ACE that sampled the trace, got NUTS.",
    ):
        shmc.plot_diagnostics(idata, step=pm.NUTS(model=model))


def test_a_training_history_of_something_else_is_refused(surrogate_run):
    _, _, idata = surrogate_run
    with refused(TypeError, "step.training_history must hold TrainingRecord objects, got dict"):
        shmc.plot_diagnostics(idata, SimpleNamespace(training_history=[{"iteration": 60}]))


def test_the_step_of_another_run_is_refused(surrogate_run):
    # A step whose chain switched right after tuning iteration 0: this trace's last chain was
    # exact at iteration 1 (its first training is at iteration 60).
    _, _, idata = surrogate_run
    pilot = PilotRecord(acceptance=0.9, required=0.5, second_stage_acceptance=0.95, switched=True)
    other = SimpleNamespace(
        training_history=(TrainingRecord(iteration=0, n_points=100, pilot=pilot),)
    )
    with refused(
        ValueError,
        "The step's training history does not match this trace: a pilot started after "
        "iteration 0, where the last chain was in the exact phase.",
    ):
        shmc.plot_diagnostics(idata, other)


# -- chains, panels and axes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chains", "words"),
    [
        pytest.param([0, 7], "chains must be among the trace's chains [0, 1], got [0, 7].",
                     id="unknown-chain"),
        pytest.param(2, "chains must be among the trace's chains [0, 1], got 2.",
                     id="unknown-single-chain"),
        pytest.param([], "chains must be among the trace's chains [0, 1], got [].",
                     id="no-chains"),
    ],
)  # fmt: skip
def test_unknown_chains_are_refused(surrogate_run, chains, words):
    _, _, idata = surrogate_run
    with refused(ValueError, words):
        shmc.plot_diagnostics(idata, chains=chains)


PANELS = "('phases', 'loss', 'error', 'evaluations', 'time')"


@pytest.mark.parametrize(
    ("panels", "words"),
    [
        pytest.param(["phase"], f"panels must be distinct names among {PANELS}, got ('phase',) "
                     "('phase' unknown).", id="unknown-panel"),
        pytest.param(["loss", "loss"], f"panels must be distinct names among {PANELS}, got "
                     "('loss', 'loss').", id="repeated-panel"),
        pytest.param([], f"panels must be distinct names among {PANELS}, got ().",
                     id="no-panels"),
    ],
)  # fmt: skip
def test_unknown_panels_are_refused(surrogate_run, panels, words):
    _, _, idata = surrogate_run
    with refused(ValueError, words):
        shmc.plot_diagnostics(idata, panels=panels)


def test_too_few_axes_are_refused(surrogate_run):
    _, _, idata = surrogate_run
    _, axes = plt.subplots(1, 2)
    with refused(
        ValueError,
        f"ax must hold one matplotlib Axes per panel (5: {PANELS}), got 2 object(s).",
    ):
        shmc.plot_diagnostics(idata, ax=axes)


def test_a_figure_instead_of_axes_is_refused(surrogate_run):
    _, _, idata = surrogate_run
    figure = plt.figure()
    with refused(
        ValueError, "ax must hold one matplotlib Axes per panel (1: ('loss',)), got 1 object(s)."
    ):
        shmc.plot_diagnostics(idata, panels="loss", ax=figure)
