"""The optimizer loop every fit shares: compiled chunks of steps, early stopping, a held-out split.

A fit says how one minibatch is drawn and scored, as a ``batch_loss(params, static, data, key)``;
:func:`optimizer_chunk` runs many optimizer steps on it in one compiled ``lax.scan``, and
:func:`early_stopping` runs chunks until the loss on held-out data stops improving.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "BatchLoss",
    "TrainingResult",
    "early_stopping",
    "guarded_adam",
    "optimizer_chunk",
    "validation_split",
]

BatchLoss = Callable[[Any, Any, Any, jax.Array], jax.Array]
"""``batch_loss(params, static, data, key)``: the loss of one minibatch drawn with ``key``."""

ChunkResult = tuple[Any, optax.OptState, jax.Array]


class TrainingResult(NamedTuple):
    """The outcome of an early-stopped fit (see :func:`early_stopping`).

    ``network`` is the best one seen: the one with the lowest validation loss. Its
    ``validation_error`` is the root of that loss, ``inf`` when training produced nothing
    finite; each fit documents the loss it uses. ``train_losses`` and ``validation_losses`` hold
    the mean minibatch loss and the validation loss of each chunk of ``eval_every`` steps, and
    ``n_steps`` counts the optimizer steps run.

    Examples
    --------
    >>> result = TrainingResult(None, 0.1, np.ones(2), np.ones(2), n_steps=200)
    >>> result.n_steps
    200
    """

    network: Any
    validation_error: float
    train_losses: np.ndarray
    validation_losses: np.ndarray
    n_steps: int


def guarded_adam(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Adam that skips an update whose gradient is not finite (up to 20 in a row).

    Examples
    --------
    >>> optimizer = guarded_adam(1e-2)
    >>> state = optimizer.init(jnp.zeros(2))
    >>> updates, state = optimizer.update(jnp.array([jnp.nan, 1.0]), state)
    >>> updates.tolist()
    [0.0, 0.0]
    """
    return optax.apply_if_finite(optax.adam(learning_rate), max_consecutive_errors=20)


@eqx.filter_jit
def optimizer_chunk(
    params: Any,
    static: Any,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    batch_loss: BatchLoss,
    data: Any,
    key: jax.Array,
    n_steps: int,
) -> ChunkResult:
    """Run ``n_steps`` optimizer steps on ``batch_loss``, compiled as one ``lax.scan``.

    Parameters
    ----------
    params, static
        The trainable and the fixed part of a model, as from ``eqx.partition``.
    opt_state, optimizer
        An optax optimizer and its state.
    batch_loss
        ``batch_loss(params, static, data, key)``: draws a minibatch from ``data`` with ``key``
        and returns its loss. Each step gets its own key, split from ``key``. It is a static
        argument of the compiled function, like ``optimizer`` and ``n_steps``: pass the same
        objects (a module-level function, or a ``jax.tree_util.Partial`` of one with static
        settings) to reuse the compiled code.
    data
        Arrays the batches are drawn from (any pytree).
    key
        Randomness of the batches.
    n_steps
        Number of optimizer steps.

    Returns
    -------
    tuple
        The updated ``params`` and ``opt_state``, and the mean of the batch losses.

    Examples
    --------
    >>> def batch_loss(params, static, data, key):
    ...     return jnp.sum((params - data) ** 2)
    >>> optimizer = optax.sgd(0.1)
    >>> params, _, loss = optimizer_chunk(
    ...     jnp.zeros(2), None, optimizer.init(jnp.zeros(2)), optimizer, batch_loss,
    ...     jnp.ones(2), jax.random.key(0), 100,
    ... )
    >>> np.round(params, 3).tolist()
    [1.0, 1.0]
    """

    def step(carry, key):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(batch_loss)(params, static, data, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, n_steps)
    )
    return params, opt_state, jnp.mean(losses)


def early_stopping(
    run_chunk: Callable[[Any, optax.OptState, jax.Array], ChunkResult],
    validation_loss: Callable[[Any], float],
    params: Any,
    opt_state: optax.OptState,
    key: jax.Array,
    *,
    max_steps: int,
    eval_every: int,
    patience: int,
) -> TrainingResult:
    """Run chunks of ``eval_every`` optimizer steps until the validation loss stops improving.

    A chunk improves on the best loss seen when its loss is finite and lower by more than 0.1%
    (any finite loss improves on a non-finite one). Training stops after ``patience`` chunks in
    a row without improvement, or after ``max_steps // eval_every`` chunks (at least one).

    Parameters
    ----------
    run_chunk
        ``run_chunk(params, opt_state, key)`` returns the updated ``(params, opt_state,
        mean_train_loss)``, for example by :func:`optimizer_chunk`.
    validation_loss
        The loss of ``params`` on held-out data, as a float.
    params, opt_state
        Where to start.
    key
        Randomness of the chunks, one key each.
    max_steps, eval_every, patience
        As in :class:`~surrogate_hmc.core.TrainingConfig`.

    Returns
    -------
    TrainingResult
        Its ``network`` holds the best ``params`` seen (the initial ones when no chunk
        improved on them).

    Examples
    --------
    >>> def run_chunk(params, opt_state, key):
    ...     return params / 2, opt_state, params
    >>> result = early_stopping(
    ...     run_chunk, lambda params: params**2, 1.0, None, jax.random.key(0),
    ...     max_steps=1000, eval_every=100, patience=3,
    ... )
    >>> result.network, result.validation_error, result.n_steps
    (0.0009765625, 0.0009765625, 1000)
    """
    best_params, best_loss = params, validation_loss(params)
    train_losses, validation_losses = [], []
    n_steps, stale = 0, 0
    for chunk_key in jax.random.split(key, max(1, max_steps // eval_every)):
        params, opt_state, train_loss = run_chunk(params, opt_state, chunk_key)
        n_steps += eval_every
        loss = validation_loss(params)
        train_losses.append(float(train_loss))
        validation_losses.append(loss)
        if np.isfinite(loss) and (not np.isfinite(best_loss) or loss < best_loss * (1 - 1e-3)):
            best_params, best_loss, stale = params, loss, 0
        else:
            stale += 1
            if stale >= patience:
                break
    return TrainingResult(
        network=best_params,
        validation_error=float(np.sqrt(best_loss)) if np.isfinite(best_loss) else float("inf"),
        train_losses=np.asarray(train_losses),
        validation_losses=np.asarray(validation_losses),
        n_steps=n_steps,
    )


def validation_split(n: int, fraction: float, key: jax.Array) -> np.ndarray:
    """A random mask of ``n`` rows with ``fraction`` of them (at least one) held out.

    Examples
    --------
    >>> mask = validation_split(10, 0.2, jax.random.key(0))
    >>> mask.dtype, int(mask.sum())
    (dtype('bool'), 2)
    """
    order = np.asarray(jax.random.permutation(key, n))
    is_validation = np.zeros(n, dtype=bool)
    is_validation[order[: max(1, round(fraction * n))]] = True
    return is_validation
