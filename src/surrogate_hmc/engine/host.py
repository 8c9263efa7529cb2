"""A log-density computed outside JAX, as a JAX function the engine's kernels can call.

Some models have no JAX implementation: an ODE solved by scipy, a simulator, a custom Op. Their
log-density and gradient run on the host, through :func:`jax.pure_callback`, batched over the
chains: the vmapped kernels hand every chain's position to one callback, which evaluates them
one after the other. Everything else (the trees, the metric, the surrogate) stays compiled.

Exact NUTS builds the chains' trees one after the other on such a log-density (``in_turn`` of
:func:`surrogate_hmc.engine.kernel.run_chunk`): batched, the trees would grow in lockstep, and
every leapfrog step would evaluate every chain, those whose tree is finished included, real
work on the host that the trees then discard. The surrogate kernel's exact corrections, one
per chain and iteration, are batched.
"""

import threading
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["host_logdensity"]


def _batched(function: Callable, dim: int, outputs: int, lock: threading.Lock):
    """``function`` of one flat position, mapped over the leading axes of ``positions``.

    Calls hold ``lock``: host functions (a PyTensor function keeps its own storage) need not
    be thread-safe, and nutpie calls the log-density from several threads.
    """

    def call(positions):
        positions = np.asarray(positions, dtype=np.float64)
        batch = positions.shape[:-1]
        with lock:
            rows = [function(row) for row in positions.reshape(-1, dim)]
        if outputs == 1:
            return np.asarray(rows, dtype=np.float64).reshape(batch)
        values = np.asarray([row[0] for row in rows], dtype=np.float64).reshape(batch)
        gradients = np.asarray([row[1] for row in rows], dtype=np.float64)
        return values, gradients.reshape(*batch, dim)

    return call


def host_logdensity(
    logp: Callable[[np.ndarray], float],
    logp_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    dim: int,
) -> Callable[[jax.Array], jax.Array]:
    """A JAX log-density of a flat position whose values come from host functions.

    Parameters
    ----------
    logp
        NumPy function: flat float64 position ``(dim,)`` to its log-density.
    logp_and_gradient
        NumPy function: flat position to its log-density and gradient ``(dim,)``.
    dim
        Length of a flat position.

    Returns
    -------
    callable
        A log-density that ``jax.jit``, ``jax.vmap`` and ``jax.grad`` accept: its value calls
        ``logp``, and its value with gradient calls ``logp_and_gradient`` once. Under
        ``vmap``, one host call evaluates every position of the batch.

    Examples
    --------
    >>> logdensity = host_logdensity(
    ...     lambda x: -0.5 * float(x @ x), lambda x: (-0.5 * float(x @ x), -x), dim=2
    ... )
    >>> value, gradient = jax.jit(jax.vmap(jax.value_and_grad(logdensity)))(jnp.ones((3, 2)))
    >>> value.tolist(), gradient[0].tolist()
    ([-1.0, -1.0, -1.0], [-1.0, -1.0])
    """
    value_shape = jax.ShapeDtypeStruct((), jnp.float64)
    gradient_shape = jax.ShapeDtypeStruct((dim,), jnp.float64)
    lock = threading.Lock()
    value_only = _batched(logp, dim, 1, lock)
    with_gradient = _batched(logp_and_gradient, dim, 2, lock)

    @jax.custom_vjp
    def logdensity(position: jax.Array) -> jax.Array:
        return jax.pure_callback(value_only, value_shape, position, vmap_method="expand_dims")

    def forward(position: jax.Array):
        return jax.pure_callback(
            with_gradient, (value_shape, gradient_shape), position, vmap_method="expand_dims"
        )

    def backward(gradient: jax.Array, cotangent: jax.Array):
        return (cotangent * gradient,)

    logdensity.defvjp(forward, backward)
    return logdensity
