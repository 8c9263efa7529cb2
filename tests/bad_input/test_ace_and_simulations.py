"""Bad input for ACE, CostEstimator.fit and the simulations: clear errors, or a warning.

ACE and CostEstimator.fit refuse a bad option, a model without exactly one pm.Simulator, or an
estimator fit for another model before anything runs. Simulations that fail or are not finite
are left out of the training with a SimulationWarning that says how many and why.
"""

import re
import warnings

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from tests.ace import simulators
from tests.ace.simulators import linear_model

OBSERVED = np.array([0.5, -0.2, 0.4, 0.3])
QUIET = {"compute_convergence_checks": False, "progressbar": False}
NAN, INF = float("nan"), float("inf")


def refused(error, words):
    """``pytest.raises`` for ``error`` whose message contains ``words`` literally."""
    return pytest.raises(error, match=re.escape(words))


@pytest.fixture(scope="module")
def estimator() -> shmc.CostEstimator:
    """A small estimator of the linear model: right for its parameters and data, not accurate."""
    return shmc.CostEstimator.fit(
        linear_model(OBSERVED), n_simulations=200, random_seed=1, executor=None,
        progressbar=False, training=shmc.TrainingConfig(max_steps=100),
    )  # fmt: skip


# -- ACE's options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param({"beta": 0.0}, "beta must be a positive number, got 0.0.", id="beta-zero"),
        pytest.param({"beta": -1.0}, "beta must be a positive number, got -1.0.",
                     id="beta-negative"),
        pytest.param({"beta": NAN}, "beta must be a positive number, got nan.", id="beta-nan"),
        pytest.param({"beta": INF}, "beta must be a positive number, got inf.", id="beta-inf"),
        pytest.param({"beta": True}, "beta must be a positive number, got True.",
                     id="beta-bool"),
        pytest.param({"beta": "10"}, "beta must be a positive number, got '10'.",
                     id="beta-string"),
        pytest.param({"target_accept": 1.0},
                     "target_accept must be a number in (0, 1), got 1.0.",
                     id="target_accept-1"),
        pytest.param({"max_treedepth": 0}, "max_treedepth must be an integer >= 1, got 0.",
                     id="max_treedepth-zero"),
        pytest.param({"max_energy_error": -1.0},
                     "max_energy_error must be a number >= 0, got -1.0.",
                     id="max_energy_error-negative"),
    ],
)  # fmt: skip
def test_invalid_ace_options_are_clear_errors(estimator, options, words):
    with linear_model(OBSERVED), refused(ValueError, words):
        shmc.ACE(estimator=estimator, **({"beta": 1.0} | options))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param(
            {"bta": 2.0},
            "ACE got an unexpected keyword argument 'bta'. Did you mean 'beta'?",
            id="misspelt-option",
        ),
        pytest.param(
            {"fit_kwargs": {"n_simulation": 10}},
            "ACE's fit_kwargs (for CostEstimator.fit) got an unexpected keyword argument "
            "'n_simulation'.",
            id="misspelt-fit-option",
        ),
        pytest.param(
            {"fit_kwargs": {"distanc": "mse"}},
            "Did you mean 'distance'?",
            id="misspelt-fit-option-hint",
        ),
    ],
)
def test_unknown_ace_options_are_refused_with_the_closest_names(estimator, options, words):
    with linear_model(OBSERVED), refused(TypeError, words):
        shmc.ACE(estimator=estimator, **options)


def test_numpy_numbers_are_accepted(estimator):
    with linear_model(OBSERVED):
        step = shmc.ACE(estimator=estimator, beta=np.float32(2.0), max_treedepth=np.int64(8))
    assert step.beta == 2.0 and type(step.beta) is float


def test_an_estimator_of_the_wrong_type_is_refused():
    words = "estimator must be a CostEstimator or the path of a saved one, got dict."
    with linear_model(OBSERVED), refused(TypeError, words):
        shmc.ACE(estimator={"theta": 1.0}, beta=1.0)


