"""Option values: NumPy numbers accepted and normalized to Python numbers.

The values refused, and their messages: tests/bad_input/test_options.py and
tests/bad_input/test_ace_and_simulations.py.
"""

import dataclasses
import json

import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.schedule import Schedule, SwitchTest
from surrogate_hmc.core.training import TrainingConfig

INF = float("inf")


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
