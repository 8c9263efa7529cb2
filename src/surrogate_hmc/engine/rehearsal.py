"""Compile the surrogate phase's programs while the exact phase is still sampling.

The first training and surrogate NUTS with its exact correction are compiled the first time
they run: cold, that is seconds between the exact phase and the surrogate's pilot. A
background thread compiles them ahead, from look-alike inputs: a surrogate of the same
architecture trained briefly on a standard normal, and the chains' states as zeros. Nothing is
evaluated on the target (its log-density is traced, never called), so a log-density on the
host is not called from two threads. The programs land in JAX's caches (in memory, and on disk
when the compilation cache is on), where the real run finds them.
"""

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.fitting import fit_surrogate
from surrogate_hmc.engine import kernel

if TYPE_CHECKING:  # the run module starts rehearsals
    from surrogate_hmc.engine.run import EngineConfig

__all__ = ["Rehearsal"]

logger = logging.getLogger(__name__)


class Rehearsal:
    """Compiles, in a background thread, what the switch to a surrogate will run.

    A rehearsal that fails costs only the time it would have saved: its error is kept in
    :attr:`error` (and logged at debug level), and the run compiles as it would have without
    it. JAX's thread-local settings (``jax.default_device`` and the like) do not reach the
    thread: under them the run compiles its own programs.

    Parameters
    ----------
    exact
        The target's log-density of a flat position.
    starts
        The chains' starting positions ``(chains, dim)``: their shape and dtype.
    config
        The run's :class:`~surrogate_hmc.engine.run.EngineConfig`.
    capacity, chunk
        The training buffer's rows and the iterations of one compiled chunk, as the run has
        them.

    Examples
    --------
    >>> from surrogate_hmc.engine.run import BUFFER_CAPACITY, CHUNK, EngineConfig
    >>> rehearsal = Rehearsal(lambda q: -0.5 * q @ q, np.zeros((2, 3)), EngineConfig(chains=2),
    ...                       BUFFER_CAPACITY, CHUNK)
    >>> rehearsal.wait()
    >>> rehearsal.error is None
    True
    """

    def __init__(
        self,
        exact: Callable[[jax.Array], jax.Array],
        starts: np.ndarray,
        config: "EngineConfig",
        capacity: int,
        chunk: int,
    ) -> None:
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(exact, np.asarray(starts), config, capacity, chunk),
            name="surrogate-hmc-rehearsal",
        )
        self._thread.start()

    def _run(self, exact, starts, config: "EngineConfig", capacity, chunk) -> None:
        try:
            _compile_surrogate_phase(exact, starts, config, capacity, chunk)
        except Exception as error:  # any failure only forgoes the head start
            logger.debug("The rehearsal of the surrogate's programs failed", exc_info=True)
            self.error = error

    @property
    def done(self) -> bool:
        """Whether the rehearsal has finished (or failed)."""
        return not self._thread.is_alive()

    def wait(self) -> None:
        """Until the rehearsal is done (at once if it already is)."""
        self._thread.join()


def _compile_surrogate_phase(
    exact, starts: np.ndarray, config: "EngineConfig", capacity: int, chunk: int
) -> None:
    chains, dim = starts.shape
    surrogate = _look_alike_surrogate(dim, config, capacity)
    positions = jnp.zeros_like(jnp.asarray(starts))
    nuts_states = kernel.init_nuts(positions, surrogate.logdensity)
    state = kernel.DAState(nuts_states, jnp.zeros(chains, positions.dtype))
    tuning = kernel.start_tuning(state, jnp.ones(chains, positions.dtype), config.target_accept)
    inverse_mass = jnp.eye(dim, dtype=positions.dtype)
    kernel.run_chunk.lower(
        jax.random.key(0), tuning, surrogate.logdensity, exact, inverse_mass, jnp.bool_(True),
        chunk, config.target_accept, config.max_tree_depth, jnp.int32(1),
    ).compile()  # fmt: skip


def _look_alike_surrogate(dim: int, config: "EngineConfig", capacity: int):
    """A log-density surrogate of the run's architecture, trained for one chunk of steps.

    Its training step is the run's (the rows are padded to the buffer's capacity); its
    held-out rows may be fewer, and their loss is compiled again in the run (well under a
    second).
    """
    rows = min(capacity, 4 * config.training.batch_size + 64 * dim)
    buffer = TrainingBuffer(capacity, dim)
    for position in np.random.default_rng(0).normal(size=(rows, dim)):
        buffer.add(position, -0.5 * position @ position, -position)
    brief = dataclasses.replace(config.training, max_steps=config.training.eval_every)
    surrogate, _ = fit_surrogate(
        buffer, kind="logp", prior=None, network=config.network, training=brief,
        key=jax.random.key(0), iteration=0, max_validation_error=np.inf,
    )  # fmt: skip
    return surrogate
