"""Faults in the model or the run: SurrogateHMC says so, or copes, and the posterior stays right.

A surrogate that cannot be trained, or a run too short to train one, gives a SurrogateWarning
and exact NUTS draws; a region where the log-density is not finite is rejected exactly as NUTS
rejects it. Each case checks the defined outcome and the posterior's moments.
"""

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import surrogate_hmc as shmc
from tests.helpers import (
    SlowTerm,
    assert_moments,
    posterior_array,
    sample_stat,
    scale_the_sampler_clock,
)
from tests.step_methods import models

SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}
QUICK = shmc.Schedule(start=60, every=30, stop=120)


def run(model, *, tune=300, draws=1000, chains=2, seed=1, **step_options):
    """Sample with SurrogateHMC past the cost gate (which keeps these cheap models NUTS)."""
    with model:
        return pm.sample(
            step=shmc.SurrogateHMC(cost_gate=False, **step_options), tune=tune, draws=draws,
            chains=chains, random_seed=seed, **SAMPLE,
        )  # fmt: skip


# -- a log-density that is not finite somewhere ---------------------------------------------------


def nan_above_one():
    """As models.truncated_normal, with NaN instead of -inf where x > 1."""
    _, names, mean, variance = models.truncated_normal()
    with pm.Model() as nan_model:
        x = pm.Flat("x")
        pm.Potential("truncated", pt.switch(x > 1.0, np.nan, -0.5 * x**2))
    return nan_model, names, mean, variance


# NUTS on a smooth log-density surrogate crosses the edge at x = 1 often, and the exact
# correction rejects those proposals: a second-stage acceptance near 0.85, close to the default
# switch test's 0.8. Loosened here, so that the surrogate phase surely meets the region.
THROUGH_THE_EDGE = {"surrogate": "logp", "switch_test": shmc.SwitchTest(min_second_stage=0.5)}
GRADIENT = {"surrogate": "gradient"}
NON_FINITE = [
    pytest.param(models.truncated_normal, GRADIENT, id="minus-inf-gradient"),
    pytest.param(models.truncated_normal, THROUGH_THE_EDGE, id="minus-inf-logp"),
    pytest.param(nan_above_one, GRADIENT, id="nan-gradient"),
    pytest.param(nan_above_one, THROUGH_THE_EDGE, id="nan-logp"),
]


@pytest.mark.parametrize(("make_model", "step_options"), NON_FINITE)
def test_a_region_where_the_log_density_is_not_finite_is_never_sampled(make_model, step_options):
    model, names, mean, variance = make_model()
    idata = run(model, schedule=QUICK, **step_options)
    assert np.all(sample_stat(idata, "phase") == 1), "the draws did not use the surrogate"
    draws = posterior_array(idata, names)
    assert np.all(draws <= 1.0)
    assert_moments(draws, mean, variance)


@pytest.mark.slow
@pytest.mark.parametrize(("make_model", "step_options"), NON_FINITE)
def test_a_region_where_the_log_density_is_not_finite_long(make_model, step_options):
    model, names, mean, variance = make_model()
    idata = run(model, tune=1000, draws=5000, chains=4, **step_options)
    draws = posterior_array(idata, names)
    assert np.all(draws <= 1.0)
    assert_moments(draws, mean, variance, z_max=4.0)


# -- no surrogate: a warning, and exact NUTS ------------------------------------------------------


def test_a_network_that_fails_to_train_warns_and_falls_back_to_exact_nuts():
    model, names, mean, variance = models.conjugate_regression()
    diverging = shmc.TrainingConfig(learning_rate=1e8, max_steps=200)
    with pytest.warns(shmc.SurrogateWarning, match="never passed the switch test"):
        idata = run(model, tune=200, surrogate="gradient", schedule=QUICK, training=diverging)
    assert np.all(sample_stat(idata, "phase") == 0)
    assert np.all(sample_stat(idata, "n_exact_grad") >= 1)
    assert_moments(posterior_array(idata, names), mean, variance)


def test_tuning_too_short_to_train_warns_and_samples_with_exact_nuts():
    model, names, mean, variance = models.conjugate_regression()
    # The default schedule trains a gradient surrogate from tuning iteration 150 on.
    with pytest.warns(shmc.SurrogateWarning, match=r"tune=100 is too short .* exact NUTS"):
        idata = run(model, tune=100, surrogate="gradient")
    assert np.all(sample_stat(idata, "phase") == 0)
    assert np.all(sample_stat(idata, "n_exact_grad") >= 1)
    assert_moments(posterior_array(idata, names), mean, variance)


# -- trainings that keep failing: the cost gate's books --------------------------------------------

GRADIENT_SECONDS = 0.003
"""An exact gradient's pause; an exact logp alone stays cheap, so the cost gate lets a surrogate
in. The sampler's clock runs ``CLOCK_SCALE`` times fast, so that the run as plain NUTS looks long
enough (over 16 s) to risk a training."""
CLOCK_SCALE = 4.0


@pytest.mark.filterwarnings("ignore:Numba will use object mode:UserWarning")  # PyTensor 3
def test_trainings_that_cannot_pass_stop_once_they_cannot_be_won_back(monkeypatch):
    """No network passes a held-out error of 1e-9: after the first failure the books say that
    another attempt cannot be won back, and the chain goes on as plain NUTS, with one warning."""
    model, names, mean, variance = models.skewed_gamma()
    with model:
        pm.Potential("slow", SlowTerm(gradient_seconds=GRADIENT_SECONDS)(model["s"]))
    tune, draws = 400, 400
    schedule = shmc.Schedule(start=50, every=50)
    planned = schedule.plan(tune, "logp").training_iterations
    scale_the_sampler_clock(monkeypatch, CLOCK_SCALE)
    with model, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", shmc.SurrogateCostWarning)
        step = shmc.SurrogateHMC(
            schedule=schedule, switch_test=shmc.SwitchTest(max_validation_error=1e-9)
        )
        idata = pm.sample(step=step, tune=tune, draws=draws, chains=1, random_seed=3, **SAMPLE)
    messages = [str(w.message) for w in caught if w.category is shmc.SurrogateCostWarning]
    assert len(messages) == 1, messages
    assert "stops training and continues as plain NUTS" in messages[0]
    assert "random_seed" in messages[0] and "cost_gate=False" in messages[0]
    assert not [w for w in caught if w.category is shmc.SurrogateWarning], "said once only"
    life = step.chain.life
    assert life.cost is not None and life.cost.pays, "the cost gate let a surrogate train"
    assert len(step.training_history) == 1 < len(planned) == 4
    assert life.books is not None and not life.books.worth_another
    assert life.books.spent == pytest.approx(step.training_history[0].seconds)
    assert np.all(sample_stat(idata, "phase") == 0)
    assert np.all(sample_stat(idata, "n_exact_grad") >= 1)
    assert_moments(posterior_array(idata, names), mean, variance)
