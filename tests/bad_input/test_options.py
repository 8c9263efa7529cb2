"""Bad options for SurrogateHMC and its configuration objects: each one a clear error.

Every case names the option in its message, says what was expected and what was given, and
is refused when the object is built, before any sampling. NumPy numbers are accepted wherever a
number is; bools never are.
"""

import re

import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.trained import network_shapes
from tests.step_methods import models

NAN, INF = float("nan"), float("inf")
SAMPLE = {"progressbar": False, "compute_convergence_checks": False, "cores": 1}


def refused(error, words):
    """``pytest.raises`` for ``error`` whose message contains ``words`` literally."""
    return pytest.raises(error, match=re.escape(words))


# -- SurrogateHMC's constructor -------------------------------------------------------------------

SURROGATE_MUST_BE = (
    "surrogate must be 'gradient', 'logp', a shmc.TrainedSurrogate or the path of a saved one"
)


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        pytest.param(
            {"surrogate": "hessian"}, ValueError, f"{SURROGATE_MUST_BE};",
            id="surrogate-unknown-name",
        ),
        pytest.param(
            {"surrogate": "missing/file.npz"}, ValueError, "No saved surrogate",
            id="surrogate-missing-file",
        ),
        pytest.param({"surrogate": 3}, TypeError, f"{SURROGATE_MUST_BE}, got int.",
                     id="surrogate-wrong-type"),
        pytest.param(
            {"surrogate": "gradient", "trajectory": "nuts"}, ValueError,
            "trajectory='nuts' needs a surrogate of the log-density to build trees with; a "
            "gradient surrogate has no energy. Use surrogate='logp' or trajectory='static'.",
            id="nuts-with-a-gradient-surrogate",
        ),
        pytest.param(
            {"trajectory": "curvy"}, ValueError,
            "trajectory must be one of 'static', 'nuts', got 'curvy'.",
            id="trajectory-unknown",
        ),
        pytest.param(
            {"n_steps": 0}, ValueError, "n_steps must be an integer >= 1 or None, got 0.",
            id="n_steps-zero",
        ),
        pytest.param(
            {"n_steps": 2.5}, ValueError, "n_steps must be an integer >= 1 or None, got 2.5.",
            id="n_steps-float",
        ),
        pytest.param(
            {"surrogate": "logp", "n_steps": 5}, ValueError,
            "n_steps sets static trajectories; NUTS chooses its own lengths. Drop n_steps or "
            "use trajectory='static'.",
            id="n_steps-with-nuts",
        ),
        pytest.param(
            {"surrogate": "logp", "surrogate_transitions": 0}, ValueError,
            "surrogate_transitions must be an integer >= 1, got 0.",
            id="surrogate_transitions-zero",
        ),
        pytest.param(
            {"buffer_size": 10}, ValueError, "buffer_size must be an integer >= 64, got 10.",
            id="buffer_size-too-small",
        ),
        pytest.param(
            {"buffer_size": True}, ValueError, "buffer_size must be an integer >= 64, got True.",
            id="buffer_size-bool",
        ),
        pytest.param(
            {"target_accept": 1.2}, ValueError,
            "target_accept must be a number in (0, 1), got 1.2.",
            id="target_accept-above-1",
        ),
        pytest.param(
            {"target_accept": 1}, ValueError, "target_accept must be a number in (0, 1), got 1.0.",
            id="target_accept-1",
        ),
        pytest.param(
            {"target_accept": NAN}, ValueError,
            "target_accept must be a number in (0, 1), got nan.",
            id="target_accept-nan",
        ),
        pytest.param(
            {"target_accept": True}, ValueError,
            "target_accept must be a number in (0, 1), got True.",
            id="target_accept-bool",
        ),
        pytest.param(
            {"target_accept": "0.9"}, ValueError,
            "target_accept must be a number in (0, 1), got '0.9'.",
            id="target_accept-string",
        ),
        pytest.param(
            {"save_to": 1}, TypeError, "save_to must be a path, got int.", id="save_to-not-a-path"
        ),
        pytest.param(
            {"schedule": {"start": 10}}, TypeError,
            "schedule must be a surrogate_hmc.Schedule, got dict: for example "
            "schedule=shmc.Schedule().",
            id="schedule-dict",
        ),
        pytest.param(
            {"schedule": shmc.Schedule}, TypeError,
            "schedule must be a surrogate_hmc.Schedule, got type",
            id="schedule-class-not-instance",
        ),
        pytest.param(
            {"switch_test": 0.5}, TypeError,
            "switch_test must be a surrogate_hmc.SwitchTest, got float",
            id="switch_test-number",
        ),
        pytest.param(
            {"network": 128}, TypeError, "network must be a surrogate_hmc.NetworkConfig, got int",
            id="network-number",
        ),
        pytest.param(
            {"training": {"max_steps": 100}}, TypeError,
            "training must be a surrogate_hmc.TrainingConfig, got dict",
            id="training-dict",
        ),
        pytest.param(
            {"jitter": "no"}, TypeError, "jitter must be True or False, got 'no'.",
            id="jitter-string",
        ),
    ],
)  # fmt: skip
def test_invalid_options_are_clear_errors(options, error, words):
    model, *_ = models.conjugate_regression()
    with model, refused(error, words):
        shmc.SurrogateHMC(**options)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        pytest.param(
            {"target_acceptance": 0.9},
            "SurrogateHMC got an unexpected keyword argument 'target_acceptance'. Did you mean "
            "'target_accept'?",
            id="misspelt-own-option",
        ),
        pytest.param(
            {"max_tree_depth": 8},
            "SurrogateHMC got an unexpected keyword argument 'max_tree_depth'. Did you mean "
            "'max_treedepth'",
            id="misspelt-nuts-option",
        ),
        pytest.param(
            {"schedul": None, "bogus": 1},
            "SurrogateHMC got an unexpected keyword arguments 'schedul', 'bogus'. Did you mean "
            "'schedule'?",
            id="two-unknown",
        ),
    ],
)
def test_unknown_options_are_refused_before_anything_is_compiled(monkeypatch, options, words):
    import pytensor

    def compiled(*args, **kwargs):
        raise AssertionError("compiled before the options were checked")

    model, *_ = models.conjugate_regression()
    monkeypatch.setattr(pytensor, "function", compiled)
    with model, refused(TypeError, words) as caught:
        shmc.SurrogateHMC(**options)
    listed = str(caught.value).split("Valid keyword arguments: ")[1]
    assert {"schedule", "target_accept", "max_treedepth", "step_scale"} <= set(
        listed.rstrip(".").split(", ")
    )


