"""MCSE z-tests of SurrogateHMC's draws against analytic posteriors: the gradient surrogate.

The log-density surrogate's: tests/step_methods/test_logp_surrogate.py.
"""

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.helpers import assert_moments, moment_z_scores, posterior_array, sample_stat
from tests.step_methods import models

SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}


def run(model, *, tune=400, draws=1000, chains=2, seed=1, **step_kwargs):
    """Sample with a gradient surrogate; past the cost gate, which keeps cheap models NUTS."""
    with model:
        step = shmc.SurrogateHMC(surrogate="gradient", cost_gate=False, **step_kwargs)
        return pm.sample(
            step=step, tune=tune, draws=draws, chains=chains, random_seed=seed, **SAMPLE
        )


def assert_surrogate_phase(idata):
    phase = sample_stat(idata, "phase")
    assert np.all(phase == 1), "the draws did not come from the surrogate phase"
    np.testing.assert_array_equal(sample_stat(idata, "n_exact_grad"), 0)
    assert np.all(sample_stat(idata, "n_exact_logp") <= 1)


@pytest.mark.parametrize(
    "make_model",
    [
        models.conjugate_regression,
        models.ill_conditioned_gaussian,
        models.banana,
        models.skewed_gamma,
    ],
    ids=["correlated", "ill-conditioned", "banana", "skewed"],
)
def test_posterior_moments(make_model):
    model, names, mean, variance = make_model()
    # The kernel's exactness on every model; whether the tail check lets a banana's surrogate
    # switch (it may refuse it on some runs) is tests/step_methods/test_curved.py's subject.
    idata = run(model, switch_test=shmc.SwitchTest(max_tail_gap=np.inf))
    assert_surrogate_phase(idata)
    assert_moments(posterior_array(idata, names), mean, variance)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_model",
    [
        models.conjugate_regression,
        lambda: models.ill_conditioned_gaussian(dim=20),
        lambda: models.skewed_gamma(shape=1.5),
    ],
    # The strong banana's gradient surrogate: tests/step_methods/test_curved.py.
    ids=["correlated", "ill-conditioned-20d", "strongly-skewed"],
)
def test_posterior_moments_long(make_model):
    model, names, mean, variance = make_model()
    idata = run(model, tune=1000, draws=5000, chains=4)
    assert_surrogate_phase(idata)
    assert_moments(posterior_array(idata, names), mean, variance, z_max=4.0)


def test_badly_trained_surrogate_is_still_exact():
    """Positive control under a bad surrogate: a network trained for a few steps, forced in.

    Not a negative control: nothing here fails. To be accepted, the bad surrogate's
    trajectories adapt to a tiny step size (about 3e-4, 1024 steps), so they barely move: the
    draws' ESS is about 10 and the z-test has little power (the same chain with every proposal
    taken, the correction switched off for the draws, passes it too in a few hundred draws:
    it drifts too slowly for an ESS near 3 to tell). At an ESS of 5-30 the draws' variance is
    biased low whatever the kernel (seed 1: 0.5-0.6 of the truth, 4-5 of its estimated MCSE
    on Python 3.12), so only the means are z-tested, and the variances only checked to be
    neither collapsed nor exploded. The negative control,
    a wrong surrogate visibly wrong without the exact correction and right with it, is in
    tests/core/test_transition.py (static trajectories, as here) and
    tests/core/test_delayed_acceptance.py (NUTS on a log-density surrogate).
    """
    model, names, mean, variance = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC(
            surrogate="gradient", cost_gate=False,
            training=shmc.TrainingConfig(max_steps=20, eval_every=10, learning_rate=1e-4),
            switch_test=shmc.SwitchTest(max_validation_error=np.inf, min_acceptance_ratio=0.0),
        )  # fmt: skip
        idata = pm.sample(step=step, tune=400, draws=2000, chains=2, random_seed=1, **SAMPLE)
    assert_surrogate_phase(idata)
    assert step.training_history[-1].validation_error > 0.5, "the surrogate was not bad"
    draws = posterior_array(idata, names)
    z_means = moment_z_scores(draws, mean, variance)[0]
    assert np.max(np.abs(z_means)) < 4.5, z_means
    spread = draws.reshape(-1, draws.shape[-1]).var(axis=0) / variance
    assert np.all((spread > 0.25) & (spread < 4.0)), spread
