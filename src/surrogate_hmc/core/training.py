"""Fitting a surrogate network: its targets, weights and losses (the loop is in ``optimize``)."""

import functools
from dataclasses import dataclass
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import Partial

from surrogate_hmc.core.compiled import power_of_two, values_and_gradients
from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
from surrogate_hmc.core.optimize import (
    TrainingResult,
    early_stopping,
    guarded_adam,
    optimizer_chunk,
    validation_split,
)
from surrogate_hmc.core.structure import StructuredNetwork, Whitening, fit_base, squash
from surrogate_hmc.core.validation import check_choice, check_int, check_real

__all__ = ["TrainingConfig", "TrainingResult", "fit_log_density", "fit_network"]


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
    dtype
        Floating-point precision of the training arithmetic, ``"float32"`` (about twice as fast
        on a CPU) or ``"float64"``. The fitted network is evaluated in float64 either way; its
        targets are centred and scaled, so single precision loses nothing a sampler would see.

    Examples
    --------
    >>> TrainingConfig(max_steps=500).validation_fraction
    0.2
    """

    learning_rate: float = 3e-3
    batch_size: int = 128
    max_steps: int = 2000
    eval_every: int = 100
    patience: int = 5
    validation_fraction: float = 0.2
    optimizer: optax.GradientTransformation | None = None
    dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        checked = {
            "learning_rate": check_real(
                "TrainingConfig.learning_rate", self.learning_rate, low=0.0, open_low=True
            ),
            **{
                name: check_int(f"TrainingConfig.{name}", getattr(self, name))
                for name in ("batch_size", "max_steps", "eval_every", "patience")
            },
            "validation_fraction": check_real(
                "TrainingConfig.validation_fraction",
                self.validation_fraction,
                low=0.0,
                high=1.0,
                open_low=True,
                open_high=True,
            ),
            "dtype": check_choice("TrainingConfig.dtype", self.dtype, ("float32", "float64")),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)


REACH_QUANTILE = 0.99
"""The Gaussian base is quadratic within this quantile of the training data's whitened radius."""
MAX_TARGET = 1e8
"""Training rows whose residual value or gradient is larger are left out (divergent points)."""


def _optimizer(config: TrainingConfig) -> optax.GradientTransformation:
    return config.optimizer or _guarded_adam(config.learning_rate)


@functools.cache
def _guarded_adam(learning_rate: float) -> optax.GradientTransformation:
    # One per learning rate: the compiled training step is keyed on the optimizer, so fits
    # that differ in their length only (a refit, a rehearsal) share it.
    return guarded_adam(learning_rate)


def _weighted_loss(params, static, x, y, weights):
    mlp = eqx.combine(params, static)
    squared = jnp.mean((jax.vmap(mlp)(x) - y) ** 2, axis=-1)
    return jnp.sum(weights * squared) / jnp.sum(weights)


def _squashed_sobolev_loss(radius, params, static, x, y, weights):
    # y holds [value, gradient...] per row, weights [value weight, gradient weight].
    mlp = eqx.combine(params, static)
    value, gradient = jax.vmap(jax.value_and_grad(lambda z: mlp(squash(z, radius))[0]))(x)
    value_squared = (value - y[:, 0]) ** 2
    gradient_squared = jnp.mean((gradient - y[:, 1:]) ** 2, axis=-1)
    total = jnp.sum(weights[:, 0] * value_squared + weights[:, 1] * gradient_squared)
    # Rows without a gradient (weight 0 there) count once, by their value.
    return total / jnp.sum(jnp.where(weights[:, 1] > 0, weights[:, 1], weights[:, 0]))


def _minibatch_loss(loss_fn, batch, params, static, data, key):
    x, y, probabilities, weights = data
    rows = jax.random.choice(key, x.shape[0], (batch,), p=probabilities)
    return loss_fn(params, static, x[rows], y[rows], weights[rows])


@eqx.filter_jit
def _validation_loss(loss_fn, params, static, x, y, weights):
    return loss_fn(params, static, x, y, weights)


def _padded(array: np.ndarray, rows: int) -> np.ndarray:
    # To a power of two rows: a growing buffer compiles the training step only a few times.
    return np.concatenate([array, np.zeros((rows - len(array), *array.shape[1:]))])


def _finite_rows(*arrays: np.ndarray) -> list[np.ndarray]:
    arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    finite = np.all([np.all(np.isfinite(a.reshape(len(a), -1)), axis=1) for a in arrays], axis=0)
    n = int(finite.sum())
    if n < 4:
        raise ValueError(f"At least 4 finite training examples are needed, got {n}.")
    return [a[finite] for a in arrays]


