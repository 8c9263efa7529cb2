import jax
import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core import (
    NetworkConfig,
    Schedule,
    SwitchTest,
    TrainingBuffer,
    TrainingConfig,
    fit_network,
)

FAST = TrainingConfig(max_steps=1500)


def gradient_field(x):
    return -x * np.array([1.0, 10.0, 100.0]) + np.sin(x)


def test_network_learns_a_gradient_field():
    x = np.random.default_rng(0).normal(size=(1500, 3))
    result = fit_network(
        x, gradient_field(x), network=NetworkConfig(width=64), training=FAST, key=jax.random.key(0)
    )
    assert result.validation_error < 0.05
    x_new = np.random.default_rng(1).normal(size=(200, 3))
    prediction = np.asarray(jax.vmap(result.network)(x_new))
    relative = np.linalg.norm(prediction - gradient_field(x_new)) / np.linalg.norm(
        gradient_field(x_new)
    )
    assert relative < 0.05


def test_non_finite_rows_are_ignored():
    x = np.random.default_rng(0).normal(size=(600, 2))
    y = -x.copy()
    y[::7] = np.nan
    x[3::11] = np.inf
    result = fit_network(
        x, y, network=NetworkConfig(width=32), training=FAST, key=jax.random.key(0)
    )
    assert np.isfinite(result.validation_error) and result.validation_error < 0.1


def test_diverging_training_reports_a_large_error_and_returns_a_finite_network():
    x = np.random.default_rng(0).normal(size=(600, 2))
    result = fit_network(
        x, -x, network=NetworkConfig(width=32),
        training=TrainingConfig(learning_rate=1e6, max_steps=500), key=jax.random.key(0),
    )  # fmt: skip
    assert not result.validation_error < 0.3
    assert np.all(np.isfinite(np.asarray(result.network(x[0]))))


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="At least 4 finite"):
        fit_network(
            np.zeros((3, 2)), np.zeros((3, 2)), network=NetworkConfig(), training=FAST,
            key=jax.random.key(0),
        )  # fmt: skip


def test_buffer_keeps_the_most_recent_finite_evaluations():
    buffer = TrainingBuffer(capacity=3, dim=2)
    for i in range(5):
        buffer.add(np.full(2, float(i)), -float(i), np.full(2, -float(i)))
    assert not buffer.add(np.zeros(2), np.nan, np.zeros(2))
    assert not buffer.add(np.zeros(2), 0.0, np.array([0.0, np.inf]))
    assert len(buffer) == 3 and buffer.n_dropped == 2 and buffer.n_seen == 5
    np.testing.assert_array_equal(buffer.positions()[:, 0], [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(buffer.logps(), [-2.0, -3.0, -4.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: NetworkConfig(width=0),
        lambda: NetworkConfig(depth=1.5),
        lambda: NetworkConfig(activation="relu"),
        lambda: TrainingConfig(learning_rate=-1.0),
        lambda: TrainingConfig(batch_size=0),
        lambda: TrainingConfig(validation_fraction=1.0),
        lambda: Schedule(start=0),
        lambda: Schedule(start=100, stop=50),
        lambda: Schedule(collect_from=100, start=100),
        lambda: SwitchTest(max_validation_error=0.0),
        lambda: SwitchTest(min_acceptance_ratio=1.5),
        lambda: SwitchTest(pilot_iterations=0),
    ],
)
def test_invalid_configuration_is_refused_on_construction(make):
    with pytest.raises(ValueError):
        make()


def test_schedule_defaults_scale_with_tune():
    assert Schedule().plan(1000).training_iterations == (200, 300, 400, 500)
    assert Schedule().plan(400).training_iterations == (150, 200)
    assert Schedule().plan(100).training_iterations == ()
    assert Schedule(start=20, every=10, stop=45).plan(1000) == (10, (20, 30, 40))
