"""ACE end to end: generalized-Bayes posteriors with power, amortization, save/load.

Bad input for ACE, CostEstimator.fit and the simulations: tests/bad_input/.
"""

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.ace import simulators
from tests.ace.simulators import CALLS, linear_gbi_posterior, linear_model
from tests.helpers import assert_moments, posterior_array, sample_stat

OBSERVED = np.array([0.5, -0.2, 0.4, 0.3])
BETA = 10.0
# ACE samples the generalized-Bayes posterior of its network's cost, not of the true expected
# cost: the network's own error (a few percent of the cost, see CostEstimator.validation_error)
# moves and scales it a little. Allowed, in quadrature with the MCSE: 0.15 of the true sd for
# the means; for the variances a relative 0.3 either way, so at z = 4.5 the variance ratio must
# lie within [1 / 2.35, 2.35] (a posterior collapsed towards a point fails as a widened one does).
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


def assert_linear_gbi(draws, observed=OBSERVED, beta=BETA) -> None:
    """Fail unless ``draws`` (chain, draw, 2) have the analytic GBI posterior's moments."""
    mean, covariance = linear_gbi_posterior(observed, beta)
    assert_moments(draws, mean, np.diag(covariance), allowance=ALLOWANCE)


def test_linear_gaussian_posterior(estimator):
    idata = sample_ace(linear_model(OBSERVED), estimator)
    assert_linear_gbi(posterior_array(idata, ["theta"]))
    assert np.all(sample_stat(idata, "n_exact_logp") == 0)
    assert np.all(sample_stat(idata, "phase") == 1)
    assert not sample_stat(idata, "diverging").any()


def test_the_check_catches_a_wrong_temperature(estimator):
    # Negative control: the generalized posterior at beta / 4 is about twice as wide (its
    # variances 3.4 times the true ones); the same check with the same allowance must reject it.
    idata = sample_ace(linear_model(OBSERVED), estimator, beta=BETA / 4)
    with pytest.raises(AssertionError, match="z-scores"):
        assert_linear_gbi(posterior_array(idata, ["theta"]))


@pytest.mark.parametrize("variance_kept", [0.1, 0.0], ids=["a tenth of the variance", "a point"])
def test_the_check_catches_a_collapsed_posterior(variance_kept):
    """Negative control in the other direction, on draws made to be wrong: a posterior shrunk
    towards its mean fails the check that exact draws of the same posterior pass."""
    mean, covariance = linear_gbi_posterior(OBSERVED, BETA)
    exact = np.random.default_rng(0).multivariate_normal(mean, covariance, size=(2, 1000))
    assert_linear_gbi(exact)
    collapsed = mean + np.sqrt(variance_kept) * (exact - mean)
    with pytest.raises(AssertionError, match="z-scores"):
        assert_linear_gbi(collapsed)


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
    assert_moments(posterior_array(idata, ["theta"]), mean, variance, allowance=ALLOWANCE)


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
