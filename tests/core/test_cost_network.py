"""Distances and the ACE cost network: the properties sampling relies on."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surrogate_hmc.core.cost_network import (
    augmented_targets,
    build_cost_network,
    fit_cost,
    nearest_rows,
)
from surrogate_hmc.core.distances import energy_score, mmd, resolve
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.training import TrainingConfig

rng = np.random.default_rng(0)
TRIALS = jnp.asarray(rng.normal(size=(30, 2)))


@pytest.mark.parametrize("distance", [mmd, energy_score])
def test_trial_distances_ignore_the_order_of_trials(distance):
    shuffled = TRIALS[np.random.default_rng(1).permutation(30)]
    np.testing.assert_allclose(distance(TRIALS, shuffled), distance(TRIALS, TRIALS), atol=1e-12)
    assert distance(TRIALS + 2.0, TRIALS) > distance(TRIALS, TRIALS) + 0.1


def test_mmd_of_a_set_with_itself_is_zero():
    assert float(mmd(TRIALS, TRIALS)) == pytest.approx(0.0, abs=1e-12)


def test_iid_embedding_is_permutation_invariant():
    network = build_cost_network(2, (30, 2), True, NetworkConfig(width=8), 4, key=jax.random.key(0))
    shuffled = TRIALS[np.random.default_rng(2).permutation(30)]
    theta = jnp.array([0.3, -0.1])
    np.testing.assert_allclose(network(theta, shuffled), network(theta, TRIALS), rtol=1e-12)


def test_cost_fit_with_mmd_learns_where_the_data_are():
    # Trials ~ N(theta, 1) for a scalar theta: the expected MMD to data centred at 0.5 is
    # smallest near theta = 0.5.
    theta = rng.uniform(-2, 2, size=(600, 1))
    sims = theta[:, None, :] + rng.normal(size=(600, 20, 1))
    distance, settings = resolve("mmd", sims)
    assert settings["bandwidth"] > 0
    targets = augmented_targets(sims, noise=0.5, rng=rng)
    fit = fit_cost(
        theta, sims, targets, distance=distance, iid_trials=True, network=NetworkConfig(width=32),
        training=TrainingConfig(max_steps=800, batch_size=64), embedding_size=8,
        key=jax.random.key(1),
    )  # fmt: skip
    observed = jnp.asarray(0.5 + rng.normal(size=(20, 1)))
    grid = np.linspace(-2, 2, 41)
    costs = np.array([float(fit.network(jnp.array([g]), observed)) for g in grid])
    assert abs(grid[np.argmin(costs)] - 0.5) < 0.4
    assert np.all(costs > 0)


def test_nearest_rows_are_the_nearest_and_never_the_point_itself():
    points = np.random.default_rng(3).normal(size=(700, 5))
    points[650] = points[3]  # a distinct row at the same place may be a neighbour
    found = nearest_rows(points, 600, 8)
    assert found.shape == (700, 8) and found.max() < 600
    assert not np.any(found[:600] == np.arange(600)[:, None])
    squared = np.sum((points[:, None, :] - points[None, :600, :]) ** 2, axis=-1)
    squared[np.arange(600), np.arange(600)] = np.inf
    expected = np.sort(np.argsort(squared, axis=1)[:, :8], axis=1)
    np.testing.assert_array_equal(np.sort(found, axis=1), expected)
    assert 3 in found[650]


def test_too_few_simulations_get_a_clear_error():
    theta = np.zeros((2, 1))
    targets = augmented_targets(theta, noise=0.0, rng=rng)
    with pytest.raises(ValueError, match="simulations leave 1 to train on"):
        fit_cost(
            theta, theta, targets, distance=resolve("mse", theta)[0],
            iid_trials=False, network=NetworkConfig(width=4), training=TrainingConfig(),
            embedding_size=2, key=jax.random.key(0),
        )  # fmt: skip


def test_unknown_distance_is_refused():
    with pytest.raises(ValueError, match="distance must be one of"):
        resolve("wasserstein", np.zeros((3, 2)))
