"""How many surrogate transitions the engine makes per exact correction, and that any number
stays exact."""

import numpy as np
import pytest

from surrogate_hmc.engine.run import (
    MAX_TRANSITIONS,
    lag_one_autocorrelation,
    transitions_per_correction,
)
from tests.engine.test_sample import COVARIANCE, MEAN, run_gaussian
from tests.helpers import assert_moments, posterior_array, sample_stat


def ar1(rho, steps=4000, chains=4, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    draws = np.empty((steps, chains, dim))
    draws[0] = rng.normal(size=(chains, dim))
    for t in range(1, steps):
        draws[t] = rho * draws[t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=(chains, dim))
    return draws


@pytest.mark.parametrize("rho", [-0.3, 0.0, 0.6])
def test_lag_one_autocorrelation_is_the_slowest_coordinates(rho):
    draws = ar1(rho)
    draws[..., 0] = ar1(-0.5, seed=1)[..., 0]  # a faster coordinate does not decide
    assert lag_one_autocorrelation(draws + 5.0) == pytest.approx(rho, abs=0.05)


def test_one_transition_for_antithetic_draws_more_for_correlated_ones():
    expensive = {"iteration_seconds": 0.011, "logp_seconds": 0.010}
    assert transitions_per_correction(-0.3, **expensive) == 1
    assert transitions_per_correction(0.0, **expensive) == 1
    more = [transitions_per_correction(rho, **expensive) for rho in (0.3, 0.6, 0.9)]
    assert 1 < more[0] <= more[1] <= more[2] <= MAX_TRANSITIONS


def test_fewer_transitions_when_the_surrogate_costs_more_than_the_exact_log_density():
    correlated = [transitions_per_correction(0.6, 0.001 + s, 0.001) for s in (1e-4, 1e-3, 1e-2)]
    assert correlated[0] >= correlated[1] >= correlated[2] == 1


def test_several_transitions_per_correction_stay_exact():
    idata = run_gaussian(COVARIANCE, seed=5, surrogate_transitions=3)
    assert idata["posterior"].attrs["surrogate_transitions"] == 3
    assert np.all(sample_stat(idata, "n_exact_logp") == 1)
    assert np.mean(sample_stat(idata, "n_steps")) > 6  # three trees per draw
    assert_moments(posterior_array(idata, ["x"]), MEAN, np.diag(COVARIANCE))
