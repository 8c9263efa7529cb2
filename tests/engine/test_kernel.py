"""The engine's kernel: exact with a wrong surrogate, visibly wrong without its correction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surrogate_hmc.engine import kernel
from tests.helpers import assert_moments, moment_z_scores

COVARIANCE = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 2.0]])
PRECISION = jnp.asarray(np.linalg.inv(COVARIANCE))
MEAN = np.array([1.0, -2.0, 0.5])


def exact(q):
    d = q - MEAN
    return -0.5 * d @ PRECISION @ d


def biased(q):
    """A surrogate 1.6 times too wide and off-centre by half a standard deviation."""
    d = q - MEAN - 0.5
    return -0.5 * d @ PRECISION @ d / 1.6


def sample(surrogate, target, seed=0, chains=4, draws=2500, transitions=1):
    key_tune, key_draws = jax.random.split(jax.random.key(seed))
    state = kernel.init(jnp.tile(jnp.asarray(MEAN), (chains, 1)), surrogate, target)
    state = kernel.start_tuning(state, jnp.full(chains, 0.5), 0.8)
    inverse_mass = jnp.asarray(COVARIANCE)
    transitions = jnp.int32(transitions)
    state, _, _, _ = kernel.run_chunk(
        key_tune, state, surrogate, target, inverse_mass, jnp.bool_(True), 300, 0.8, 10,
        transitions,
    )  # fmt: skip
    frozen = kernel.tuned_step_size(state, 0.8)
    state, positions, _, info = kernel.run_chunk(
        key_draws, state, surrogate, target, inverse_mass, jnp.bool_(False), draws, 0.8, 10,
        transitions,
    )  # fmt: skip
    assert np.all(np.asarray(info.step_size) == np.asarray(frozen)), "the draws' kernel moved"
    return np.swapaxes(np.asarray(positions), 0, 1), info


@pytest.mark.parametrize(("seed", "transitions"), [(0, 1), (1, 1), (2, 4)])
def test_biased_surrogate_is_exact_with_the_correction(seed, transitions):
    """One NUTS transition on the surrogate per exact correction, or several."""
    draws, info = sample(biased, exact, seed, transitions=transitions)
    assert 0.2 < float(np.mean(info.second_stage_acceptance)) < 0.99
    assert_moments(draws, MEAN, np.diag(COVARIANCE))


@pytest.mark.parametrize("transitions", [1, 4])
def test_negative_control_without_the_correction_the_test_fails(transitions):
    """The same kernel, corrected by the surrogate itself (no exact model), is caught."""
    draws, _ = sample(biased, biased, transitions=transitions)
    z = moment_z_scores(draws, MEAN, np.diag(COVARIANCE))
    assert np.max(np.abs(z)) > 10


def test_several_transitions_per_correction_cost_one_exact_log_density():
    """From one tuned state, four surrogate transitions per draw take four times the leapfrog
    steps of one, for one exact correction each."""
    chains, one = 4, jnp.int32(1)
    state = kernel.init(jnp.tile(jnp.asarray(MEAN), (chains, 1)), exact, exact)
    state = kernel.start_tuning(state, jnp.full(chains, 0.5), 0.8)
    inverse_mass = jnp.asarray(COVARIANCE)
    tune_key, one_key, four_key = jax.random.split(jax.random.key(3), 3)
    state, _, _, _ = kernel.run_chunk(
        tune_key, state, exact, exact, inverse_mass, jnp.bool_(True), 300, 0.8, 10, one
    )
    steps = {}
    for key, transitions in ((one_key, one), (four_key, jnp.int32(4))):
        _, _, _, info = kernel.run_chunk(
            key, state, exact, exact, inverse_mass, jnp.bool_(False), 500, 0.8, 10, transitions
        )
        assert np.all(np.asarray(info.second_stage_acceptance) == 1.0)
        steps[int(transitions)] = float(np.mean(info.n_steps))
    assert 3.6 < steps[4] / steps[1] < 4.4


def test_a_perfect_surrogate_is_always_accepted():
    _, info = sample(exact, exact, draws=200)
    assert np.all(np.asarray(info.second_stage_acceptance) == 1.0)
    assert np.all(np.asarray(info.model_logp) <= 0.0)


def test_non_finite_exact_log_density_is_rejected():
    def holed(q):
        return jnp.where(q[0] > MEAN[0] + 1.0, jnp.nan, exact(q))

    draws, _ = sample(exact, holed, draws=500)
    assert np.all(draws[..., 0] <= MEAN[0] + 1.0)


def test_exact_nuts_on_a_recording_log_density_reports_every_leapfrog_point():
    seen = []
    recorded = kernel.recording(exact, lambda *row: seen.append(row))
    chains = kernel.init_nuts(jnp.tile(jnp.asarray(MEAN), (3, 1)), recorded)
    state = kernel.start_tuning(chains, jnp.full(3, 0.5), 0.8)
    state, positions, gradients, info = kernel.run_chunk(
        jax.random.key(0), state, None, recorded, jnp.eye(3), jnp.bool_(True), 20, 0.8, 10,
        jnp.int32(1),
    )  # fmt: skip
    jax.effects_barrier()
    points = np.stack([row[0] for row in seen])
    values = np.array([row[1] for row in seen])
    slopes = np.stack([row[2] for row in seen])
    # every leapfrog point (batched chains also evaluate points they then discard) and start
    assert len(np.unique(points, axis=0)) >= int(np.sum(info.n_steps))
    np.testing.assert_allclose(values, jax.vmap(exact)(points), rtol=1e-12)
    np.testing.assert_allclose(slopes, jax.vmap(jax.grad(exact))(points), rtol=1e-12, atol=1e-12)
    draws = np.asarray(positions).reshape(-1, 3)
    assert {tuple(q) for q in draws} <= {tuple(q) for q in points}
    np.testing.assert_allclose(np.asarray(gradients)[-1], jax.vmap(jax.grad(exact))(positions[-1]))


def test_chains_in_turn_draw_as_in_lockstep_and_evaluate_only_their_own_steps():
    """Exact NUTS with the trees built one chain after the other (for a log-density on the
    host) makes the draws the batched kernel makes, and evaluates each leapfrog point once."""
    runs = {}
    for in_turn in (False, True):
        seen = []
        recorded = kernel.recording(exact, lambda *row, seen=seen: seen.append(row))
        chains = kernel.init_nuts(jnp.tile(jnp.asarray(MEAN), (3, 1)), recorded)
        state = kernel.start_tuning(chains, jnp.full(3, 0.5), 0.8)
        _, positions, _, info = kernel.run_chunk(
            jax.random.key(1), state, None, recorded, jnp.eye(3), jnp.bool_(True), 20, 0.8, 10,
            jnp.int32(1), in_turn,
        )  # fmt: skip
        jax.effects_barrier()
        runs[in_turn] = (np.asarray(positions), len(seen) - 3, int(np.sum(info.n_steps)))
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-12, atol=1e-12)
    evaluated, steps = runs[True][1], runs[True][2]
    assert evaluated == steps
    assert runs[False][1] > steps  # lockstep also evaluates steps of finished trees