def test_an_estimator_for_other_parameters_is_refused(estimator):
    with pm.Model():
        phi = pm.Normal("phi", 0.0, 1.0, shape=2)
        pm.Simulator("x", simulators.linear, phi, observed=OBSERVED)
        with refused(
            ValueError,
            "The cost estimator was fit for the parameters [theta (2,)], but this model has "
            "[phi (2,)]. Fit one for this model with shmc.CostEstimator.fit(model).",
        ):
            shmc.ACE(estimator=estimator, beta=1.0)


def test_an_estimator_for_other_data_is_refused(estimator):
    with pm.Model():
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", simulators.linear, theta, observed=np.zeros(5))
        with refused(
            ValueError,
            "The observation has shape (5,), but the cost estimator was fit on simulations of "
            "shape (4,).",
        ):
            shmc.ACE(estimator=estimator, beta=1.0)


def test_ace_cannot_be_combined_with_other_steps(estimator):
    with pm.Model():
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        scale = pm.HalfNormal("scale", 1.0)
        pm.Simulator("x", simulators.linear, theta * scale, observed=OBSERVED)
        with refused(
            ValueError,
            "ACE samples all of the model's free variables jointly (['theta', 'scale']); do not "
            "combine it with other steps.",
        ):
            shmc.ACE(vars=[theta], estimator=estimator, beta=1.0)


def test_forked_chains_after_jax_get_a_clear_error(estimator):
    # JAX has run in this process (the fit); a fork of it cannot run JAX: say what to do.
    with linear_model(OBSERVED), pytest.raises(Exception, match="mp_ctx='forkserver'"):
        pm.sample(
            step=shmc.ACE(estimator=estimator, beta=10.0), tune=10, draws=10, chains=2, cores=2,
            mp_ctx="fork", random_seed=1, **QUIET,
        )  # fmt: skip


# -- the model ------------------------------------------------------------------------------------


def no_simulator():
    with pm.Model() as model:
        pm.Normal("mu", 0.0, 1.0)
    return model


def two_simulators():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 1.0, shape=2)
        pm.Simulator("a", simulators.linear, mu, observed=OBSERVED)
        pm.Simulator("b", simulators.linear, mu, observed=OBSERVED)
    return model


def discrete_parameter():
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        k = pm.Poisson("k", 2.0)
        pm.Simulator("x", simulators.linear, theta * k, observed=OBSERVED)
    return model


SIMULATOR_MODELS = [
    pytest.param(
        no_simulator,
        "ACE needs a model with exactly one pm.Simulator observed variable (the simulator of "
        "the data); this model has 0.",
        id="no-simulator",
    ),
    pytest.param(
        two_simulators,
        "exactly one pm.Simulator observed variable (the simulator of the data); this model has 2.",
        id="two-simulators",
    ),
    pytest.param(
        discrete_parameter,
        "ACE samples continuous parameters only; ['k'] are discrete.",
        id="discrete-parameter",
    ),
]


@pytest.mark.parametrize(("make_model", "words"), SIMULATOR_MODELS)
def test_ace_refuses_a_model_it_cannot_sample(estimator, make_model, words):
    with make_model(), refused(ValueError, words):
        shmc.ACE(estimator=estimator, beta=1.0)


@pytest.mark.parametrize(("make_model", "words"), SIMULATOR_MODELS)
def test_fit_refuses_a_model_it_cannot_fit(make_model, words):
    with refused(ValueError, words):
        shmc.CostEstimator.fit(make_model(), n_simulations=10, executor=None, progressbar=False)


# -- CostEstimator.fit's options ------------------------------------------------------------------