def test_the_options_of_pymc_nuts_are_passed_on():
    model, *_ = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC(max_treedepth=7, early_max_treedepth=5, Emax=500.0)
    assert (step.max_treedepth, step.early_max_treedepth, step.Emax) == (7, 5, 500.0)


def test_numpy_numbers_are_accepted():
    model, *_ = models.conjugate_regression()
    with model:
        step = shmc.SurrogateHMC(
            surrogate="gradient",  # static trajectories, whose n_steps can be set
            schedule=shmc.Schedule(start=np.int64(50), every=np.int32(25)),
            switch_test=shmc.SwitchTest(max_validation_error=np.float32(0.25)),
            training=shmc.TrainingConfig(learning_rate=np.float64(1e-3)),
            buffer_size=np.int64(128),
            n_steps=np.int64(5),
            target_accept=np.float32(0.9),
        )
    assert step.schedule == shmc.Schedule(start=50, every=25)
    assert type(step.schedule.start) is int
    assert step.switch_test.max_validation_error == 0.25
    assert step.buffer_size == 128
    assert step.target_accept == pytest.approx(0.9)


# -- the configuration objects --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "options", "words"),
    [
        pytest.param(shmc.Schedule, {"start": True},
                     "Schedule.start must be an integer >= 1 or None, got True.",
                     id="Schedule.start-bool"),
        pytest.param(shmc.Schedule, {"start": 0},
                     "Schedule.start must be an integer >= 1 or None, got 0.",
                     id="Schedule.start-zero"),
        pytest.param(shmc.Schedule, {"every": 2.0},
                     "Schedule.every must be an integer >= 1 or None, got 2.0.",
                     id="Schedule.every-float"),
        pytest.param(shmc.Schedule, {"stop": np.float64(3)},
                     "Schedule.stop must be an integer >= 1 or None, got",
                     id="Schedule.stop-numpy-float"),
        pytest.param(shmc.Schedule, {"collect_from": -1},
                     "Schedule.collect_from must be an integer >= 0 or None, got -1.",
                     id="Schedule.collect_from-negative"),
        pytest.param(shmc.Schedule, {"refit": False},
                     "Schedule.refit must be an integer >= 0 or None, got False.",
                     id="Schedule.refit-bool"),
        pytest.param(shmc.Schedule, {"start": 100, "stop": 50},
                     "Schedule.stop (50) is before start (100).",
                     id="Schedule.stop-before-start"),
        pytest.param(shmc.Schedule, {"collect_from": np.int64(100), "start": 100},
                     "Schedule.collect_from (100) must come before start (100).",
                     id="Schedule.collect_from-not-before-start"),
        pytest.param(shmc.SwitchTest, {"max_validation_error": 0.0},
                     "SwitchTest.max_validation_error must be a positive number, got 0.0.",
                     id="SwitchTest.max_validation_error-zero"),
        pytest.param(shmc.SwitchTest, {"max_validation_error": NAN},
                     "SwitchTest.max_validation_error must be a positive number, got nan.",
                     id="SwitchTest.max_validation_error-nan"),
        pytest.param(shmc.SwitchTest, {"max_validation_error": True},
                     "SwitchTest.max_validation_error must be a positive number, got True.",
                     id="SwitchTest.max_validation_error-bool"),
        pytest.param(shmc.SwitchTest, {"pilot_iterations": 0},
                     "SwitchTest.pilot_iterations must be an integer >= 1, got 0.",
                     id="SwitchTest.pilot_iterations-zero"),
        pytest.param(shmc.SwitchTest, {"pilot_iterations": None},
                     "SwitchTest.pilot_iterations must be an integer >= 1, got None.",
                     id="SwitchTest.pilot_iterations-None"),
        pytest.param(shmc.SwitchTest, {"pilot_iterations": True},
                     "SwitchTest.pilot_iterations must be an integer >= 1, got True.",
                     id="SwitchTest.pilot_iterations-bool"),
        pytest.param(shmc.SwitchTest, {"min_acceptance_ratio": 1.5},
                     "SwitchTest.min_acceptance_ratio must be a number in [0, 1], got 1.5.",
                     id="SwitchTest.min_acceptance_ratio-above-1"),
        pytest.param(shmc.SwitchTest, {"min_acceptance_ratio": False},
                     "SwitchTest.min_acceptance_ratio must be a number in [0, 1], got False.",
                     id="SwitchTest.min_acceptance_ratio-bool"),
        pytest.param(shmc.SwitchTest, {"min_second_stage": NAN},
                     "SwitchTest.min_second_stage must be a number in [0, 1], got nan.",
                     id="SwitchTest.min_second_stage-nan"),
        pytest.param(shmc.NetworkConfig, {"width": 0},
                     "NetworkConfig.width must be an integer >= 1, got 0.",
                     id="NetworkConfig.width-zero"),
        pytest.param(shmc.NetworkConfig, {"width": True},
                     "NetworkConfig.width must be an integer >= 1, got True.",
                     id="NetworkConfig.width-bool"),
        pytest.param(shmc.NetworkConfig, {"depth": 1.5},
                     "NetworkConfig.depth must be an integer >= 1, got 1.5.",
                     id="NetworkConfig.depth-float"),
        pytest.param(shmc.NetworkConfig, {"activation": "relu"},
                     "NetworkConfig.activation must be one of 'silu', 'selu', 'tanh', "
                     "'softplus', 'gelu', got 'relu'.",
                     id="NetworkConfig.activation-not-smooth"),
        pytest.param(shmc.TrainingConfig, {"learning_rate": -1.0},
                     "TrainingConfig.learning_rate must be a positive number, got -1.0.",
                     id="TrainingConfig.learning_rate-negative"),
        pytest.param(shmc.TrainingConfig, {"learning_rate": 0},
                     "TrainingConfig.learning_rate must be a positive number, got 0.0.",
                     id="TrainingConfig.learning_rate-zero"),
        pytest.param(shmc.TrainingConfig, {"learning_rate": INF},
                     "TrainingConfig.learning_rate must be a positive number, got inf.",
                     id="TrainingConfig.learning_rate-inf"),
        pytest.param(shmc.TrainingConfig, {"learning_rate": NAN},
                     "TrainingConfig.learning_rate must be a positive number, got nan.",
                     id="TrainingConfig.learning_rate-nan"),
        pytest.param(shmc.TrainingConfig, {"learning_rate": True},
                     "TrainingConfig.learning_rate must be a positive number, got True.",
                     id="TrainingConfig.learning_rate-bool"),
        pytest.param(shmc.TrainingConfig, {"batch_size": 0},
                     "TrainingConfig.batch_size must be an integer >= 1, got 0.",
                     id="TrainingConfig.batch_size-zero"),
        pytest.param(shmc.TrainingConfig, {"batch_size": True},
                     "TrainingConfig.batch_size must be an integer >= 1, got True.",
                     id="TrainingConfig.batch_size-bool"),
        pytest.param(shmc.TrainingConfig, {"max_steps": np.float64(10)},
                     "TrainingConfig.max_steps must be an integer >= 1, got",
                     id="TrainingConfig.max_steps-numpy-float"),
        pytest.param(shmc.TrainingConfig, {"eval_every": 0},
                     "TrainingConfig.eval_every must be an integer >= 1, got 0.",
                     id="TrainingConfig.eval_every-zero"),
        pytest.param(shmc.TrainingConfig, {"patience": -1},
                     "TrainingConfig.patience must be an integer >= 1, got -1.",
                     id="TrainingConfig.patience-negative"),
        pytest.param(shmc.TrainingConfig, {"validation_fraction": 1.0},
                     "TrainingConfig.validation_fraction must be a number in (0, 1), got 1.0.",
                     id="TrainingConfig.validation_fraction-1"),
        pytest.param(shmc.TrainingConfig, {"validation_fraction": 0},
                     "TrainingConfig.validation_fraction must be a number in (0, 1), got 0.0.",
                     id="TrainingConfig.validation_fraction-0"),
        pytest.param(shmc.TrainingConfig, {"validation_fraction": NAN},
                     "TrainingConfig.validation_fraction must be a number in (0, 1), got nan.",
                     id="TrainingConfig.validation_fraction-nan"),
        pytest.param(shmc.TrainingConfig, {"validation_fraction": True},
                     "TrainingConfig.validation_fraction must be a number in (0, 1), got True.",
                     id="TrainingConfig.validation_fraction-bool"),
        pytest.param(shmc.TrainingConfig, {"dtype": "float16"},
                     "TrainingConfig.dtype must be one of 'float32', 'float64', got 'float16'.",
                     id="TrainingConfig.dtype-float16"),
    ],
)  # fmt: skip
def test_invalid_configuration_values_are_refused_by_name(cls, options, words):
    with refused(ValueError, words):
        cls(**options)


