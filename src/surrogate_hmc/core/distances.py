"""Distances between a simulation and a target: the labels an ACE cost network regresses.

Each distance maps one simulation ``x`` and one target ``y`` (arrays of the data's shape) to a
non-negative scalar, in JAX, so that training can draw fresh (simulation, target) pairs on the
fly. Data with i.i.d. trials has the trials along the first axis: ``"mmd"`` and ``"energy"``
compare the two sets of trials as distributions, whatever their order.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DISTANCES",
    "Distance",
    "energy_score",
    "mae",
    "median_bandwidth",
    "mmd",
    "mse",
    "resolve",
]

Distance = Callable[[jax.Array, jax.Array], jax.Array]
"""``distance(x, y)``: a non-negative scalar for a simulation ``x`` and a target ``y``."""


def mse(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared difference over all elements.

    Examples
    --------
    >>> float(mse(jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0])))
    1.0
    """
    return jnp.mean((x - y) ** 2)


def mae(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean absolute difference over all elements.

    Examples
    --------
    >>> float(mae(jnp.array([0.0, 3.0]), jnp.array([1.0, 1.0])))
    1.5
    """
    return jnp.mean(jnp.abs(x - y))


def _trials(x: jax.Array) -> jax.Array:
    return jnp.reshape(x, (x.shape[0], -1))


def _pairwise_norms(a: jax.Array, b: jax.Array) -> jax.Array:
    squared = jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return jnp.sqrt(jnp.maximum(squared, 1e-300))


def mmd(x: jax.Array, y: jax.Array, bandwidth: float = 1.0) -> jax.Array:
    """Squared maximum mean discrepancy between the trials of ``x`` and ``y``.

    Gaussian kernel of the given ``bandwidth``; the biased (V-statistic) estimate, which is never
    negative.

    Examples
    --------
    >>> x = jnp.array([[0.0], [1.0]])
    >>> float(mmd(x, x)) == 0.0, float(mmd(x, x + 3.0)) > 0.5
    (True, True)
    """
    x, y = _trials(x), _trials(y)

    def kernel(a, b):
        return jnp.mean(jnp.exp(-jnp.sum((a[:, None] - b[None]) ** 2, -1) / (2 * bandwidth**2)))

    return jnp.maximum(kernel(x, x) + kernel(y, y) - 2 * kernel(x, y), 0.0)


def energy_score(x: jax.Array, y: jax.Array) -> jax.Array:
    """Energy score of the simulated trials ``x`` at the target trials ``y``.

    ``mean ||x_i - y_j|| - mean ||x_i - x_k|| / 2``, averaged over the target's trials: a proper
    scoring rule, smallest in expectation when the simulations follow the target's distribution.

    Examples
    --------
    >>> x = jnp.array([[0.0], [2.0]])
    >>> float(energy_score(x, jnp.array([[1.0]])))
    0.5
    """
    x, y = _trials(x), _trials(y)
    return jnp.mean(_pairwise_norms(x, y)) - 0.5 * jnp.mean(_pairwise_norms(x, x))


def median_bandwidth(simulations: np.ndarray, max_trials: int = 2000) -> float:
    """The median heuristic: median distance between trials pooled from the simulations.

    ``simulations`` has shape ``(n, trials, ...)``; at most ``max_trials`` trials, drawn at
    random, are compared. A median of 0 (identical trials) gives 1.

    Examples
    --------
    >>> median_bandwidth(np.array([[[0.0], [1.0]], [[3.0], [3.0]]]))
    2.0
    """
    trials = np.reshape(simulations, (-1, int(np.prod(simulations.shape[2:], dtype=int))))
    trials = trials[np.random.default_rng(0).permutation(len(trials))[:max_trials]]
    distances = np.sqrt(np.sum((trials[:, None] - trials[None]) ** 2, axis=-1))
    median = float(np.median(distances[np.triu_indices(len(trials), k=1)]))
    return median if median > 0 else 1.0


DISTANCES = ("mse", "mae", "mmd", "energy")
"""The names of the distances :func:`resolve` knows."""


def resolve(distance: str | Distance, simulations: np.ndarray) -> tuple[Distance, dict[str, Any]]:
    """The distance function named ``distance`` (or the user's), and its settings to record.

    ``distance`` is one of :data:`DISTANCES` or a function ``distance(x, x_t)``; ``"mmd"`` takes
    its bandwidth from ``simulations`` (:func:`median_bandwidth`).

    Examples
    --------
    >>> function, settings = resolve("mse", np.zeros((3, 2)))
    >>> function is mse, settings
    (True, {'name': 'mse'})
    """
    if callable(distance):
        return distance, {"name": getattr(distance, "__name__", "custom")}
    if distance == "mse":
        return mse, {"name": "mse"}
    if distance == "mae":
        return mae, {"name": "mae"}
    if distance == "energy":
        return energy_score, {"name": "energy"}
    if distance == "mmd":
        bandwidth = median_bandwidth(simulations)

        def mmd_with_bandwidth(x, y):
            return mmd(x, y, bandwidth)

        return mmd_with_bandwidth, {"name": "mmd", "bandwidth": bandwidth}
    raise ValueError(
        f"distance must be one of {DISTANCES} or a function of (simulation, target) written "
        f"with jax.numpy, got {distance!r}."
    )
