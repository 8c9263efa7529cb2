"""Models with an Op that has no JAX implementation: their log-density runs on the host."""

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.engine import EngineConfig, Target, run
from surrogate_hmc.engine.host import host_logdensity
from tests.engine.test_sample import conjugate_regression
from tests.helpers import SlowTerm, assert_moments, posterior_array, sample_stat


def test_one_host_call_evaluates_every_chain_and_its_gradient():
    calls = []

    def logp(x):
        calls.append("logp")
        return -0.5 * float(x @ x)

    def logp_and_gradient(x):
        calls.append("both")
        return -0.5 * float(x @ x), -x

    logdensity = host_logdensity(logp, logp_and_gradient, dim=3)
    positions = jnp.arange(12.0).reshape(4, 3)
    values, gradients = jax.jit(jax.vmap(jax.value_and_grad(logdensity)))(positions)
    np.testing.assert_allclose(values, -0.5 * np.sum(np.asarray(positions) ** 2, axis=1))
    np.testing.assert_allclose(gradients, -positions)
    assert calls == ["both"] * 4  # no separate log-density call for the gradient
    calls.clear()
    np.testing.assert_allclose(jax.jit(jax.vmap(logdensity))(positions), values)
    assert calls == ["logp"] * 4


def host_regression():
    """The conjugate regression with a term PyTensor cannot turn into JAX (zero, with zero
    gradient), in the log-density and in a deterministic."""
    model, mean, covariance = conjugate_regression()
    with model:
        pm.Potential("python_term", SlowTerm()(model["b"]))
        pm.Deterministic("python_zero", SlowTerm()(model["b"]))
    return model, mean, covariance


# PyTensor compiles the host functions with numba where it can, and says that this Op falls back
# to object mode.
NUMBA_OBJECT_MODE = "ignore:Numba will use object mode:UserWarning"


@pytest.mark.filterwarnings(NUMBA_OBJECT_MODE)
def test_a_model_without_jax_is_sampled_exactly_through_host_calls():
    """Exact NUTS, the training and the delayed-acceptance kernel all call the host."""
    model, mean, covariance = host_regression()
    with model:
        idata = shmc.sample(draws=1000, tune=500, random_seed=4, progressbar=False, cost_gate=False)
    assert idata["posterior"].attrs["surrogate_decision"] == "switched"
    assert np.all(sample_stat(idata, "phase") == 1)
    np.testing.assert_array_equal(idata["posterior"]["python_zero"], 0.0)
    assert_moments(posterior_array(idata, ["b"]), mean, np.diag(covariance))


@pytest.mark.filterwarnings(NUMBA_OBJECT_MODE)
def test_a_cheap_model_without_jax_is_left_to_nutpie():
    model, mean, covariance = host_regression()
    with model:
        idata = shmc.sample(draws=1000, tune=500, random_seed=5, progressbar=False)
    assert idata["posterior"].attrs["surrogate_decision"] == "stayed exact: surrogate would not pay"
    assert_moments(posterior_array(idata, ["b"]), mean, np.diag(covariance))


def test_exact_nuts_on_the_host_evaluates_only_the_trees_steps():
    """Exact NUTS builds the chains' trees in turn on a host log-density: the host evaluates
    the starts and each tree's own leapfrog steps, no step of a tree already finished."""
    calls = []

    def logp(x):
        return -0.5 * float(x @ x)

    def logp_and_gradient(x):
        calls.append(1)
        return -0.5 * float(x @ x), -x

    target = Target(host_logdensity(logp, logp_and_gradient, dim=3), np.zeros(3), on_host=True)
    config = EngineConfig(draws=100, tune=60, chains=3, cost_gate=False,
                                      progressbar=False)  # fmt: skip
    result = run(target, config, seed=2)
    assert result.report.decision == "stayed exact: run too short"
    steps = result.report.exact_gradients  # the starts once, and every tree's steps
    assert steps > 3 * 160
    assert len(calls) == steps + 2 * 3  # and before: the initial position and the jittered starts
