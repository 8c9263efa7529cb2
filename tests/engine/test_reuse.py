"""A surrogate saved by ``shmc.sample`` and given to a later run of the same target."""

import jax.numpy as jnp
import numpy as np
import pytest

import surrogate_hmc as shmc
from tests.engine.test_sample import COVARIANCE, MEAN, run_gaussian
from tests.helpers import assert_moments, posterior_array, sample_stat


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("reuse") / "gaussian.npz"
    idata = run_gaussian(COVARIANCE, seed=6, draws=300, save_to=path)
    assert idata["posterior"].attrs["surrogate_decision"] == "switched"
    return path


def test_the_surrogate_that_made_the_draws_is_saved_with_its_kernel(saved):
    trained = shmc.TrainedSurrogate.load(saved)
    assert trained.kind == "logp" and not trained.exact_prior
    assert trained.variables == (("x", (4,)),)
    assert trained.inverse_mass.shape == (4, 4)
    assert 0.05 < trained.step_size < 3.0


def test_a_given_surrogate_takes_over_early_without_training_and_stays_exact(saved):
    idata = run_gaussian(COVARIANCE, seed=7, surrogate=saved)
    attrs = idata["posterior"].attrs
    assert attrs["given_surrogate"] == "given, switched"
    assert attrs["n_trainings"] == 0
    assert attrs["switched_at"] == 50
    assert np.all(sample_stat(idata, "phase") == 1)
    assert_moments(posterior_array(idata, ["x"]), MEAN, np.diag(COVARIANCE))


def test_a_given_surrogate_that_fails_its_pilot_leaves_the_run_to_train_its_own(saved):
    """The same surrogate on a posterior shifted by 3 standard deviations fails its pilot."""
    shifted = MEAN + 3 * np.sqrt(np.diag(COVARIANCE))
    precision = jnp.asarray(np.linalg.inv(COVARIANCE))

    def logdensity(params):
        d = params["x"] - shifted
        return -0.5 * d @ precision @ d

    idata = shmc.sample(
        logdensity, draws=500, tune=500, chains=4, initial_position={"x": jnp.zeros(4)},
        random_seed=8, progressbar=False, cost_gate=False, surrogate=saved,
    )  # fmt: skip
    attrs = idata["posterior"].attrs
    assert attrs["given_surrogate"] == "given, failed its pilot"
    assert attrs["n_trainings"] >= 1
    assert_moments(posterior_array(idata, ["x"]), shifted, np.diag(COVARIANCE))


def test_a_surrogate_of_other_variables_is_refused_before_sampling(saved):
    with pytest.raises(ValueError, match="trained on the variables"):
        shmc.sample(
            lambda p: -0.5 * jnp.sum(p["y"] ** 2), initial_position={"y": jnp.zeros(4)},
            surrogate=saved, progressbar=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"surrogate": "gradient"}, ValueError, "SurrogateHMC"),
        ({"surrogate": 3}, TypeError, "surrogate must be"),
        ({"surrogate": "no/such/file.npz"}, ValueError, "surrogate must be"),
        ({"save_to": "."}, ValueError, "is a directory"),
    ],
)
def test_bad_surrogate_options_are_refused_before_sampling(options, error, match):
    with pytest.raises(error, match=match):
        shmc.sample(
            lambda p: -0.5 * jnp.sum(p["x"] ** 2), initial_position={"x": jnp.zeros(4)},
            progressbar=False, **options,
        )  # fmt: skip


def test_nothing_to_save_says_so(tmp_path):
    with pytest.warns(shmc.SurrogateWarning, match="none was saved"):
        shmc.sample(
            lambda p: -0.5 * jnp.sum(p["x"] ** 2), draws=100, tune=100, chains=2,
            initial_position={"x": jnp.zeros(2)}, progressbar=False,
            save_to=tmp_path / "never.npz",
        )  # fmt: skip
    assert not (tmp_path / "never.npz").exists()
