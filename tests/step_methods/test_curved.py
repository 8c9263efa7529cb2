"""Curved and heavy-tailed posteriors: right with the surrogate, or refused during tuning.

Delayed acceptance can only reject: where a surrogate puts far too little mass (the strong
banana's arms, when its Gaussian base was fitted before the chain had been there), its
trajectories never go, and the draws miss that mass while R-hat and ESS look fine. The
switch test's tail check (``SwitchTest.max_tail_gap``) must catch such a surrogate before the
switch, so that on every seed each chain either samples with the surrogate and gets the
posterior right, or stays exact NUTS and says why.
"""

import warnings

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.helpers import assert_moments, posterior_array, sample_stat
from tests.step_methods import models

SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}
# The default schedule for tune=1000, with trainings stopped at 300: a chain whose surrogate is
# refused retrains at most 6 times, which keeps the test's time bounded.
SCHEDULE = shmc.Schedule(stop=300)

CASES = [
    *[pytest.param(lambda: models.banana(b=1.0, sigma=0.3), "logp", seed,
                   id=f"strong-banana-{seed}") for seed in (1, 2, 3, 4, 5)],
    pytest.param(lambda: models.banana(b=1.0, sigma=0.3), "gradient", 1,
                 id="strong-banana-gradient-1"),
    *[pytest.param(models.student_t, "logp", seed, id=f"student-t3-{seed}") for seed in (1, 2)],
    *[pytest.param(models.funnel, "logp", seed, id=f"funnel-{seed}") for seed in (1, 2)],
]  # fmt: skip


def sample_or_refuse(model, kind, seed):
    """4 x 5000 draws; returns the trace and how many chains said they stayed exact."""
    with model, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", shmc.SurrogateWarning)
        step = shmc.SurrogateHMC(surrogate=kind, cost_gate=False, schedule=SCHEDULE)
        idata = pm.sample(step=step, tune=1000, draws=5000, chains=4, random_seed=seed, **SAMPLE)
    refusals = [
        w for w in caught
        if issubclass(w.category, shmc.SurrogateWarning) and "never passed" in str(w.message)
    ]  # fmt: skip
    return idata, len(refusals)


def assert_each_chain_used_the_surrogate_or_refused_it(idata, refusals):
    share = (sample_stat(idata, "phase") == 1).mean(axis=1)
    exact_chains = int(np.sum(share == 0.0))
    assert np.all((share >= 0.9) | (share == 0.0)), f"surrogate share per chain: {share}"
    assert exact_chains == refusals, f"{exact_chains} chains stayed exact, {refusals} said why"


@pytest.mark.slow
@pytest.mark.parametrize(("make_model", "kind", "seed"), CASES)
def test_curved_and_heavy_tailed_posteriors_are_right_or_refused(make_model, kind, seed):
    model, names, mean, variance = make_model()
    idata, refusals = sample_or_refuse(model, kind, seed)
    assert_each_chain_used_the_surrogate_or_refused_it(idata, refusals)
    assert_moments(posterior_array(idata, names), mean, variance, z_max=4.0)


def test_a_surrogate_falling_below_its_tangent_in_the_arms_is_refused():
    """The strong banana after 50 exact iterations: its Gaussian base falls tens of nats below
    the posterior along the arms, beyond the data; the pilot fails on the tail check, before any
    pilot iteration, and says so. With the check off the same surrogate switches (the control).
    """
    model, *_ = models.banana(b=1.0, sigma=0.3)
    outcomes = {}
    for max_tail_gap in (1.0, np.inf):
        with model:
            step = shmc.SurrogateHMC(
                cost_gate=False,
                schedule=shmc.Schedule(start=50, stop=50),
                switch_test=shmc.SwitchTest(max_tail_gap=max_tail_gap),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", shmc.SurrogateWarning)
                pm.sample(step=step, tune=120, draws=20, chains=1, random_seed=1, **SAMPLE)
        outcomes[max_tail_gap] = step.training_history[0].pilot
    refused, control = outcomes[1.0], outcomes[np.inf]
    assert not refused.switched and refused.iterations == 0, refused
    assert "below its tangent" in refused.reason and refused.tail_gap > 1.0
    assert control.switched and control.tail_gap is None, control
