"""Fitting a surrogate network with optax: held-out split, early stopping, non-finite guard."""

import functools
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP

__all__ = ["TrainingConfig", "TrainingResult", "fit_network"]


@dataclass(frozen=True)
class TrainingConfig:
    """How the surrogate network is trained.

    Parameters
    ----------
    learning_rate
        Adam's learning rate (ignored when ``optimizer`` is given).
    batch_size
        Minibatch size.
    max_steps
        Most optimizer steps per fit.
    eval_every
        Optimizer steps between two validation checks.
    patience
        Validation checks without improvement before stopping early.
    validation_fraction
        Share of the data held out to measure the surrogate's error.
    optimizer
        Any ``optax.GradientTransformation``; defaults to Adam wrapped in
        ``optax.apply_if_finite``, so a non-finite gradient skips the update.

    Examples
    --------
    >>> TrainingConfig(max_steps=500).validation_fraction
    0.2
    """

    learning_rate: float = 3e-3
    batch_size: int = 256
    max_steps: int = 4000
    eval_every: int = 100
    patience: int = 5
    validation_fraction: float = 0.2
    optimizer: optax.GradientTransformation | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}.")
        for name in ("batch_size", "max_steps", "eval_every", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"TrainingConfig.{name} must be a positive integer, got {value!r}."
                )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must lie in (0, 1), got {self.validation_fraction!r}."
            )


class TrainingResult(NamedTuple):
    """The outcome of :func:`fit_network`.

    ``validation_error`` is the root of the loss on held-out data: a mean squared error in
    standardized output units, where typical targets have size about 1, with each example
    weighted by ``1 / (1 + |target|^2 / dim)`` so that rare huge targets count by their relative
    error. 0 is perfect; about 1 is no better than a constant. It is ``inf`` when training
    produced nothing finite.
    """

    network: StandardizedMLP
    validation_error: float
    train_losses: np.ndarray
    validation_losses: np.ndarray
    n_steps: int


@functools.cache
def _optimizer(config: TrainingConfig) -> optax.GradientTransformation:
    # Cached per config so that refits reuse one compiled training step.
    if config.optimizer is not None:
        return config.optimizer
    return optax.apply_if_finite(optax.adam(config.learning_rate), max_consecutive_errors=20)


def _weighted_loss(params, static, x, y, weights):
    mlp = eqx.combine(params, static)
    squared = jnp.mean((jax.vmap(mlp)(x) - y) ** 2, axis=-1)
    return jnp.sum(weights * squared) / jnp.sum(weights)


@eqx.filter_jit
def _train_chunk(
    params, static, opt_state, optimizer, x, y, is_train, weights, key, n_steps, batch
):
    probabilities = is_train / jnp.sum(is_train)

    def step(carry, key):
        params, opt_state = carry
        rows = jax.random.choice(key, x.shape[0], (batch,), p=probabilities)
        loss, grads = jax.value_and_grad(_weighted_loss)(
            params, static, x[rows], y[rows], weights[rows]
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, n_steps)
    )
    return params, opt_state, jnp.mean(losses)


_validation_loss = eqx.filter_jit(_weighted_loss)


def _padded(array: np.ndarray, rows: int) -> np.ndarray:
    # Power-of-two padding: a growing buffer compiles the training step only a few times.
    return np.concatenate([array, np.zeros((rows - len(array), *array.shape[1:]))])


def fit_network(
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    network: NetworkConfig,
    training: TrainingConfig,
    key: jax.Array,
    targets_are_gradients: bool = False,
) -> TrainingResult:
    """Fit a :class:`StandardizedMLP` from ``inputs`` to ``targets`` (rows are examples).

    Rows with a non-finite input or target are ignored. The network returned is the one with the
    lowest validation loss seen (see :class:`TrainingResult` for the loss).

    With ``targets_are_gradients``, the targets are gradients of a function of the inputs and
    are measured in units of ``1 / input scale``: an error of 1 in those units is an energy error
    of order 1 per unit of trajectory, whatever the parametrisation.

    Examples
    --------
    >>> import jax, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(400, 2))
    >>> result = fit_network(
    ...     x, -x, network=NetworkConfig(width=16), training=TrainingConfig(max_steps=300),
    ...     key=jax.random.key(0),
    ... )
    >>> bool(result.validation_error < 0.2)
    True
    """
    inputs = np.asarray(inputs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    finite = np.all(np.isfinite(inputs), axis=1) & np.all(np.isfinite(targets), axis=1)
    inputs, targets = inputs[finite], targets[finite]
    n = len(inputs)
    if n < 4:
        raise ValueError(f"At least 4 finite training examples are needed, got {n}.")

    split_key, init_key, train_key = jax.random.split(key, 3)
    order = np.asarray(jax.random.permutation(split_key, n))
    n_validation = max(1, round(training.validation_fraction * n))
    is_validation = np.zeros(n, dtype=bool)
    is_validation[order[:n_validation]] = True

    x_scaler = Standardization.fit(inputs[~is_validation])
    y_scaler = Standardization.fit(targets[~is_validation])
    if targets_are_gradients:
        y_scaler = Standardization(y_scaler.mean, 1.0 / x_scaler.scale)
    standardized = np.asarray(y_scaler.apply(targets))
    relative_weights = 1.0 / (1.0 + np.mean(standardized**2, axis=1))
    rows = 1 << (n - 1).bit_length()
    x = jnp.asarray(_padded(np.asarray(x_scaler.apply(inputs)), rows))
    y = jnp.asarray(_padded(standardized, rows))
    is_train = jnp.asarray(_padded((~is_validation).astype(float), rows))
    weights = jnp.asarray(_padded(relative_weights, rows))
    validation_weights = jnp.asarray(_padded(is_validation * relative_weights, rows))

    optimizer = _optimizer(training)
    mlp = network.build(inputs.shape[1], targets.shape[1], key=init_key)
    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    batch = min(training.batch_size, n - n_validation)

    best_params, best_loss = (
        params,
        float(_validation_loss(params, static, x, y, validation_weights)),
    )
    train_losses, validation_losses = [], []
    n_steps, stale = 0, 0
    for chunk_key in jax.random.split(train_key, max(1, training.max_steps // training.eval_every)):
        params, opt_state, train_loss = _train_chunk(
            params, static, opt_state, optimizer, x, y, is_train, weights, chunk_key,
            training.eval_every, batch,
        )  # fmt: skip
        n_steps += training.eval_every
        loss = float(_validation_loss(params, static, x, y, validation_weights))
        train_losses.append(float(train_loss))
        validation_losses.append(loss)
        if np.isfinite(loss) and (not np.isfinite(best_loss) or loss < best_loss * (1 - 1e-3)):
            best_params, best_loss, stale = params, loss, 0
        else:
            stale += 1
            if stale >= training.patience:
                break

    error = float(np.sqrt(best_loss)) if np.isfinite(best_loss) else float("inf")
    return TrainingResult(
        network=StandardizedMLP(eqx.combine(best_params, static), x_scaler, y_scaler),
        validation_error=error,
        train_losses=np.asarray(train_losses),
        validation_losses=np.asarray(validation_losses),
        n_steps=n_steps,
    )
