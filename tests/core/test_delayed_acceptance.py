"""Delayed acceptance on top of surrogate NUTS: exact with the correction, wrong without it."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from surrogate_hmc.core.compiled import surrogate_nuts
from surrogate_hmc.core.delayed_acceptance import DAState, delayed_acceptance_transition
from tests.helpers import assert_moments, moment_z_scores

MEAN, SCALE = np.array([1.0, -1.0]), np.array([1.0, 2.0])


def exact_logdensity(q):
    return -0.5 * float(np.sum(((q - MEAN) / SCALE) ** 2))


class BiasedGaussian(eqx.Module):
    """Centred at 0 with scale 1.5: off by a standard deviation and the wrong shape."""

    def __call__(self, q):
        return -0.5 * jnp.sum((q / 1.5) ** 2)


def run_chains(n_draws, *, corrected, chains=4, seed=0, n_transitions=1):
    nuts = surrogate_nuts(BiasedGaussian(), n_transitions=n_transitions)
    rng = np.random.default_rng(seed)
    draws, infos = np.empty((chains, n_draws, 2)), []
    for chain in range(chains):
        position = rng.normal(size=2)
        state = DAState.start(position, exact_logdensity(position), nuts)
        for i in range(n_draws):
            if corrected:
                state, info = delayed_acceptance_transition(
                    rng, state, logdensity_fn=exact_logdensity, nuts=nuts, step_size=0.6,
                    inverse_mass=np.ones(2),
                )  # fmt: skip
                infos.append(info)
            else:
                surrogate, info = nuts.step(
                    int(rng.integers(2**31)), state.surrogate, 0.6, np.ones(2)
                )
                state = state._replace(position=info.position, surrogate=surrogate)
            draws[chain, i] = state.position
    return draws, infos


@pytest.mark.parametrize("n_transitions", [1, 2])
def test_biased_surrogate_is_exact_with_the_second_stage(n_transitions):
    draws, infos = run_chains(1500, corrected=True, n_transitions=n_transitions)
    assert_moments(draws, MEAN, SCALE**2)
    second_stage = np.array([info.second_stage_acceptance for info in infos])
    assert 0.2 < second_stage.mean() < 0.95, "the surrogate should be visibly wrong"
    n_logp = np.array([info.n_exact_logp for info in infos])
    assert set(np.unique(n_logp)) <= {0, 1}


def test_biased_surrogate_is_visibly_wrong_without_the_second_stage():
    """Negative control: the z-test that passes above catches the uncorrected chain."""
    draws, _ = run_chains(1500, corrected=False)
    assert np.max(np.abs(moment_z_scores(draws, MEAN, SCALE**2))) > 10


def test_no_exact_evaluation_when_nuts_stays_put():
    class Flat(eqx.Module):
        def __call__(self, q):
            return -1e6 * jnp.sum(q**2)  # every step from 0 is a huge energy error

    nuts = surrogate_nuts(Flat())
    calls = []

    def counted(q):
        calls.append(q)
        return exact_logdensity(q)

    state = DAState.start(np.zeros(2), exact_logdensity(np.zeros(2)), nuts)
    state, info = delayed_acceptance_transition(
        np.random.default_rng(1), state, logdensity_fn=counted, nuts=nuts, step_size=1.0,
        inverse_mass=np.ones(2),
    )  # fmt: skip
    assert info.diverging and info.n_exact_logp == 0 and not calls
    np.testing.assert_array_equal(state.position, np.zeros(2))
    assert info.energy_error == 0.0


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_non_finite_exact_log_density_is_rejected(bad):
    nuts = surrogate_nuts(BiasedGaussian())
    state = DAState.start(np.zeros(2), exact_logdensity(np.zeros(2)), nuts)
    for seed in range(5):
        new, info = delayed_acceptance_transition(
            np.random.default_rng(seed), state, logdensity_fn=lambda q: bad, nuts=nuts,
            step_size=0.6, inverse_mass=np.ones(2),
        )  # fmt: skip
        assert not info.is_accepted
        np.testing.assert_array_equal(new.position, state.position)
