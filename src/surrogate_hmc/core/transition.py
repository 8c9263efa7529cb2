"""One static-length HMC transition on a surrogate force with an exact Metropolis correction.

The exact log-density is any host function (a PyTensor function, a simulator, plain NumPy), so it
is called outside JAX; the trajectory is one jitted call.
"""

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["HMCInfo", "HMCState", "draw_momentum", "kinetic_energy", "static_hmc_transition"]


class HMCState(NamedTuple):
    """Where the chain is: position and its *exact* log-density."""

    position: np.ndarray
    logdensity: float


class HMCInfo(NamedTuple):
    """Diagnostics of one transition.

    ``energy_error`` is that of the returned state (0 when the proposal is rejected), as in NUTS;
    ``proposal_energy_error`` is that of the proposal, accepted or not (``inf`` when it is not
    finite). ``n_exact_logp`` is 1 when the exact log-density was evaluated at the proposal,
    0 when the trajectory ended at a non-finite point.
    """

    acceptance_rate: float
    is_accepted: bool
    diverging: bool
    energy: float
    energy_error: float
    proposal_energy_error: float
    proposal_logdensity: float
    n_exact_logp: int


def draw_momentum(rng: np.random.Generator, inverse_mass: np.ndarray) -> np.ndarray:
    """A momentum drawn from ``N(0, M)`` for the inverse mass matrix (diagonal or dense).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> draw_momentum(rng, np.full(3, 4.0)).shape
    (3,)
    """
    noise = rng.standard_normal(inverse_mass.shape[0])
    if inverse_mass.ndim == 1:
        return noise / np.sqrt(inverse_mass)
    return np.linalg.solve(np.linalg.cholesky(inverse_mass).T, noise)


def kinetic_energy(momentum: np.ndarray, inverse_mass: np.ndarray) -> float:
    """Gaussian kinetic energy ``p' M^-1 p / 2`` for a diagonal mass matrix.

    A diverged trajectory's momentum may overflow: its energy is then ``inf``, without a
    warning (the transition reports the divergence).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return 0.5 * float(momentum @ (inverse_mass * momentum))


def static_hmc_transition(
    rng: np.random.Generator,
    state: HMCState,
    *,
    logdensity_fn: Callable[[np.ndarray], float],
    trajectory_fn: Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, np.ndarray]],
    step_size: float,
    inverse_mass: np.ndarray,
    n_steps: int,
    max_energy_error: float = 1000.0,
) -> tuple[HMCState, HMCInfo]:
    """Propose with ``trajectory_fn`` and accept with the exact Hamiltonian at both ends.

    The trajectory may use any position-only force field (a surrogate); the exact log-density is
    evaluated once, at the proposal, so the chain targets ``exp(logdensity_fn)`` exactly.
    A proposal with a non-finite position, momentum or log-density is rejected and flagged as
    diverging, as is one whose energy error exceeds ``max_energy_error``.

    Parameters
    ----------
    rng
        Draws the momentum and the acceptance uniform.
    state
        Current position and its exact log-density.
    logdensity_fn
        The exact log-density (no gradient needed).
    trajectory_fn
        ``(position, momentum, step_size, n_steps) -> (position, momentum)``.
    step_size, inverse_mass, n_steps
        Leapfrog settings; ``inverse_mass`` is the diagonal of the inverse mass matrix.
    max_energy_error
        Energy error above which a proposal counts as diverging.

    Returns
    -------
    state, info

    Examples
    --------
    >>> import numpy as np
    >>> from surrogate_hmc.core.integrators import leapfrog
    >>> def trajectory(q, p, eps, n):
    ...     q, p = leapfrog(lambda x: -x, q, p, eps, np.ones(1), n)
    ...     return np.asarray(q), np.asarray(p)
    >>> state, info = static_hmc_transition(
    ...     np.random.default_rng(0), HMCState(np.zeros(1), 0.0),
    ...     logdensity_fn=lambda q: -0.5 * float(q @ q), trajectory_fn=trajectory,
    ...     step_size=0.5, inverse_mass=np.ones(1), n_steps=3,
    ... )
    >>> bool(info.acceptance_rate > 0.9)
    True
    """
    momentum = draw_momentum(rng, inverse_mass)
    energy = kinetic_energy(momentum, inverse_mass) - state.logdensity
    position, end_momentum = trajectory_fn(state.position, momentum, step_size, n_steps)

    proposal_logdensity = -np.inf
    proposal_energy_error = np.inf
    n_exact_logp = 0
    if np.all(np.isfinite(position)) and np.all(np.isfinite(end_momentum)):
        n_exact_logp = 1
        proposal_logdensity = float(logdensity_fn(position))
        if np.isfinite(proposal_logdensity):
            proposal_energy = kinetic_energy(end_momentum, inverse_mass) - proposal_logdensity
            proposal_energy_error = proposal_energy - energy
    if not np.isfinite(proposal_energy_error):
        proposal_energy_error = np.inf

    acceptance_rate = float(np.exp(min(0.0, -proposal_energy_error)))
    diverging = bool(proposal_energy_error > max_energy_error)
    is_accepted = bool(np.log(rng.uniform()) < -proposal_energy_error)
    if is_accepted:
        new_state = HMCState(position, proposal_logdensity)
        energy, energy_error = energy + proposal_energy_error, proposal_energy_error
    else:
        new_state, energy_error = state, 0.0
    return new_state, HMCInfo(
        acceptance_rate=acceptance_rate,
        is_accepted=is_accepted,
        diverging=diverging,
        energy=energy,
        energy_error=energy_error,
        proposal_energy_error=float(proposal_energy_error),
        proposal_logdensity=proposal_logdensity,
        n_exact_logp=n_exact_logp,
    )