DISTANCE_MUST_BE = (
    "distance must be one of ('mse', 'mae', 'mmd', 'energy') or a function of (simulation, "
    "target) written with jax.numpy"
)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param({"n_simulations": 0}, "n_simulations must be an integer >= 1, got 0.",
                     id="n_simulations-zero"),
        pytest.param({"n_simulations": True}, "n_simulations must be an integer >= 1, got True.",
                     id="n_simulations-bool"),
        pytest.param({"n_simulations": 10.0}, "n_simulations must be an integer >= 1, got 10.0.",
                     id="n_simulations-float"),
        pytest.param({"target_noise": -0.5}, "target_noise must be a number >= 0, got -0.5.",
                     id="target_noise-negative"),
        pytest.param({"target_noise": NAN}, "target_noise must be a number >= 0, got nan.",
                     id="target_noise-nan"),
        pytest.param({"target_noise": INF}, "target_noise must be a number >= 0, got inf.",
                     id="target_noise-inf"),
        pytest.param({"target_noise": True}, "target_noise must be a number >= 0, got True.",
                     id="target_noise-bool"),
        pytest.param({"embedding_size": 0}, "embedding_size must be an integer >= 1, got 0.",
                     id="embedding_size-zero"),
        pytest.param({"embedding_size": np.float64(4)}, "embedding_size must be an integer >= 1",
                     id="embedding_size-numpy-float"),
        pytest.param({"distance": "wasserstein"}, f"{DISTANCE_MUST_BE}, got 'wasserstein'.",
                     id="distance-unknown"),
        pytest.param({"distance": 2}, f"{DISTANCE_MUST_BE}, got 2.", id="distance-number"),
        pytest.param({"executor": "threads"},
                     "executor must be 'processes', None or an Executor, got 'threads'.",
                     id="executor-unknown-name"),
        pytest.param({"executor": 4},
                     "executor must be 'processes', None or an Executor, got 4.",
                     id="executor-not-an-executor"),
    ],
)  # fmt: skip
def test_invalid_fit_options_are_clear_errors(options, words):
    model = linear_model(OBSERVED)
    with refused(ValueError, words):
        shmc.CostEstimator.fit(model, **({"executor": None, "progressbar": False} | options))


def scalar_data_model():
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0)
        pm.Simulator("x", simulators.linear, theta, observed=0.5)
    return model


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"iid_trials": True}, id="iid_trials"),
        pytest.param({"distance": "mmd"}, id="mmd-needs-trials"),
        pytest.param({"distance": "energy"}, id="energy-needs-trials"),
    ],
)
def test_iid_trials_need_a_trials_axis(options):
    with refused(ValueError, "iid_trials needs data with a trials axis (at least 1-D)."):
        shmc.CostEstimator.fit(
            scalar_data_model(), n_simulations=10, executor=None, progressbar=False, **options
        )


# -- simulations that fail ------------------------------------------------------------------------


def flaky(rng, theta, size=None):
    if theta[0] > 1.0:
        raise RuntimeError("solver diverged")
    if theta[1] > 1.0:
        return np.full(4, np.nan)
    if theta[1] < -1.5:
        return np.zeros(3)
    return simulators.linear(rng, theta)


def test_failed_simulations_are_reported_and_left_out():
    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", flaky, theta, observed=OBSERVED)
    with pytest.warns(shmc.SimulationWarning, match="simulations were left out") as record:
        estimator = shmc.CostEstimator.fit(
            model, n_simulations=400, random_seed=4, executor=None, progressbar=False,
            training=shmc.TrainingConfig(max_steps=100),
        )  # fmt: skip
    (message,) = [str(w.message) for w in record if w.category is shmc.SimulationWarning]
    assert re.match(rf"{estimator.n_failed} of 400 simulations were left out: ", message)
    for reason in (
        "x RuntimeError: solver diverged",
        "x non-finite values",
        "x shape (3,) instead of the observation's (4,)",
    ):
        assert reason in message
    assert estimator.n_failed > 0
    assert estimator.n_simulations + estimator.n_failed == 400


def test_every_simulation_failing_is_an_error():
    def broken(rng, theta, size=None):
        raise ValueError("no")

    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0)
        pm.Simulator("x", broken, theta, observed=np.zeros(2))
    with refused(RuntimeError, "Every simulation failed: 5 x ValueError: no"):
        with warnings.catch_warnings():
            shmc.CostEstimator.fit(model, n_simulations=5, executor=None, progressbar=False)
