"""Simulations give the same results in this process, in local processes and on dask."""

import numpy as np
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
