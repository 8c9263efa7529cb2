"""The kernel is frozen during the draws: step size, metric and network, first draw to last.

Adapting any of them after tuning would make the draws a chain with a changing kernel, which
need not target the posterior. Each negative control leaks one of the three into the draws.
Draws taken by exact NUTS instead (``phase`` 0) are held to the same: PyMC's step size and
metric, fixed too.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import numpy as np
import pymc as pm
import pytest

import surrogate_hmc as shmc
from surrogate_hmc.step_methods.kernel import SurrogateKernel
from surrogate_hmc.step_methods.pymc_internals import inverse_mass_diagonal
from tests.helpers import sample_stat

DRAWS = 100


class Draws(NamedTuple):
    """What the kernel moved with at each draw."""

    phases: np.ndarray
    """The ``phase`` sample stat: 1 for the surrogate kernel, 0 for exact NUTS."""
    step_sizes: np.ndarray
    """The ``step_size`` sample stat."""
    metrics: list[np.ndarray]
    """The surrogate kernel's inverse mass matrix, as each draw began."""
    exact_metrics: list[np.ndarray]
    """Exact NUTS's (PyMC's potential), as each draw began."""
    networks: list[list[np.ndarray]]
    """The surrogate's arrays, as each draw began."""


def network_arrays(surrogate) -> list[np.ndarray]:
    return [np.array(leaf) for leaf in jax.tree.leaves(eqx.filter(surrogate, eqx.is_array))]


def sample_recording(seed: int = 1):
    """A short run whose draws come from the surrogate; what its kernel was at each draw."""
    metrics, exact_metrics, networks = [], [], []

    def recording(q0):
        if not step.tune:
            kernel = step.chain.kernel
            assert kernel is not None, "the draws should come from the surrogate kernel"
            metrics.append(np.array(SurrogateKernel.inverse_mass(kernel, step.potential)))
            exact_metrics.append(inverse_mass_diagonal(step.potential).copy())
            networks.append(network_arrays(kernel.surrogate))
        return astep(q0)

    with pm.Model():
        pm.MvNormal("x", mu=np.array([1.0, -1.0]), cov=np.array([[1.0, 0.8], [0.8, 1.0]]))
        step = shmc.SurrogateHMC(cost_gate=False, schedule=shmc.Schedule(start=50, every=50))
        astep, step.astep = step.astep, recording
        idata = pm.sample(
            step=step, tune=200, draws=DRAWS, chains=1, random_seed=seed, progressbar=False,
            compute_convergence_checks=False,
        )  # fmt: skip
    phases = sample_stat(idata, "phase")[0]
    assert set(np.unique(phases)) <= {0, 1} and np.mean(phases == 1) > 0.5, phases
    assert len(metrics) == DRAWS
    step_sizes = sample_stat(idata, "step_size")[0]
    return step, Draws(phases, step_sizes, metrics, exact_metrics, networks)


def assert_frozen(draws: Draws) -> None:
    """Fail unless every draw moved with the first draw's step size, metrics and network.

    The step size is compared within each kernel (``phase``): the surrogate's and exact NUTS's
    are adapted apart.
    """
    assert np.sum(draws.phases == 1) > 1 and len(draws.metrics) == len(draws.phases)
    for phase in np.unique(draws.phases):
        step_sizes = draws.step_sizes[draws.phases == phase]
        np.testing.assert_array_equal(
            step_sizes, step_sizes[0], err_msg=f"the step size of phase {phase} changed"
        )
    for i, (metric, exact_metric, network) in enumerate(
        zip(draws.metrics, draws.exact_metrics, draws.networks, strict=True)
    ):
        np.testing.assert_array_equal(
            metric, draws.metrics[0], err_msg=f"the metric changed by draw {i}"
        )
        np.testing.assert_array_equal(
            exact_metric, draws.exact_metrics[0], err_msg=f"NUTS's metric changed by draw {i}"
        )
        assert len(network) == len(draws.networks[0]), f"the network changed by draw {i}"
        for array, first in zip(network, draws.networks[0], strict=True):
            np.testing.assert_array_equal(array, first, err_msg=f"the network changed by draw {i}")


def test_the_kernel_is_frozen_during_the_draws():
    step, draws = sample_recording()
    assert_frozen(draws)
    # The metric of a real run: NUTS on a log-density surrogate moves with its own dense one.
    kernel_metric = step.chain.kernel.inverse_mass
    assert kernel_metric is not None and kernel_metric.shape == (2, 2)
    assert kernel_metric[0, 1] != 0, "the metric should have learned the correlation"
    np.testing.assert_array_equal(draws.metrics[0], kernel_metric)
    np.testing.assert_array_equal(step.trained_surrogate.inverse_mass, kernel_metric)


def _step_size_adapts(step):
    # The kernel called as if still tuning: the step size keeps adapting.
    def leaky(self, state, *args, tune, **kwargs):
        return step(self, state, *args, tune=True, **kwargs)

    return leaky


def _metric_moves(step):
    def leaky(self, state, *args, tune, **kwargs):
        if not tune and state.inverse_mass is not None:
            state.inverse_mass = state.inverse_mass * 1.001
        return step(self, state, *args, tune=tune, **kwargs)

    return leaky


def _network_moves(step):
    def leaky(self, state, *args, tune, **kwargs):
        if not tune:
            nudge = lambda x: x * 1.001 if eqx.is_inexact_array(x) else x  # noqa: E731
            state.surrogate = jax.tree.map(nudge, state.surrogate)
        return step(self, state, *args, tune=tune, **kwargs)

    return leaky


@pytest.mark.parametrize(
    "leak",
    [_step_size_adapts, _metric_moves, _network_moves],
    ids=["step size adapts", "metric moves", "network moves"],
)
def test_the_frozen_check_catches_a_kernel_that_changes_during_the_draws(leak, monkeypatch):
    """Negative control: the same run with one part of the kernel changing fails the check."""
    monkeypatch.setattr(SurrogateKernel, "step", leak(SurrogateKernel.step))
    _, draws = sample_recording()
    with pytest.raises(AssertionError, match="changed"):
        assert_frozen(draws)
