"""The exact correction: with it a wrong surrogate is exact, without it the answer is wrong."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogate_hmc  # noqa: F401  (enables 64-bit JAX)
from surrogate_hmc.core import HMCState, leapfrog, static_hmc_transition
from tests.helpers import assert_moments, moment_z_scores

MEAN = np.array([1.0, -2.0])
COV = np.array([[1.0, 0.9], [0.9, 1.0]]) * np.array([[1.0, 2.0], [2.0, 4.0]])
PRECISION = np.linalg.inv(COV)


def logdensity(q):
    d = q - MEAN
    return -0.5 * float(d @ PRECISION @ d)


def biased_force(q):
    """Gradient of a Gaussian with the wrong mean, wrong scales and no correlation."""
    return -(q - (MEAN + 0.8)) / (2.0 * np.diag(COV))


_trajectory = jax.jit(lambda q, p, eps, inv_mass, n: leapfrog(biased_force, q, p, eps, inv_mass, n))


def run_chain(seed, n_draws, corrected=True):
    rng = np.random.default_rng(seed)
    inverse_mass = np.diag(COV)

    def trajectory(q, p, eps, n):
        q1, p1 = _trajectory(q, p, eps, inverse_mass, n)
        return np.asarray(q1), np.asarray(p1)

    state = HMCState(MEAN.copy(), logdensity(MEAN))
    draws, accepted = np.empty((n_draws, 2)), 0
    for i in range(n_draws):
        n_steps = int(rng.integers(2, 8))
        if corrected:
            state, info = static_hmc_transition(
                rng, state, logdensity_fn=logdensity, trajectory_fn=trajectory,
                step_size=0.35, inverse_mass=inverse_mass, n_steps=n_steps,
            )  # fmt: skip
            accepted += info.is_accepted
        else:
            p = rng.standard_normal(2) / np.sqrt(inverse_mass)
            q, _ = trajectory(state.position, p, 0.35, n_steps)
            state = HMCState(q, logdensity(q))
        draws[i] = state.position
    return draws, accepted / n_draws


def test_wrong_surrogate_with_exact_correction_targets_the_posterior():
    chains = [run_chain(seed, 3000)[0] for seed in (1, 2)]
    assert_moments(np.stack(chains), MEAN, np.diag(COV))


def test_negative_control_without_correction_is_caught():
    chains = [run_chain(seed, 3000, corrected=False)[0] for seed in (1, 2)]
    z = moment_z_scores(np.stack(chains), MEAN, np.diag(COV))
    assert np.max(np.abs(z)) > 10, "the moment test failed to catch an uncorrected wrong sampler"


@pytest.mark.slow
def test_wrong_surrogate_with_exact_correction_long_run():
    chains = [run_chain(seed, 30000)[0] for seed in (3, 4, 5, 6)]
    assert_moments(np.stack(chains), MEAN, np.diag(COV), z_max=4.0)


def _reject_everything_check(trajectory, logdensity_fn):
    state = HMCState(np.zeros(2), 0.0)
    new, info = static_hmc_transition(
        np.random.default_rng(0), state, logdensity_fn=logdensity_fn, trajectory_fn=trajectory,
        step_size=0.1, inverse_mass=np.ones(2), n_steps=3,
    )  # fmt: skip
    assert new is state
    assert info.diverging and not info.is_accepted and info.acceptance_rate == 0.0
    assert info.energy_error == 0.0


def test_non_finite_surrogate_trajectory_is_rejected_as_divergent():
    def exploding(q, p, eps, n):
        return np.full_like(q, np.nan), p

    calls = []
    _reject_everything_check(exploding, lambda q: calls.append(q) or 0.0)
    assert calls == [], "no exact evaluation is spent on a non-finite proposal"


def test_momentum_too_large_to_square_is_rejected_without_a_warning():
    def overflowing(q, p, eps, n):
        return q + 1.0, np.full_like(p, 1e200)

    _reject_everything_check(overflowing, lambda q: 0.0)


def test_non_finite_exact_logdensity_at_the_proposal_is_rejected():
    def moving(q, p, eps, n):
        return q + 1.0, p

    _reject_everything_check(moving, lambda q: -np.inf)
    _reject_everything_check(moving, lambda q: np.nan)


def test_transition_reuses_the_state_log_density():
    calls = []

    def counting(q):
        calls.append(q)
        return -0.5 * float(q @ q)

    def trajectory(q, p, eps, n):
        q1, p1 = leapfrog(lambda x: -x, jnp.asarray(q), jnp.asarray(p), eps, jnp.ones(2), n)
        return np.asarray(q1), np.asarray(p1)

    state = HMCState(np.zeros(2), 0.0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        state, _ = static_hmc_transition(
            rng, state, logdensity_fn=counting, trajectory_fn=trajectory,
            step_size=0.3, inverse_mass=np.ones(2), n_steps=4,
        )  # fmt: skip
    assert len(calls) == 5
