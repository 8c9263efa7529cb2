"""ACE end to end: generalized-Bayes posteriors with power, amortization, save/load, errors."""

import warnings

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.ace import simulators
from tests.ace.simulators import CALLS, linear_gbi_posterior, linear_model
from tests.helpers import moment_z_scores, posterior_array, sample_stat

OBSERVED = np.array([0.5, -0.2, 0.4, 0.3])
BETA = 10.0
# The network's own error (a few percent of the cost, see CostEstimator.validation_error) moves
# the generalized-Bayes posterior a little: allowed, in quadrature with the MCSE, as fractions
# of the true sd (means) and variance (variances).
ALLOWANCE = (0.15, 0.3)
QUIET = {"compute_convergence_checks": False, "progressbar": False}


@pytest.fixture(scope="module")
def estimator() -> shmc.CostEstimator:
    return shmc.CostEstimator.fit(
        linear_model(OBSERVED), n_simulations=2000, random_seed=1, executor=None,
        progressbar=False,
    )  # fmt: skip


def sample_ace(model, estimator, beta=BETA, draws=1000, seed=1):
    with model:
        return pm.sample(
            step=shmc.ACE(estimator=estimator, beta=beta), tune=500, draws=draws, chains=2,
            cores=1, random_seed=seed, **QUIET,
        )  # fmt: skip


def linear_z_scores(idata, observed, beta):
    mean, covariance = linear_gbi_posterior(observed, beta)
    draws = posterior_array(idata, ["theta"])
    return moment_z_scores(draws, mean, np.diag(covariance), ALLOWANCE)


def test_linear_gaussian_posterior(estimator):
    idata = sample_ace(linear_model(OBSERVED), estimator)
    z = linear_z_scores(idata, OBSERVED, BETA)
    assert np.max(np.abs(z)) < 4.5, f"z-scores:\n{np.round(z, 2)}"
    assert np.all(sample_stat(idata, "n_exact_logp") == 0)
    assert np.all(sample_stat(idata, "phase") == 1)
    assert not sample_stat(idata, "diverging").any()


def test_the_check_catches_a_wrong_temperature(estimator):
    # Negative control: the generalized posterior at beta / 4 is twice as wide; the same check
    # with the same allowance must reject it.
    idata = sample_ace(linear_model(OBSERVED), estimator, beta=BETA / 4)
    z = linear_z_scores(idata, OBSERVED, BETA)
    assert np.max(np.abs(z)) > 4.5, f"z-scores:\n{np.round(z, 2)}"


def test_one_dimensional_task_matches_the_grid():
    observed = np.array([0.6, 0.4, 0.9])
    with pm.Model() as model:
        theta = pm.Uniform("theta", -1.5, 1.5)
        pm.Simulator("x", simulators.curve, theta, observed=observed)
    estimator = shmc.CostEstimator.fit(
        model, n_simulations=1500, random_seed=2, executor=None, progressbar=False
    )
    idata = sample_ace(model, estimator, beta=20.0)
    mean, variance = simulators.curve_grid_posterior(observed, 20.0)
    z = moment_z_scores(posterior_array(idata, ["theta"]), mean, variance, ALLOWANCE)
    assert np.max(np.abs(z)) < 4.5, f"z-scores:\n{np.round(z, 2)}"


def test_misspecified_observation_gives_a_finite_sensible_posterior(estimator):
    far = OBSERVED + np.array([6.0, -6.0, 6.0, -6.0])  # far outside the prior predictive
    idata = sample_ace(linear_model(far), estimator, draws=300)
    draws = posterior_array(idata, ["theta"])
    assert np.all(np.isfinite(draws)) and np.all(np.isfinite(sample_stat(idata, "lp")))
    # The linear simulator can reach it with a large theta, and so the analytic posterior does.
    expected, _ = linear_gbi_posterior(far, BETA)
    np.testing.assert_allclose(draws.mean(axis=(0, 1)), expected, rtol=0.15, atol=0.3)
    assert sample_stat(idata, "acceptance_rate").mean() > 0.5


def test_amortized_over_observations_without_new_simulations(estimator):
    before = CALLS["linear"]
    means = []
    for observed in (OBSERVED, -OBSERVED):
        idata = sample_ace(linear_model(observed), estimator, draws=300)
        means.append(posterior_array(idata, ["theta"]).mean(axis=(0, 1)))
        expected, _ = linear_gbi_posterior(observed, BETA)
        np.testing.assert_allclose(means[-1], expected, atol=0.15)
    assert CALLS["linear"] == before


