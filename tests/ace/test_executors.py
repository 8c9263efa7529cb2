"""Simulations give the same results in this process, in local processes and on dask."""

import numpy as np
import pymc as pm
import pytest

from surrogate_hmc.simulation import SimulatorModel, default_executor, draw_prior, run_simulations
from tests.ace.simulators import linear_model

OBSERVED = np.zeros(4)


def simulate_with(executor):
    model = linear_model(OBSERVED)
    theta, inputs = draw_prior(model, 64, seed=5)
    return run_simulations(
        SimulatorModel.from_model(model), theta, inputs, executor=executor, seed=6,
        progressbar=False,
    )  # fmt: skip


def test_local_processes_match_this_process():
    serial = simulate_with(None)
    with default_executor() as executor:
        pooled = simulate_with(executor)
    np.testing.assert_array_equal(pooled.data, serial.data)
    np.testing.assert_array_equal(pooled.theta, serial.theta)


def test_dask_cluster_matches_this_process():
    distributed = pytest.importorskip("distributed")
    serial = simulate_with(None)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = simulate_with(client.get_executor())
    np.testing.assert_array_equal(on_dask.data, serial.data)


def test_this_process_runs_the_users_function_itself():
    # Not a pickled copy: a closure's side effects (counters, caches) are the user's own.
    calls = []

    def counting(rng, theta, size=None):
        calls.append(1)
        return np.asarray(theta, dtype=float) + rng.normal(size=2)

    with pm.Model() as model:
        theta = pm.Normal("theta", 0.0, 1.0, shape=2)
        pm.Simulator("x", counting, theta, observed=np.zeros(2))
    draws, inputs = draw_prior(model, 10, seed=1)
    run_simulations(
        SimulatorModel.from_model(model), draws, inputs, executor=None, seed=2, progressbar=False
    )
    assert len(calls) == 10
