"""``shmc.sample`` end to end: plain JAX and PyMC targets, both of its paths, and bad input."""

import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.schedule import SwitchTest
from tests.helpers import assert_moments, moment_z_scores, posterior_array, sample_stat

COVARIANCE = np.array([[1.0, 0.9, 0.0, 0.0], [0.9, 1.0, 0.0, 0.0], [0.0, 0.0, 4.0, -1.0],
                       [0.0, 0.0, -1.0, 1.0]])  # fmt: skip
MEAN = np.array([0.5, -1.0, 2.0, 0.0])


def gaussian(covariance):
    precision = jnp.asarray(np.linalg.inv(covariance))

    def logdensity(params):
        d = params["x"] - MEAN
        return -0.5 * d @ precision @ d

    return logdensity


def run_gaussian(covariance, seed=1, **kwargs):
    options = {"draws": 1000, "tune": 500, "chains": 4, "cost_gate": False} | kwargs
    return shmc.sample(
        gaussian(covariance), initial_position={"x": jnp.zeros(4)}, random_seed=seed,
        progressbar=False, **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def switched():
    return run_gaussian(COVARIANCE)


def test_the_shared_surrogate_takes_over_and_is_exact(switched):
    attrs = switched["posterior"].attrs
    assert attrs["surrogate_decision"] == "switched"
    assert np.all(sample_stat(switched, "phase") == 1)
    assert np.all(sample_stat(switched, "n_exact_logp") == 1)
    assert np.all(sample_stat(switched, "n_exact_grad") == 0)
    assert np.mean(sample_stat(switched, "second_stage_acceptance")) > 0.9
    assert_moments(posterior_array(switched, ["x"]), MEAN, np.diag(COVARIANCE))


def test_negative_control_a_wrong_posterior_fails_the_same_test(switched):
    """Draws of a posterior 50 % wider in one coordinate fail the test the engine passes.

    (25 % wider is about 5 MCSE of the variance with these draws, too close to the threshold
    to fail on every seed.)
    """
    wider = COVARIANCE.copy()
    wider[2, 2] *= 1.5
    wrong = run_gaussian(wider)
    z = moment_z_scores(posterior_array(wrong, ["x"]), MEAN, np.diag(COVARIANCE))
    assert np.max(np.abs(z)) > 4.5


def test_a_run_is_reproducible_from_its_seed():
    """The switched path: the exact phase, one training, the surrogate's draws."""
    first, second = (run_gaussian(COVARIANCE, seed=4, draws=100, tune=300) for _ in range(2))
    assert first["posterior"].attrs["surrogate_decision"] == "switched"
    np.testing.assert_array_equal(first["posterior"]["x"].values, second["posterior"]["x"].values)


def test_one_training_serves_every_chain(switched):
    """The exact phase is paid once for all chains: one training on their pooled leapfrog points.

    Every leapfrog point is a row, so the training sees several times more rows than the
    chains made draws.
    """
    attrs = switched["posterior"].attrs
    assert attrs["n_trainings"] == 1
    assert attrs["switched_at"] <= 50
    assert attrs["exact_gradients"] < 4 * 50 * 15
    training = next(iter(shmc.decisions(switched).values())).records[0]
    assert training.n_points > 2 * 4 * attrs["switched_at"]


def test_decisions_and_plot_diagnostics_read_the_shared_training_from_every_chain(switched):
    import matplotlib

    matplotlib.use("Agg")
    histories = shmc.decisions(switched)
    assert len(histories) == 4
    for history in histories.values():
        assert history.n_trainings == 1
        assert history.records[0].switched
        assert history.records[0].n_points > 0
    assert np.all(sample_stat(switched, "perf_counter_diff") > 0)
    figure = shmc.plot_diagnostics(switched)
    assert len(figure.axes) >= 4


def test_a_cheap_model_is_left_to_nutpie_and_says_so():
    idata = run_gaussian(COVARIANCE, seed=2, cost_gate=True)
    attrs = idata["posterior"].attrs
    assert attrs["surrogate_decision"] == "stayed exact: surrogate would not pay"
    assert attrs["n_trainings"] == 0
    assert np.all(sample_stat(idata, "phase") == 0)
    assert np.all(sample_stat(idata, "n_exact_logp") == 0)
    assert_moments(posterior_array(idata, ["x"]), MEAN, np.diag(COVARIANCE))


def funnel(params):
    """Neal's funnel in 3-D: ``v ~ N(0, 3)``, ``x | v ~ N(0, exp(v / 2))``, centred."""
    v, x = params["v"], params["x"]
    return -(v**2) / 18 - jnp.sum(x**2) * jnp.exp(-v) / 2 - v * x.size / 2


def test_divergent_draws_are_logged_with_what_to_do(caplog):
    with caplog.at_level("ERROR", logger="surrogate_hmc"):
        idata = shmc.sample(
            funnel, draws=200, tune=200, chains=2, random_seed=1, progressbar=False,
            initial_position={"v": jnp.zeros(()), "x": jnp.zeros(2)},
        )  # fmt: skip
    divergences = int(np.sum(sample_stat(idata, "diverging")))
    assert divergences > 0
    [record] = caplog.records
    assert f"There were {divergences} divergences after tuning" in record.getMessage()
    assert "Increase target_accept (now 0.8" in record.getMessage()


def test_draws_without_divergences_log_nothing(caplog, switched):
    assert np.sum(sample_stat(switched, "diverging")) == 0
    with caplog.at_level("ERROR", logger="surrogate_hmc"):
        run_gaussian(COVARIANCE, seed=2, cost_gate=True, draws=200, tune=200)
    assert not caplog.records


def test_a_surrogate_that_fails_its_pilot_leaves_the_run_to_exact_nuts():
    """The exact kernel then makes the draws, frozen after tuning, and exactly."""
    with pytest.warns(shmc.SurrogateWarning, match="No surrogate passed"):
        idata = run_gaussian(COVARIANCE, seed=3, draws=300, switch=SwitchTest(min_second_stage=1.0))
    attrs = idata["posterior"].attrs
    assert attrs["surrogate_decision"] == "stayed exact: no surrogate passed"
    assert attrs["n_trainings"] >= 1
    assert np.all(sample_stat(idata, "phase") == 0)
    assert np.all(sample_stat(idata, "n_exact_grad") == sample_stat(idata, "n_steps"))
    assert_moments(posterior_array(idata, ["x"]), MEAN, np.diag(COVARIANCE))


def conjugate_regression():
    """y ~ N(X b, 1), b ~ N(0, 3^2): a Gaussian posterior known in closed form."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    y = x @ np.array([1.0, -0.5, 2.0]) + rng.normal(size=60)
    precision = x.T @ x + np.eye(3) / 9.0
    covariance = np.linalg.inv(precision)
    with pm.Model(coords={"feature": ["a", "b", "c"]}) as model:
        b = pm.Normal("b", 0.0, 3.0, dims="feature")
        pm.Deterministic("b_sum", b.sum())
        pm.Normal("y", x @ b, 1.0, observed=y)
    return model, covariance @ x.T @ y, covariance


def test_a_pymc_model_gives_pm_sample_output_and_its_exact_posterior():
    model, mean, covariance = conjugate_regression()
    with model:
        idata = shmc.sample(draws=1000, tune=500, random_seed=4, progressbar=False, cost_gate=False)
    assert idata["posterior"].attrs["surrogate_decision"] == "switched"
    assert idata["posterior"]["b"].dims == ("chain", "draw", "feature")
    assert "b_sum" in idata["posterior"]
    assert "y" in idata["observed_data"]
    assert {"phase", "second_stage_acceptance", "n_exact_logp", "model_logp"} <= set(
        idata["sample_stats"].data_vars
    )
    assert_moments(posterior_array(idata, ["b"]), mean, np.diag(covariance))


def test_var_names_and_a_constrained_variable():
    with pm.Model():
        sigma = pm.HalfNormal("sigma", 1.0)
        pm.Normal("x", 0.0, 1.0)
        pm.Deterministic("twice", 2 * sigma)
        idata = shmc.sample(
            draws=200, tune=100, chains=2, random_seed=1, progressbar=False,
            var_names=["sigma", "twice"],
        )  # fmt: skip
    assert set(idata["posterior"].data_vars) == {"sigma", "twice"}
    assert float(idata["posterior"]["sigma"].min()) > 0
    np.testing.assert_allclose(idata["posterior"]["twice"], 2 * idata["posterior"]["sigma"])


def test_discrete_variables_are_refused_with_what_to_do():
    with pm.Model():
        pm.Poisson("k", 3.0)
        with pytest.raises(ValueError, match=r"continuous variables only.*pm\.Metropolis"):
            shmc.sample(draws=10, tune=10, progressbar=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"initial_position": None}, ValueError, "needs initial_position"),
        ({"draws": 0}, ValueError, "draws"),
        ({"chains": 1.5}, ValueError, "chains"),
        ({"initial_position": {"x": jnp.full(4, jnp.nan)}}, ValueError, "non-finite"),
    ],
)
def test_bad_arguments_are_refused_before_sampling(kwargs, error, match):
    options = {"initial_position": {"x": jnp.zeros(4)}, "progressbar": False} | kwargs
    with pytest.raises(error, match=match):
        shmc.sample(gaussian(COVARIANCE), **options)


def test_a_start_outside_the_support_says_so():
    def half_line(params):
        return jnp.where(params["x"] > 0, -params["x"], -jnp.inf).sum()

    with pytest.raises(ValueError, match="not finite at the initial position"):
        shmc.sample(half_line, initial_position={"x": -jnp.ones(2)}, progressbar=False)


def test_not_a_function_is_a_type_error():
    with pytest.raises(TypeError, match="JAX log-density function"):
        shmc.sample(np.zeros(3))
