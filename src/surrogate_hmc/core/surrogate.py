"""Surrogate force fields: a network for the expensive part, exact code for the cheap part."""

import functools
from collections.abc import Callable

import equinox as eqx
import jax

from surrogate_hmc.core.integrators import leapfrog
from surrogate_hmc.core.network import StandardizedMLP

__all__ = ["GradientSurrogate", "TrajectoryFn", "surrogate_trajectory"]

TrajectoryFn = Callable[..., tuple[jax.Array, jax.Array]]


class GradientSurrogate(eqx.Module):
    """Force field ``network(q) + grad(exact_logdensity)(q)``.

    The network learns the gradient of the expensive part of the log-density (for example the
    log-likelihood); the cheap part (for example priors and transform Jacobians) stays exact when
    ``exact_logdensity`` is given. Without it the network learns the whole gradient.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from surrogate_hmc.core.network import NetworkConfig, Standardization
    >>> x = np.random.default_rng(0).normal(size=(8, 2))
    >>> net = StandardizedMLP(
    ...     NetworkConfig(width=4).build(2, 2, key=jax.random.key(0)),
    ...     Standardization.fit(x),
    ...     Standardization.fit(x),
    ... )
    >>> GradientSurrogate(net, lambda q: -0.5 * q @ q)(jnp.zeros(2)).shape
    (2,)
    """

    network: StandardizedMLP
    exact_logdensity: Callable[[jax.Array], jax.Array] | None = eqx.field(static=True, default=None)

    def __call__(self, position: jax.Array) -> jax.Array:
        """The surrogate gradient of the log-density at ``position``."""
        force = self.network(position)
        if self.exact_logdensity is not None:
            force = force + jax.grad(self.exact_logdensity)(position)
        return force


@functools.partial(jax.jit, static_argnums=0)
def _trajectory(static, params, position, momentum, step_size, inverse_mass, n_steps):
    force_fn = eqx.combine(params, static)
    return leapfrog(force_fn, position, momentum, step_size, inverse_mass, n_steps)


def surrogate_trajectory(force_fn: eqx.Module) -> TrajectoryFn:
    """Compile the whole leapfrog trajectory under a surrogate force field into one call.

    The module's arrays are split from its structure once, here, so each call is a plain
    ``jax.jit`` dispatch, and refitting the network (same structure, new weights) reuses the
    compiled code.

    Parameters
    ----------
    force_fn
        An Equinox module mapping a position to a force, such as :class:`GradientSurrogate`.

    Returns
    -------
    trajectory
        ``(position, momentum, step_size, inverse_mass, n_steps) -> (position, momentum)``;
        ``n_steps`` may vary from call to call without recompiling.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> class Spring(eqx.Module):
    ...     stiffness: jax.Array
    ...     def __call__(self, q):
    ...         return -self.stiffness * q
    >>> trajectory = surrogate_trajectory(Spring(jnp.asarray(1.0)))
    >>> q, p = trajectory(jnp.ones(2), jnp.zeros(2), 0.1, jnp.ones(2), 5)
    >>> q.shape
    (2,)
    """
    params, static = eqx.partition(force_fn, eqx.is_array)

    def trajectory(position, momentum, step_size, inverse_mass, n_steps):
        return _trajectory(static, params, position, momentum, step_size, inverse_mass, n_steps)

    return trajectory
