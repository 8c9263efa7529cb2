"""The exact side: nutpie's chains, paused where the engine trains, and their rows."""

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.engine.exact import NutpieChains, one_by_one
from surrogate_hmc.engine.progress import RunProgress
from surrogate_hmc.engine.target import Target
from tests.engine.test_sample import COVARIANCE, gaussian, run_gaussian

TARGET = Target.from_logdensity(gaussian(COVARIANCE), {"x": jnp.zeros(4)})
VALUE_AND_GRAD = one_by_one(jax.jit(jax.value_and_grad(TARGET.logdensity)))
CHAINS = 3


def rows_after(pauses, seed=5):
    with RunProgress(400, CHAINS, enabled=False) as progress:
        chains = NutpieChains(
            TARGET, CHAINS, VALUE_AND_GRAD, tune=200, draws=200, seed=seed, target_accept=0.8,
            max_tree_depth=10, progress=progress,
        )  # fmt: skip
        for pause in pauses:
            chains.advance_to(pause)
        rows = chains.rows()
        chains.stop()
    return rows


def test_the_rows_depend_on_the_seed_alone_not_on_where_nutpie_paused():
    direct, paused = rows_after([40]), rows_after([7, 23, 40])
    for name, value in direct._asdict().items():
        np.testing.assert_array_equal(value, getattr(paused, name), err_msg=name)
    assert not np.array_equal(direct.positions, rows_after([40], seed=6).positions)


def test_the_rows_are_every_chain_s_draws_with_their_exact_logps_and_gradients():
    rows = rows_after([30])
    assert rows.positions.shape == (30 * CHAINS, 4)
    np.testing.assert_array_equal(rows.chain[:6], [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(rows.iteration[:6], [0, 0, 0, 1, 1, 1])
    logps, gradients = jax.vmap(jax.value_and_grad(TARGET.logdensity))(rows.positions)
    np.testing.assert_allclose(rows.logps, logps, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(rows.gradients, gradients, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(rows.last, rows.positions[-CHAINS:])
    assert np.all(rows.step_size > 0)


def test_a_run_is_reproducible_from_its_seed():
    """The switched path: nutpie's exact phase, one training, the surrogate's draws."""
    first, second = (run_gaussian(COVARIANCE, seed=4, draws=100, tune=300) for _ in range(2))
    assert first["posterior"].attrs["surrogate_decision"] == "switched"
    np.testing.assert_array_equal(first["posterior"]["x"].values, second["posterior"]["x"].values)