def _fit(loss_fn, mlp, x, y, weights, is_validation, training, key, pad_to):
    """Minimise ``loss_fn`` with early stopping on the held-out rows; keep the best MLP.

    ``x`` are the MLP's inputs, already transformed; the result's ``network`` is the MLP.
    """
    rows = max(power_of_two(len(x)), pad_to or 0)

    def padded(array, rows=rows):
        return jnp.asarray(_padded(array, rows), dtype=training.dtype)

    is_train = padded((~is_validation).astype(float))
    # The padding rows have probability 0: a minibatch is drawn from the training rows only.
    data = (padded(x), padded(y), is_train / jnp.sum(is_train), padded(weights))
    # and weight 0 in the held-out loss, whose rows are padded on their own.
    held_out = power_of_two(int(is_validation.sum()))
    validation = tuple(padded(a[is_validation], held_out) for a in (x, y, weights))
    batch = min(training.batch_size, int((~is_validation).sum()))
    batch_loss = Partial(_minibatch_loss, loss_fn, batch)
    optimizer = _optimizer(training)
    params, static = eqx.partition(_cast(mlp, training.dtype), eqx.is_inexact_array)

    def run_chunk(params, opt_state, key):
        return optimizer_chunk(
            params, static, opt_state, optimizer, batch_loss, data, key, training.eval_every
        )

    def validation_loss(params):
        return float(_validation_loss(loss_fn, params, static, *validation))

    result = early_stopping(
        run_chunk, validation_loss, params, optimizer.init(params), key,
        max_steps=training.max_steps, eval_every=training.eval_every, patience=training.patience,
    )  # fmt: skip
    return result._replace(network=_cast(eqx.combine(result.network, static), jnp.float64))


def _cast(module, dtype):
    return jax.tree.map(
        lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf, module
    )


