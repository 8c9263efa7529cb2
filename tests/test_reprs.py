"""What `print` shows of a surrogate, a cost estimator and a training record: one short line."""

import numpy as np
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.core.lifecycle import PilotRecord, TrainingRecord
from surrogate_hmc.core.trained import network_shapes

SHORT = 300


def assert_short(text: str) -> None:
    assert "\n" not in text and len(text) < SHORT, (len(text), text)
    assert "array(" not in text and "[[" not in text, text


def trained_surrogate(variables, inverse_mass) -> shmc.TrainedSurrogate:
    network = shmc.NetworkConfig(width=128)
    dim = sum(int(np.prod(shape)) for _, shape in variables)
    return shmc.TrainedSurrogate(
        kind="logp",
        variables=variables,
        network=network,
        arrays=[np.zeros(shape) for shape in network_shapes(network, dim, "logp")],
        exact_prior=True,
        step_size=0.42137,
        inverse_mass=inverse_mass,
        trajectory_lengths=np.ones(12),
    )


def test_a_trained_surrogate_shows_its_settings_not_its_weights():
    trained = trained_surrogate([("beta", (3,)), ("sigma", ())], np.eye(4))
    text = repr(trained)
    assert_short(text)
    for expected in ("kind='logp'", "beta (3,)", "sigma ()", "width=128", "exact_prior=True",
                     "step_size=0.421", "inverse_mass=<dense (4, 4)>",
                     "trajectory_lengths=<12 values>"):  # fmt: skip
        assert expected in text, (expected, text)
    assert str(trained) == text
    # The weights (tens of thousands of numbers) are what the default repr printed.
    assert sum(a.size for a in trained.arrays) > 10_000


def test_a_surrogate_of_many_variables_names_the_first_few():
    variables = [(f"z{i}", (2,)) for i in range(30)]
    text = repr(trained_surrogate(variables, np.ones(60)))
    assert_short(text)
    assert "z7 (2,)" in text and "z8" not in text and "and 22 more" in text
    assert "inverse_mass=<diagonal, 60 values>" in text


def test_a_cost_estimator_shows_its_fit_not_its_weights():
    estimator = shmc.CostEstimator(
        variables=(("theta", (2,)),),
        data_shape=(50, 3),
        iid_trials=True,
        distance={"name": "mmd", "bandwidth": 1.23456},
        network=shmc.NetworkConfig(width=64),
        embedding_size=16,
        arrays=tuple(np.zeros((64, 64)) for _ in range(6)),
        n_simulations=1996,
        n_failed=4,
        validation_error=0.41234,
        train_losses=np.ones(50),
        validation_losses=np.ones(50),
    )
    text = repr(estimator)
    assert_short(text)
    for expected in ("theta (2,)", "data_shape=(50, 3)", "distance=mmd(bandwidth=1.23)",
                     "iid_trials=True", "width=64", "n_simulations=1996", "n_failed=4",
                     "validation_error=0.412", "train_losses=<50 values>"):  # fmt: skip
        assert expected in text, (expected, text)


LOSSES = {"train_losses": np.ones(120), "validation_losses": np.ones(120)}
PASSED = PilotRecord(0.86, 0.5, 0.98, switched=True, spread=0.9, tail_gap=0.2, iterations=30)
FAILED = PilotRecord(0.31, 0.5, 0.62, switched=False, spread=0.9, tail_gap=0.2, iterations=30)
CONFINED = PilotRecord(0.0, 0.0, None, switched=False, spread=0.05, tail_gap=0.1)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            TrainingRecord(1000, 16384, 0.0312, 0.5, **LOSSES, seconds=12.3, pilot=PASSED),
            ["iteration=1000", "n_points=16384", "validation_error=0.0312 (max 0.5)",
             "train_losses=<120 values>",
             "validation_losses=<120 values>", "seconds=12.3", "outcome='switched'"],
        ),
        (
            TrainingRecord(1000, 16384, 0.0312, 0.5, **LOSSES, seconds=12.3, pilot=FAILED),
            ["failed its pilot: acceptance 0.31 (needed 0.50), second-stage acceptance 0.62"],
        ),
        (
            TrainingRecord(1000, 16384, 0.0312, 0.5, **LOSSES, seconds=12.3, pilot=CONFINED),
            ["failed its pilot: the surrogate alone spreads over 0.05"],
        ),
        (
            TrainingRecord(50, 10),
            ["n_points=10", "validation_error=None", "outcome='too few points to train'"],
        ),
        (
            TrainingRecord(250, 9000, 0.04, 0.5, **LOSSES, refit=True),
            ["refit=True", "outcome='refitted'"],
        ),
    ],
)  # fmt: skip
def test_a_training_record_is_one_line_without_its_loss_curves(record, expected):
    text = repr(record)
    assert_short(text)
    assert text.startswith("TrainingRecord(") and "given" not in text
    for part in expected:
        assert part in text, (part, text)


@pytest.mark.parametrize(
    ("pilot", "piloted"),
    [
        (PASSED, "piloted: switched"),
        (FAILED, "piloted: failed its pilot: acceptance 0.31 (needed 0.50)"),
        (None, "pilot pending"),
    ],
)
def test_a_given_surrogate_reads_as_piloted_not_as_trained_on_nothing(pilot, piloted):
    text = repr(TrainingRecord(50, n_points=0, given=True, pilot=pilot))
    assert_short(text)
    assert text.startswith("TrainingRecord(iteration=50, given=True, outcome='given surrogate, ")
    assert piloted in text
    for trained_only in ("n_points", "validation_error", "losses"):
        assert trained_only not in text


@pytest.mark.parametrize(
    ("pilot", "expected"),
    [
        (PASSED, ["switched=True", "acceptance=0.86", "required=0.5",
                  "second_stage_acceptance=0.98", "spread=0.9", "tail_gap=0.2",
                  "iterations=30"]),
        (FAILED, ["switched=False", "acceptance=0.31", "second_stage_acceptance=0.62"]),
        (CONFINED, ["switched=False", "reason=\"the surrogate alone spreads over 0.05",
                    "spread=0.05", "iterations=0"]),
    ],
)  # fmt: skip
def test_a_pilot_record_says_what_decided_it(pilot, expected):
    text = repr(pilot)
    assert_short(text)
    for part in expected:
        assert part in text, (part, text)
    if pilot is CONFINED:  # its acceptance was never measured
        assert "acceptance=" not in text