# -- the model's variables ------------------------------------------------------------------------


def test_discrete_variables_are_refused():
    with pm.Model():
        z = pm.Poisson("z", 3.0)
        pm.Normal("x", z, 1.0)
        with refused(
            ValueError, "SurrogateHMC samples continuous variables only, but ['z'] are discrete."
        ):
            shmc.SurrogateHMC(vars=[z])


def test_model_without_continuous_variables_is_refused():
    with pm.Model():
        pm.Poisson("z", 3.0)
        with refused(ValueError, "The model has no continuous free variables"):
            shmc.SurrogateHMC()


def test_a_start_where_the_model_has_no_density_is_refused():
    # PyMC's own error, at the first step, word for word as with PyMC's NUTS.
    model, *_ = models.truncated_normal()  # log-density -inf for x > 1
    with model, pytest.raises(pm.exceptions.SamplingError, match="Bad initial energy"):
        pm.sample(step=shmc.SurrogateHMC(), initvals={"x": 2.0}, tune=300, draws=10,
                  chains=1, **SAMPLE)  # fmt: skip


# -- a surrogate given by the user ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_on_x() -> shmc.TrainedSurrogate:
    """A log-density surrogate trained on a model with one scalar variable x."""
    with pm.Model():
        pm.Normal("x", 0.0, 1.0)
        step = shmc.SurrogateHMC(
            surrogate="logp", schedule=shmc.Schedule(start=50, every=50), cost_gate=False,
            network=shmc.NetworkConfig(width=16), training=shmc.TrainingConfig(max_steps=300),
        )  # fmt: skip
        pm.sample(step=step, tune=200, draws=10, chains=1, random_seed=1, **SAMPLE)
    trained = step.trained_surrogate
    assert trained is not None and trained.variables == (("x", ()),)
    return trained


