"""What one chain of ``SurrogateHMC`` carries besides NUTS's own state."""

from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from pymc.step_methods.hmc.nuts import NUTSState
from pymc.step_methods.state import dataclass_state

from surrogate_hmc.core.exploration import RECENT_DRAWS
from surrogate_hmc.core.lifecycle import IterationStats, LifecycleState
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.surrogate import AbstractLearnedSurrogate
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.transition import HMCState
from surrogate_hmc.step_methods.exact_model import ExactRecord
from surrogate_hmc.step_methods.kernel import KernelState

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_TUNE",
    "ChainState",
    "Learned",
    "SurrogateHMCState",
    "kernel_start",
]

DEFAULT_TUNE = 1000
"""``pm.sample``'s default, used when PyMC does not say how long tuning is."""
DEFAULT_DRAWS = 1000
"""``pm.sample``'s default, used when PyMC does not say how many draws follow."""


class Learned(NamedTuple):
    """A learned surrogate and the architecture of its network."""

    surrogate: AbstractLearnedSurrogate
    network: NetworkConfig


@dataclass
class ChainState:
    """One chain's state beyond NUTS's: its lifecycle, exact evaluations and surrogate kernel."""

    life: LifecycleState
    exact: ExactRecord
    tune: int = DEFAULT_TUNE
    draws: int = DEFAULT_DRAWS
    kernel: KernelState | None = None
    in_use: Learned | None = None
    """The surrogate the kernel runs on, with its architecture."""
    candidate: Learned | None = None
    """A surrogate just fitted or given, waiting for the lifecycle's decision."""
    last_exact: HMCState | None = None
    """Position and exact log-density after the last exact iteration."""
    metric_at_start: np.ndarray | None = None
    """What NUTS's adapting potential had estimated as the chain started (``None``: it does
    not adapt)."""
    started: bool = False
    """Whether the chain has taken its first iteration (its start is jittered then)."""
    settled_at: int | None = None
    """Tuning iteration after which NUTS's metric was first adapted to the chain's draws."""
    recent_draws: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=RECENT_DRAWS))
    """The last exact draws, for the exploration check."""
    history_stats: tuple[tuple, dict[str, Any]] | None = None
    """The history sample stats last reported, and the lifecycle fields they were made of."""

    def notice_metric(self, estimate: np.ndarray | None, iteration: int) -> bool:
        """Note the first iteration after which NUTS's metric moved; ``True`` just then.

        Before it (PyMC's first adaptation window, 101 iterations by default) NUTS builds the
        deep trees of an unadapted metric, and its cost says little about the settled chain's.
        """
        if self.settled_at is not None:
            return False
        if estimate is None or not np.array_equal(estimate, self.metric_at_start):
            self.settled_at = iteration
            return True
        return False

    def trained_surrogate(self, variables, inverse_mass: np.ndarray) -> TrainedSurrogate | None:
        """The surrogate in use with its kernel's settings, as data (``None``: none in use)."""
        if self.kernel is None or self.in_use is None:
            return None
        return TrainedSurrogate.from_surrogate(
            self.in_use.surrogate,
            variables=variables,
            network=self.in_use.network,
            step_size=float(self.kernel.step_adapt.current(False)),
            inverse_mass=inverse_mass,
            trajectory_lengths=self.kernel.trajectory_lengths,
        )


@dataclass_state
class SurrogateHMCState(NUTSState):
    """Everything a chain needs to continue: NUTS's state plus the surrogate's."""

    chain: ChainState


def kernel_start(
    recent_exact: tuple[IterationStats, ...], given: TrainedSurrogate | None
) -> dict[str, Any]:
    """Where the surrogate kernel starts: NUTS's recent step sizes and trajectory lengths.

    A given surrogate piloted before any exact iteration starts where its own run ended.
    """
    if recent_exact:
        step_sizes = np.array([s.step_size for s in recent_exact])
        tree_sizes = np.array([s.n_steps for s in recent_exact])
        step_size = float(np.exp(np.mean(np.log(step_sizes))))
        return {"step_size": step_size, "trajectory_lengths": tree_sizes * step_sizes}
    assert given is not None, "only a given surrogate is piloted before exact steps"
    return {
        "step_size": given.step_size,
        "trajectory_lengths": given.trajectory_lengths,
        "inverse_mass": given.inverse_mass,
    }
