"""Option values: NumPy numbers accepted and normalized, bools and NaN refused, errors named."""

import dataclasses
import json

import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.schedule import Schedule, SwitchTest
from surrogate_hmc.core.training import TrainingConfig

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("cls", "numpy_values", "plain_values"),
    [
        (
            Schedule,
            {"collect_from": np.int64(0), "start": np.int32(50), "every": np.uint16(25),
             "stop": np.int64(200), "refit": np.int8(0)},
            {"collect_from": 0, "start": 50, "every": 25, "stop": 200, "refit": 0},
        ),
        (
            SwitchTest,
            {"max_validation_error": np.float32(0.25), "pilot_iterations": np.int64(10),
             "min_acceptance_ratio": np.float64(0.5), "min_second_stage": np.float16(0.75)},
            {"max_validation_error": 0.25, "pilot_iterations": 10, "min_acceptance_ratio": 0.5,
             "min_second_stage": 0.75},
        ),
        (
            NetworkConfig,
            {"width": np.int64(32), "depth": np.int16(3)},
            {"width": 32, "depth": 3},
        ),
        (
            TrainingConfig,
            {"learning_rate": np.float32(0.125), "batch_size": np.int64(64),
             "max_steps": np.int32(500), "eval_every": np.uint8(50), "patience": np.int64(2),
             "validation_fraction": np.float64(0.25)},
            {"learning_rate": 0.125, "batch_size": 64, "max_steps": 500, "eval_every": 50,
             "patience": 2, "validation_fraction": 0.25},
        ),
    ],
    ids=["Schedule", "SwitchTest", "NetworkConfig", "TrainingConfig"],
)  # fmt: skip
def test_numpy_numbers_are_stored_as_python_numbers(cls, numpy_values, plain_values):
    made, plain = cls(**numpy_values), cls(**plain_values)
    assert made == plain and hash(made) == hash(plain)
    for name, value in plain_values.items():
        assert type(getattr(made, name)) is type(value), name
    json.dumps(dataclasses.asdict(made))


def test_an_integer_is_accepted_where_a_real_number_is_expected():
    assert type(TrainingConfig(learning_rate=1).learning_rate) is float
    assert type(SwitchTest(min_second_stage=np.int64(1)).min_second_stage) is float


def test_an_infinite_validation_error_turns_the_switch_gate_off():
    assert SwitchTest(max_validation_error=np.inf).max_validation_error == INF