def fit_network(
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    network: NetworkConfig,
    training: TrainingConfig,
    key: jax.Array,
    targets_are_gradients: bool = False,
    pad_to: int | None = None,
) -> TrainingResult:
    """Fit a :class:`StandardizedMLP` from ``inputs`` to ``targets`` (rows are examples).

    Rows with a non-finite input or target are ignored. The network returned is the one with the
    lowest validation loss seen. That loss is a mean squared error in standardized output units,
    where typical targets have size about 1, with each example weighted by
    ``1 / (1 + |target|^2 / dim)`` so that rare huge targets count by their relative error; the
    result's ``validation_error`` is its root: 0 is perfect, about 1 no better than a constant.

    With ``targets_are_gradients``, the targets are gradients of a function of the inputs and
    are measured in units of ``1 / input scale``: an error of 1 in those units is an energy error
    of order 1 per unit of trajectory, whatever the parametrisation.

    The examples are padded to a power of two rows, or to ``pad_to`` rows if that is more: fits
    on different amounts of data up to ``pad_to`` then share one compiled training step.

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
    inputs, targets = _finite_rows(inputs, targets)
    split_key, init_key, train_key = jax.random.split(key, 3)
    is_validation = validation_split(len(inputs), training.validation_fraction, split_key)

    x_scaler = Standardization.fit(inputs[~is_validation])
    y_scaler = Standardization.fit(targets[~is_validation])
    if targets_are_gradients:
        y_scaler = Standardization(y_scaler.mean, 1.0 / x_scaler.scale)
    standardized = np.asarray(y_scaler.apply(targets))
    relative_weights = 1.0 / (1.0 + np.mean(standardized**2, axis=1))
    mlp = network.build(inputs.shape[1], targets.shape[1], key=init_key)
    x = np.asarray(x_scaler.apply(inputs))
    radius = np.max(np.abs(x[~is_validation]), axis=0)
    radius = np.where(radius > 0, radius, 1.0)
    result = _fit(
        _weighted_loss, mlp, np.asarray(squash(x, radius)), standardized, relative_weights,
        is_validation, training, train_key, pad_to,
    )  # fmt: skip
    network_out = StandardizedMLP(result.network, x_scaler, y_scaler, radius)
    return result._replace(network=network_out)


def fit_log_density(
    positions: np.ndarray,
    values: np.ndarray,
    gradients: np.ndarray,
    *,
    network: NetworkConfig,
    training: TrainingConfig,
    key: jax.Array,
    pad_to: int | None = None,
    start_from: StructuredNetwork | None = None,
) -> TrainingResult:
    """Fit a log-density to its values *and* gradients: a Gaussian base and a network residual.

    The result is a :class:`~surrogate_hmc.core.structure.StructuredNetwork`: inputs whitened by
    the training positions' covariance, a quadratic base fitted to the gradients by least
    squares (exact for a Gaussian), and an MLP on squashed inputs fitted to what the base
    misses, by a Sobolev loss on values (in nats) and gradients (in whitened units: an error of
    1 is an energy error of order 1 per unit of trajectory, whatever the parametrization). Each
    example's terms are weighted by ``1 / (1 + size^2)`` of its residual target, so rare
    far-away evaluations count by their relative error. The ``validation_error`` is the root of
    that loss on held-out data: 0 is perfect.

    Parameters
    ----------
    positions
        Evaluation points, shape ``(n, dim)``.
    values
        Log-density at each point, shape ``(n,)``.
    gradients
        Its gradient at each point, shape ``(n, dim)``. A row that is not finite (NaN, as
        :class:`~surrogate_hmc.core.TrainingBuffer` stores a log-density evaluated alone) makes
        that example value-only.
    network, training, key, pad_to
        As for :func:`fit_network`.
    start_from
        A network fitted earlier by this function (to related data), whose whitening and base
        are kept and whose MLP training continues; ``network`` must describe it.

    Returns
    -------
    TrainingResult
        Its ``network`` maps a position to an array of shape ``(1,)``.

    Examples
    --------
    >>> import jax, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(400, 2)) @ np.array([[3.0, 0.0], [2.9, 0.1]])
    >>> precision = np.linalg.inv(np.cov(x.T))
    >>> result = fit_log_density(
    ...     x, -0.5 * np.einsum("ni,ij,nj->n", x, precision, x), -x @ precision,
    ...     network=NetworkConfig(width=16), training=TrainingConfig(max_steps=300),
    ...     key=jax.random.key(0),
    ... )
    >>> bool(result.validation_error < 0.05)
    True
    """
    has_gradient = np.all(np.isfinite(np.asarray(gradients, dtype=np.float64)), axis=1)
    gradients = np.where(has_gradient[:, None], gradients, 0.0)
    positions, values, gradients, has_gradient = _finite_rows(
        positions, values, gradients, has_gradient
    )
    if not has_gradient.any():
        raise ValueError("At least one training example needs a finite gradient.")
    split_key, init_key, train_key = jax.random.split(key, 3)
    is_validation = validation_split(len(positions), training.validation_fraction, split_key)

    dim = positions.shape[1]
    train, has_gradient = ~is_validation, has_gradient > 0
    if start_from is None:
        whitening = Whitening.fit(positions[train])
        z = whitening.apply_rows(positions)
        z_gradients = whitening.pullback(gradients)
        linear, curvature = fit_base(z[train & has_gradient], z_gradients[train & has_gradient])
        radius = np.max(np.abs(z[train]), axis=0)
        reach = np.quantile(np.linalg.norm(z[train], axis=1), REACH_QUANTILE)
        structured = StructuredNetwork(
            network.build(dim, 1, key=init_key), whitening, radius, reach, linear, curvature,
            np.zeros(1),
        )  # fmt: skip
    else:
        structured = start_from
        z = structured.inputs.apply_rows(positions)
        z_gradients = structured.inputs.pullback(gradients)
    base_values, base_gradients = values_and_gradients(structured.base, z)
    if start_from is None:
        offset = np.median((values - base_values)[train], keepdims=True)
        structured = eqx.tree_at(lambda n: n.offset, structured, offset)
    value_targets = values - np.asarray(structured.offset)[0] - base_values
    gradient_targets = z_gradients - base_gradients
    # Far divergent points (a trajectory that blew up, kept value-only) have no useful weight
    # and would overflow single precision.
    with np.errstate(over="ignore", invalid="ignore"):
        usable = (np.abs(value_targets) < MAX_TARGET) & np.all(
            np.abs(gradient_targets) < MAX_TARGET, axis=1
        )
    z, value_targets, gradient_targets = z[usable], value_targets[usable], gradient_targets[usable]
    has_gradient, is_validation = has_gradient[usable], is_validation[usable]
    weights = np.stack(
        [
            1.0 / (1.0 + value_targets**2 / dim),
            has_gradient / (1.0 + np.mean(gradient_targets**2, axis=1)),
        ],
        axis=1,
    )
    result = _fit(
        Partial(_squashed_sobolev_loss, jnp.asarray(structured.radius)), structured.mlp, z,
        np.column_stack([value_targets, gradient_targets]), weights, is_validation, training,
        train_key, pad_to,
    )  # fmt: skip
    return result._replace(network=eqx.tree_at(lambda n: n.mlp, structured, result.network))
