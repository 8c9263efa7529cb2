"""The surrogate's programs compile while the exact phase runs, and the switch finds them.

Each case uses shapes (chains, dimension) no other test compiles, so whether the training step
and the surrogate kernel are traced again after a rehearsal says whether it helped.
"""

import logging
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from surrogate_hmc.engine import kernel
from surrogate_hmc.engine.progress import RunProgress
from surrogate_hmc.engine.rehearsal import Rehearsal
from surrogate_hmc.engine.run import (
    BUFFER_CAPACITY,
    CHUNK,
    EngineConfig,
    Evaluations,
    _ExactChains,
    _train,
    run,
)
from surrogate_hmc.engine.target import Target

CHAINS = 3


def traced_functions(caplog, action) -> str:
    """The messages of every function this thread traced for ``jit`` while ``action()`` ran."""
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="jax")
    jax.config.update("jax_log_compiles", True)
    try:
        action()
    finally:
        jax.config.update("jax_log_compiles", False)
    this_thread = threading.get_ident()
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.thread == this_thread and "Finished tracing" in record.getMessage()
    )


def gaussian(dim: int):
    scales = jnp.arange(1.0, dim + 1.0)

    def logdensity(q):
        return -0.5 * jnp.sum((q / scales) ** 2)

    return logdensity, np.asarray(scales)


@pytest.mark.parametrize(("rehearsed", "dim"), [(True, 9), (False, 11)])
def test_the_switch_finds_the_training_step_and_surrogate_kernel_compiled(caplog, rehearsed, dim):
    exact, scales = gaussian(dim)
    config = EngineConfig(chains=CHAINS, progressbar=False)
    starts = np.random.default_rng(0).normal(size=(CHAINS, dim))
    if rehearsed:
        rehearsal = Rehearsal(exact, starts, config, BUFFER_CAPACITY, CHUNK)
        rehearsal.wait()
        assert rehearsal.error is None
    positions = np.random.default_rng(1).normal(size=(1500, dim)) * scales
    evaluations = Evaluations(
        positions, -0.5 * np.sum((positions / scales) ** 2, axis=1), -positions / scales**2
    )
    surrogate = None

    def train():
        nonlocal surrogate
        surrogate, _ = _train(evaluations, config, jax.random.key(2), iteration=50)

    trained = traced_functions(caplog, train)
    state = kernel.start_tuning(
        kernel.init(jnp.asarray(starts), surrogate.logdensity, exact),
        jnp.full(CHAINS, 0.3),
        config.target_accept,
    )

    def first_chunk():
        chunk = kernel.run_chunk(
            jax.random.key(3), state, surrogate.logdensity, exact, jnp.eye(dim), jnp.bool_(True),
            CHUNK, config.target_accept, config.max_tree_depth, jnp.int32(1),
        )  # fmt: skip
        jax.block_until_ready(chunk)

    sampled = traced_functions(caplog, first_chunk)
    assert ("optimizer_chunk" in trained) is not rehearsed, trained
    assert ("run_chunk" in sampled) is not rehearsed, sampled


def test_a_rehearsal_that_fails_keeps_its_error_and_costs_nothing_else():
    def untraceable(q):
        raise RuntimeError("this log-density cannot be traced")

    rehearsal = Rehearsal(untraceable, np.zeros((CHAINS, 2)), EngineConfig(chains=CHAINS),
                          BUFFER_CAPACITY, CHUNK)  # fmt: skip
    rehearsal.wait()
    assert isinstance(rehearsal.error, RuntimeError)
    assert "cannot be traced" in str(rehearsal.error)


def test_a_switched_run_reports_its_wait_for_the_rehearsal():
    exact, _ = gaussian(4)
    target = Target.from_logdensity(exact, jnp.zeros(4))
    config = EngineConfig(draws=100, tune=300, chains=2, cost_gate=False, progressbar=False)
    report = run(target, config, seed=4).report
    assert report.decision == "switched"
    assert set(report.seconds) == {"exact", "compilation", "training", "pilot", "surrogate"}


def test_the_exact_side_is_priced_by_the_chunks_timed_while_nothing_compiled():
    exact, _ = gaussian(3)
    starts = np.random.default_rng(1).normal(size=(CHAINS, 3))
    config = EngineConfig(chains=CHAINS, progressbar=False)
    with RunProgress(1000, CHAINS, enabled=False) as progress:
        chains = _ExactChains(exact, starts, config, progress)
    # The first chunk compiles (never counted); two ran beside the rehearsal, three alone.
    chains.seconds = [60.0, 9.0, 8.0, 1.0, 2.0, 3.0]
    chains.timed_alone = [False, False, False, True, True, True]
    assert chains.seconds_per_iteration() == pytest.approx(2.0 / CHUNK)
    chains.seconds, chains.timed_alone = chains.seconds[:3], chains.timed_alone[:3]
    assert chains.seconds_per_iteration() == pytest.approx(8.5 / CHUNK)  # none alone: all


def test_each_chunk_notes_whether_it_ran_alone():
    exact, _ = gaussian(3)
    starts = np.random.default_rng(1).normal(size=(CHAINS, 3))
    compiling = [True]
    config = EngineConfig(chains=CHAINS, progressbar=False)
    with RunProgress(1000, CHAINS, enabled=False) as progress:
        chains = _ExactChains(exact, starts, config, progress, alone=lambda: not compiling[0])
        for i, key in enumerate(jax.random.split(jax.random.key(0), 3)):
            compiling[0] = i < 2
            chains.tune(key)
    assert chains.timed_alone == [False, False, True]