def vector_x():
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=2)
    return model


@pytest.mark.parametrize(
    ("make_model", "words"),
    [
        pytest.param(
            lambda: models.conjugate_regression()[0],
            "The surrogate was trained on the variables [x ()] (dimension 1), but this sampler "
            "has [beta (3,)].",
            id="other-names",
        ),
        pytest.param(
            vector_x,
            "The surrogate was trained on the variables [x ()] (dimension 1), but this sampler "
            "has [x (2,)].",
            id="other-shapes",
        ),
    ],
)
def test_a_surrogate_for_other_variables_is_refused(trained_on_x, make_model, words):
    with make_model(), refused(ValueError, words):
        shmc.SurrogateHMC(surrogate=trained_on_x)


def test_a_given_gradient_surrogate_cannot_drive_nuts(trained_on_x):
    network = trained_on_x.network
    as_gradient = shmc.TrainedSurrogate(
        kind="gradient", variables=trained_on_x.variables, network=network,
        arrays=tuple(np.ones(shape) for shape in network_shapes(network, 1, "gradient")),
        exact_prior=True, step_size=0.1, inverse_mass=np.ones(1),
    )  # fmt: skip
    with pm.Model():
        pm.Normal("x", 0.0, 1.0)
        shmc.SurrogateHMC(surrogate=as_gradient)  # a usable surrogate, with static trajectories
        with refused(ValueError, "a gradient surrogate has no energy"):
            shmc.SurrogateHMC(surrogate=as_gradient, trajectory="nuts")


def test_a_given_surrogate_of_the_likelihood_needs_priors_of_its_own_variables(trained_on_x):
    # x's prior depends on z, which another step samples: the exact prior cannot be added back.
    with pm.Model():
        z = pm.Bernoulli("z", 0.5)
        x = pm.Normal("x", 3.0 * z, 1.0)
        with refused(
            ValueError,
            "The given surrogate learned the likelihood only, but this model's priors depend on "
            "variables sampled by another step",
        ):
            shmc.SurrogateHMC(vars=[x], surrogate=trained_on_x)