def test_ace_without_estimator_fits_one(estimator):
    with linear_model(OBSERVED):
        step = shmc.ACE(
            beta=BETA, n_simulations=300,
            fit_kwargs={"executor": None, "progressbar": False, "random_seed": 3},
        )  # fmt: skip
    assert step.estimator.n_simulations == 300


def test_save_load_round_trip(estimator, tmp_path):
    path = estimator.save(tmp_path / "cost.eqx")
    assert path == tmp_path / "cost.eqx"
    loaded = shmc.CostEstimator.load(path)
    theta = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(
        loaded.predict(theta, OBSERVED), estimator.predict(theta, OBSERVED)
    )
    assert loaded.variables == estimator.variables and loaded.distance == estimator.distance
    with linear_model(OBSERVED):
        assert isinstance(shmc.ACE(estimator=str(path), beta=1.0).estimator, shmc.CostEstimator)


def test_load_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.ones(3))
    with pytest.raises(ValueError, match="not a cost estimator"):
        shmc.CostEstimator.load(path)
    with pytest.raises(FileNotFoundError):
        shmc.CostEstimator.load(tmp_path / "missing.eqx")


def test_estimator_for_other_parameters_or_data_is_refused(estimator):
    with pm.Model():
        phi = pm.Normal("phi", 0.0, 1.0, shape=2)
        pm.Simulator("x", simulators.linear, phi, observed=OBSERVED)
        with pytest.raises(ValueError, match="fit for the parameters"):
            shmc.ACE(estimator=estimator, beta=1.0)
    with pm.Model():
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", simulators.linear, theta, observed=np.zeros(5))
        with pytest.raises(ValueError, match="observation has shape"):
            shmc.ACE(estimator=estimator, beta=1.0)


def test_clear_errors(estimator):
    with linear_model(OBSERVED):
        for beta in (0.0, -1.0, float("nan")):
            with pytest.raises(ValueError, match="beta must be a positive"):
                shmc.ACE(estimator=estimator, beta=beta)
        with pytest.raises(TypeError, match="CostEstimator"):
            shmc.ACE(estimator=object(), beta=1.0)
        with pytest.raises(ValueError, match="distance must be one of"):
            shmc.CostEstimator.fit(n_simulations=10, distance="wasserstein")
        with pytest.raises(ValueError, match="n_simulations"):
            shmc.CostEstimator.fit(n_simulations=0)
    with pm.Model():
        pm.Normal("mu", 0.0, 1.0)
        with pytest.raises(ValueError, match=r"exactly one pm\.Simulator"):
            shmc.ACE(estimator=estimator, beta=1.0)
    with pm.Model():
        mu = pm.Normal("mu", 0.0, 1.0, shape=2)
        pm.Simulator("a", simulators.linear, mu, observed=OBSERVED)
        pm.Simulator("b", simulators.linear, mu, observed=OBSERVED)
        with pytest.raises(ValueError, match="has 2"):
            shmc.ACE(estimator=estimator, beta=1.0)


def flaky(rng, theta, size=None):
    if theta[0] > 1.0:
        raise RuntimeError("solver diverged")
    if theta[1] > 1.0:
        return np.full(4, np.nan)
    return simulators.linear(rng, theta)


def test_failed_simulations_are_reported_and_left_out():
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", flaky, theta, observed=OBSERVED)
    with pytest.warns(shmc.SimulationWarning, match="solver diverged") as record:
        estimator = shmc.CostEstimator.fit(
            model, n_simulations=400, random_seed=4, executor=None, progressbar=False,
            training=shmc.TrainingConfig(max_steps=100),
        )  # fmt: skip
    assert "non-finite" in str(record[0].message)
    assert estimator.n_failed > 0
    assert estimator.n_simulations + estimator.n_failed == 400


def test_every_simulation_failing_is_an_error():
    def broken(rng, theta, size=None):
        raise ValueError("no")

    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0)
        pm.Simulator("x", broken, theta, observed=np.zeros(2))
    with pytest.raises(RuntimeError, match="Every simulation failed"), warnings.catch_warnings():
        shmc.CostEstimator.fit(model, n_simulations=5, executor=None, progressbar=False)


def test_forked_chains_after_jax_get_a_clear_error(estimator):
    # JAX has run in this process (the fit); a fork of it cannot run JAX: say what to do.
    with linear_model(OBSERVED), pytest.raises(Exception, match="mp_ctx='forkserver'"):
        pm.sample(
            step=shmc.ACE(estimator=estimator, beta=BETA), tune=10, draws=10, chains=2, cores=2,
            mp_ctx="fork", random_seed=1, **QUIET,
        )  # fmt: skip