@pytest.mark.parametrize(
    ("cls", "options", "words"),
    [
        (Schedule, {"start": True}, "Schedule.start must be an integer >= 1 or None, got True"),
        (Schedule, {"start": 0}, "Schedule.start must be an integer >= 1 or None, got 0"),
        (Schedule, {"every": 2.0}, "Schedule.every must be an integer >= 1 or None, got 2.0"),
        (Schedule, {"stop": np.float64(3)}, "Schedule.stop must be an integer"),
        (Schedule, {"collect_from": -1}, "Schedule.collect_from must be an integer >= 0"),
        (Schedule, {"refit": False}, "Schedule.refit must be an integer >= 0 or None"),
        (Schedule, {"start": 100, "stop": 50}, r"Schedule.stop \(50\) is before start \(100\)"),
        (
            Schedule,
            {"collect_from": np.int64(100), "start": 100},
            r"Schedule.collect_from \(100\) must come before start \(100\)",
        ),
        (
            SwitchTest,
            {"max_validation_error": 0.0},
            "SwitchTest.max_validation_error must be a positive number",
        ),
        (SwitchTest, {"max_validation_error": NAN}, "SwitchTest.max_validation_error must be"),
        (SwitchTest, {"max_validation_error": True}, "SwitchTest.max_validation_error must be"),
        (
            SwitchTest,
            {"pilot_iterations": 0},
            "SwitchTest.pilot_iterations must be an integer >= 1",
        ),
        (SwitchTest, {"pilot_iterations": None}, "SwitchTest.pilot_iterations must be an integer"),
        (SwitchTest, {"pilot_iterations": True}, "SwitchTest.pilot_iterations must be an integer"),
        (
            SwitchTest,
            {"min_acceptance_ratio": 1.5},
            r"SwitchTest.min_acceptance_ratio must be a number in \[0, 1\]",
        ),
        (SwitchTest, {"min_acceptance_ratio": False}, "SwitchTest.min_acceptance_ratio must be"),
        (SwitchTest, {"min_second_stage": NAN}, "SwitchTest.min_second_stage must be a number in"),
        (NetworkConfig, {"width": 0}, "NetworkConfig.width must be an integer >= 1, got 0"),
        (NetworkConfig, {"width": True}, "NetworkConfig.width must be an integer >= 1, got True"),
        (NetworkConfig, {"depth": 1.5}, "NetworkConfig.depth must be an integer >= 1, got 1.5"),
        (NetworkConfig, {"activation": "relu"}, "NetworkConfig.activation must be one of 'silu'"),
        (
            TrainingConfig,
            {"learning_rate": -1.0},
            "TrainingConfig.learning_rate must be a positive number",
        ),
        (
            TrainingConfig,
            {"learning_rate": 0},
            "TrainingConfig.learning_rate must be a positive number",
        ),
        (
            TrainingConfig,
            {"learning_rate": INF},
            "TrainingConfig.learning_rate must be a positive number, got inf",
        ),
        (
            TrainingConfig,
            {"learning_rate": NAN},
            "TrainingConfig.learning_rate must be a positive number, got nan",
        ),
        (
            TrainingConfig,
            {"learning_rate": True},
            "TrainingConfig.learning_rate must be a positive number, got True",
        ),
        (TrainingConfig, {"batch_size": 0}, "TrainingConfig.batch_size must be an integer >= 1"),
        (TrainingConfig, {"batch_size": True}, "TrainingConfig.batch_size must be an integer >= 1"),
        (
            TrainingConfig,
            {"max_steps": np.float64(10)},
            "TrainingConfig.max_steps must be an integer",
        ),
        (TrainingConfig, {"eval_every": 0}, "TrainingConfig.eval_every must be an integer >= 1"),
        (TrainingConfig, {"patience": -1}, "TrainingConfig.patience must be an integer >= 1"),
        (
            TrainingConfig,
            {"validation_fraction": 1.0},
            r"TrainingConfig.validation_fraction must be a number in \(0, 1\)",
        ),
        (TrainingConfig, {"validation_fraction": 0}, "TrainingConfig.validation_fraction must be"),
        (
            TrainingConfig,
            {"validation_fraction": NAN},
            "TrainingConfig.validation_fraction must be",
        ),
        (
            TrainingConfig,
            {"validation_fraction": True},
            "TrainingConfig.validation_fraction must be",
        ),
        (
            TrainingConfig,
            {"dtype": "float16"},
            "TrainingConfig.dtype must be one of 'float32', 'float64', got 'float16'",
        ),
    ],
)
def test_invalid_option_values_are_refused_by_name(cls, options, words):
    with pytest.raises(ValueError, match=words):
        cls(**options)


@pytest.fixture(scope="module")
def simulator_model():
    pm = pytest.importorskip("pymc")

    def simulate(rng, theta, size=None):
        return theta + rng.normal(size=2)

    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", simulate, theta, observed=np.zeros(2))
    return model


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"n_simulations": 0}, "n_simulations must be an integer >= 1, got 0"),
        ({"n_simulations": True}, "n_simulations must be an integer >= 1, got True"),
        ({"n_simulations": 10.0}, "n_simulations must be an integer >= 1, got 10.0"),
        ({"target_noise": -0.5}, "target_noise must be a number >= 0, got -0.5"),
        ({"target_noise": NAN}, "target_noise must be a number >= 0, got nan"),
        ({"target_noise": INF}, "target_noise must be a number >= 0, got inf"),
        ({"target_noise": True}, "target_noise must be a number >= 0, got True"),
        ({"embedding_size": 0}, "embedding_size must be an integer >= 1, got 0"),
        ({"embedding_size": np.float64(4)}, "embedding_size must be an integer >= 1"),
    ],
)
def test_cost_estimator_options_are_refused_before_simulating(simulator_model, options, words):
    from surrogate_hmc.estimator import CostEstimator

    with pytest.raises(ValueError, match=words):
        CostEstimator.fit(simulator_model, executor=None, progressbar=False, **options)
