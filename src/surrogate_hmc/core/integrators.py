"""Leapfrog integration with the force field passed in.

Leapfrog with any fixed force field that depends on position only is volume preserving and
reversible (Li et al. 2019, Theorem 1), so a Metropolis step with the *exact* Hamiltonian at both
ends keeps the exact target invariant, however wrong the force is.
"""

from collections.abc import Callable

import jax

__all__ = ["leapfrog"]

ForceFn = Callable[[jax.Array], jax.Array]


def leapfrog(
    force_fn: ForceFn,
    position: jax.Array,
    momentum: jax.Array,
    step_size: jax.Array | float,
    inverse_mass: jax.Array,
    n_steps: jax.Array | int,
) -> tuple[jax.Array, jax.Array]:
    """Integrate ``n_steps`` leapfrog steps of Hamilton's equations.

    Parameters
    ----------
    force_fn
        Gradient of the log-density (or of a surrogate of it) at a position.
    position, momentum
        Start of the trajectory, 1-D arrays of equal length.
    step_size
        Leapfrog step size.
    inverse_mass
        Diagonal of the inverse mass matrix (the velocity is ``inverse_mass * momentum``).
    n_steps
        Number of steps; may be a traced integer, so one compiled function serves any length.

    Returns
    -------
    position, momentum
        End of the trajectory. Non-finite values are returned as they are; the caller rejects.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> q, p = leapfrog(lambda q: -q, jnp.ones(2), jnp.zeros(2), 0.1, jnp.ones(2), 10)
    >>> q.shape
    (2,)
    """

    def step(_, carry):
        q, p, force = carry
        p = p + 0.5 * step_size * force
        q = q + step_size * inverse_mass * p
        force = force_fn(q)
        p = p + 0.5 * step_size * force
        return q, p, force

    q, p, _ = jax.lax.fori_loop(0, n_steps, step, (position, momentum, force_fn(position)))
    return q, p
