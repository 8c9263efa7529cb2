"""The ACE cost network: ``f(theta, x_t)`` regresses the expected distance ``E[d(x, x_t) | theta]``.

Trained on prior simulations ``(theta_i, x_i)`` and targets ``x_t``; every optimizer step draws
fresh ``(i, t)`` pairs, labels them with ``d(x_i, x_t)`` and regresses with a squared loss, so the
network converges to the expected distance (ACE, arXiv:2305.15208, Propositions 1 and 2).

Which pairs are drawn may depend on ``theta_i`` and on ``x_t`` (and on the parameters that made
``x_t``), never on ``x_i``: given ``(theta_i, x_t)`` the label is then still an unbiased draw of
``d(x, x_t)`` with ``x ~ p(x | theta_i)``, and the minimiser is unchanged. Half of each batch
pairs a target with simulations at the parameters nearest to the ones it was simulated from,
so that the region near a cost's minimum, where a posterior concentrates, is densely trained.
A target is never paired with the simulation it was made from (that label is not independent
of it). The noisy copies' spread is taken over all simulations, x_i included: an effect of order
1/n on any one label, left alone.
"""

import functools
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.tree_util import Partial

from surrogate_hmc.core.distances import Distance
from surrogate_hmc.core.network import NetworkConfig, Standardization
from surrogate_hmc.core.optimize import (
    TrainingResult,
    early_stopping,
    guarded_adam,
    optimizer_chunk,
    validation_split,
)
from surrogate_hmc.core.training import TrainingConfig

__all__ = ["CostNetwork", "Targets", "augmented_targets", "build_cost_network", "fit_cost"]

_VALIDATION_PAIRS = 4096
_RELATIVE_FLOOR = 0.01
_NEIGHBOURS = 32


class CostNetwork(eqx.Module):
    """A positive function of parameters ``theta`` and data ``x``.

    The data are standardized per feature and embedded by an MLP; with i.i.d. trials (first axis)
    each trial is embedded and the embeddings averaged, so the network does not depend on the
    trials' order. The cost, in units of the typical distance, is the mean squared difference
    between the embedding and a second MLP's image of the standardized ``theta``, plus a
    softplus of a head MLP of both: the first term gives the cost the sharp valley a distance
    has where the data fit, the second whatever else it needs.

    Examples
    --------
    >>> net = build_cost_network(2, (5,), False, NetworkConfig(width=8), 4, key=jax.random.key(0))
    >>> bool(net(jnp.zeros(2), jnp.ones(5)) > 0)
    True
    """

    theta_scaler: Standardization
    x_scaler: Standardization
    embedding: eqx.nn.MLP
    anchor: eqx.nn.MLP
    head: eqx.nn.MLP
    scale: jax.Array
    iid_trials: bool = eqx.field(static=True)

    def __call__(self, theta: jax.Array, x: jax.Array) -> jax.Array:
        """The estimated expected distance (a positive scalar) for one ``theta`` and ``x``."""
        if self.iid_trials:
            trials = self.x_scaler.apply(jnp.reshape(x, (x.shape[0], -1)))
            embedded = jnp.mean(jax.vmap(self.embedding)(trials), axis=0)
        else:
            embedded = self.embedding(self.x_scaler.apply(jnp.ravel(x)))
        standardized = self.theta_scaler.apply(theta)
        valley = jnp.mean((self.anchor(standardized) - embedded) ** 2)
        rest = jax.nn.softplus(self.head(jnp.concatenate([standardized, embedded]))[0])
        return self.scale * (valley + rest)


def _features(data_shape: tuple[int, ...], iid_trials: bool) -> int:
    return int(np.prod(data_shape[1:] if iid_trials else data_shape, dtype=int))


def build_cost_network(
    theta_dim: int,
    data_shape: tuple[int, ...],
    iid_trials: bool,
    network: NetworkConfig,
    embedding_size: int,
    *,
    key: jax.Array,
    theta_scaler: Standardization | None = None,
    x_scaler: Standardization | None = None,
    scale: float = 1.0,
) -> CostNetwork:
    """A freshly initialised :class:`CostNetwork` (identity standardizations unless given).

    Its three MLPs have the architecture ``network``: the data embedding (of length
    ``embedding_size``; per trial when ``iid_trials``), the anchor of ``theta`` in the
    embedding space, and the head. ``scale`` is the typical distance.

    Examples
    --------
    >>> net = build_cost_network(1, (10, 2), True, NetworkConfig(width=8), 4, key=jax.random.key(0))
    >>> net.embedding.in_size, net.head.in_size
    (2, 5)
    """
    features = _features(data_shape, iid_trials)
    embed_key, anchor_key, head_key = jax.random.split(key, 3)
    ones_theta, ones_x = np.ones(theta_dim), np.ones(features)
    return CostNetwork(
        theta_scaler=theta_scaler or Standardization(0 * ones_theta, ones_theta),
        x_scaler=x_scaler or Standardization(0 * ones_x, ones_x),
        embedding=network.build(features, embedding_size, key=embed_key),
        anchor=network.build(theta_dim, embedding_size, key=anchor_key),
        head=network.build(theta_dim + embedding_size, 1, key=head_key),
        # Strongly typed, like the trained scale: the training chunks share one compilation.
        scale=jnp.asarray(float(scale), dtype=jnp.float64),
        iid_trials=iid_trials,
    )


class Targets(NamedTuple):
    """Targets ``x_t`` and, for each, the simulation it was made from (``-1``: none).

    Examples
    --------
    >>> Targets(np.zeros((2, 3)), np.array([0, -1])).source.tolist()
    [0, -1]
    """

    data: np.ndarray
    source: np.ndarray


def augmented_targets(
    simulations: np.ndarray,
    *,
    noise: float,
    rng: np.random.Generator,
    observations: np.ndarray | None = None,
) -> Targets:
    """Targets ``x_t``: the simulations, noisy copies of them, and the observations if given.

    The copies add Gaussian noise of ``noise`` times each feature's spread across simulations,
    so that observations outside the prior predictive (a misspecified model) are still near
    something the network was trained on.

    Examples
    --------
    >>> sims = np.arange(6.0).reshape(3, 2)
    >>> targets = augmented_targets(sims, noise=0.5, rng=np.random.default_rng(0))
    >>> targets.data.shape, targets.source.tolist()
    ((6, 2), [0, 1, 2, 0, 1, 2])
    """
    n = len(simulations)
    spread = np.std(simulations, axis=0, keepdims=True)
    copies = simulations + noise * spread * rng.standard_normal(simulations.shape)
    parts, sources = [simulations], [np.arange(n)]
    if noise > 0:
        parts.append(copies)
        sources.append(np.arange(n))
    if observations is not None:
        observed = np.reshape(observations, (-1, *simulations.shape[1:]))
        parts.append(observed)
        sources.append(np.full(len(observed), -1))
    return Targets(np.concatenate(parts), np.concatenate(sources))


def nearest_rows(points: np.ndarray, n_candidates: int, k: int) -> np.ndarray:
    """For each point, the indices of its ``k`` nearest among ``points[:n_candidates]``.

    A point is never its own neighbour (other points at the same place may be). Computed in
    blocks, so memory stays small for many simulations.

    Examples
    --------
    >>> nearest_rows(np.array([[0.0], [1.0], [3.0], [1.1]]), 3, 1).ravel().tolist()
    [1, 0, 1, 1]
    """
    candidates = points[:n_candidates]
    k = min(k, n_candidates - 1)
    if k < 1:
        raise ValueError("Finding neighbours needs at least two candidates.")
    found = np.empty((len(points), k), dtype=np.int64)
    squared_norms = np.sum(candidates**2, axis=1)
    for start in range(0, len(points), 256):
        block = points[start : start + 256]
        squared = squared_norms - 2 * block @ candidates.T + np.sum(block**2, axis=1)[:, None]
        own = np.arange(start, start + len(block))
        inside = own < n_candidates
        squared[np.flatnonzero(inside), own[inside]] = np.inf
        found[start : start + 256] = np.argpartition(squared, k - 1, axis=1)[:, :k]
    return found


def _squared_error(params, static, theta, targets, labels, keep):
    # Relative to the prediction, which depends on (theta, x_t) only: the minimiser is still
    # the expected distance, and small costs, where a posterior concentrates, are fit as well
    # as large ones.
    network = eqx.combine(params, static)
    predicted = jax.vmap(network)(theta, targets)
    reference = jax.lax.stop_gradient(predicted) + _RELATIVE_FLOOR * network.scale
    squared = jnp.where(keep, ((predicted - labels) / reference) ** 2, 0.0)
    return jnp.sum(squared) / jnp.maximum(jnp.sum(keep), 1)


def _validation_error(params, static, theta, targets, labels, keep):
    # In units of the typical distance, so that its minimiser is the expected distance too.
    network = eqx.combine(params, static)
    predicted = jax.vmap(network)(theta, targets)
    squared = jnp.where(keep, ((predicted - labels) / network.scale) ** 2, 0.0)
    return jnp.sum(squared) / jnp.maximum(jnp.sum(keep), 1)


@functools.cache
def _cost_optimizer(learning_rate: float, max_steps: int) -> optax.GradientTransformation:
    # Cached, so that refits with the same settings reuse one compiled training step.
    return guarded_adam(optax.cosine_decay_schedule(learning_rate, max_steps, 0.01))


def _pairs(key, batch, n_train, sources, sourced, neighbours):
    # Half uniform pairs, half a target with a simulation near the parameters it came from.
    uniform_key, target_key, local_key, neighbour_key = jax.random.split(key, 4)
    half = batch // 2
    uniform_rows = jax.random.randint(uniform_key, (batch - half,), 0, n_train)
    uniform_targets = jax.random.randint(target_key, (batch - half,), 0, sources.shape[0])
    local_targets = sourced[jax.random.randint(local_key, (half,), 0, sourced.shape[0])]
    which = jax.random.randint(neighbour_key, (half,), 0, neighbours.shape[1])
    local_rows = neighbours[sources[local_targets], which]
    rows = jnp.concatenate([uniform_rows, local_rows])
    picked = jnp.concatenate([uniform_targets, local_targets])
    return rows, picked, rows != sources[picked]


def _pair_loss(distance, n_train, batch, params, static, data, key):
    theta, simulations, targets, pairing = data
    rows, picked, keep = _pairs(key, batch, n_train, *pairing)
    labels = jax.vmap(distance)(simulations[rows], targets[picked])
    return _squared_error(params, static, theta[rows], targets[picked], labels, keep)


def fit_cost(
    theta: np.ndarray,
    simulations: np.ndarray,
    targets: Targets,
    *,
    distance: Distance,
    iid_trials: bool,
    network: NetworkConfig,
    training: TrainingConfig,
    embedding_size: int,
    key: jax.Array,
) -> TrainingResult:
    """Fit a :class:`CostNetwork` to the expected ``distance`` between simulations and targets.

    A ``validation_fraction`` of the simulations is held out; the validation loss is the squared
    error, in units of the typical distance, on fixed held-out (simulation, target) pairs. It
    includes the labels' own noise, so it does not go to 0: it is used for early stopping. Unless
    ``training.optimizer`` is given, Adam's learning rate decays along a cosine to 1% at
    ``training.max_steps``, which averages out the labels' noise.

    Parameters
    ----------
    theta
        Parameters of each simulation, shape ``(n, p)``.
    simulations
        The simulations, shape ``(n, *data_shape)``; i.i.d. trials along ``data_shape[0]``.
    targets
        Targets ``x_t``, data of shape ``(m, *data_shape)``, with the simulation each was made
        from (see :func:`augmented_targets`).
    distance
        ``distance(x, x_t)`` in JAX (see :mod:`surrogate_hmc.core.distances`).
    iid_trials
        Whether to embed the data's first axis as exchangeable trials.
    network, training
        Architecture of the embedding and head MLPs; optimizer settings.
    embedding_size
        Length of the data embedding.
    key
        Randomness of initialisation, split and pairs.

    Examples
    --------
    >>> from surrogate_hmc.core.distances import mse
    >>> rng = np.random.default_rng(0)
    >>> theta = rng.uniform(-1, 1, (500, 1))
    >>> sims = theta + 0.1 * rng.standard_normal((500, 1))
    >>> targets = augmented_targets(sims, noise=0.5, rng=rng)
    >>> fit = fit_cost(
    ...     theta, sims, targets, distance=mse, iid_trials=False, network=NetworkConfig(width=16),
    ...     training=TrainingConfig(max_steps=500), embedding_size=4, key=jax.random.key(0),
    ... )
    >>> bool(fit.validation_error < 1.0)
    True
    """
    theta = np.asarray(theta, dtype=np.float64)
    simulations = np.asarray(simulations, dtype=np.float64)
    target_data = np.asarray(targets.data, dtype=np.float64)
    split_key, init_key, label_key, train_key = jax.random.split(key, 4)
    is_validation = validation_split(len(theta), training.validation_fraction, split_key)
    order = np.argsort(is_validation, kind="stable")  # training rows first
    theta, simulations = theta[order], simulations[order]
    new_row = np.empty_like(order)
    new_row[order] = np.arange(len(order))
    sources = np.where(targets.source >= 0, new_row[np.maximum(targets.source, 0)], -1)
    n_train = int((~is_validation).sum())
    if n_train < 2:
        raise ValueError(
            f"{len(theta)} simulations leave {n_train} to train on after the validation split; "
            "the cost network needs many more (thousands are typical)."
        )
    theta_scaler = Standardization.fit(theta[:n_train])
    standardized = np.asarray(theta_scaler.apply(theta))
    pairing = (
        jnp.asarray(sources),
        jnp.asarray(np.flatnonzero(sources >= 0)),
        jnp.asarray(nearest_rows(standardized, n_train, _NEIGHBOURS)),
    )

    labels_of = jax.jit(jax.vmap(distance))
    pair_key, sim_key, target_key = jax.random.split(label_key, 3)
    n_pairs = _VALIDATION_PAIRS
    validation_rows = np.asarray(jax.random.randint(sim_key, (n_pairs,), n_train, len(theta)))
    validation_targets = np.asarray(jax.random.randint(target_key, (n_pairs,), 0, len(sources)))
    validation_labels = labels_of(simulations[validation_rows], target_data[validation_targets])
    train_rows = np.asarray(jax.random.randint(pair_key, (n_pairs,), 0, n_train))
    scale = float(np.mean(labels_of(simulations[train_rows], target_data[validation_targets])))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"The distance between simulations and targets has mean {scale!r}; it must be "
            "positive and finite."
        )

    trials = _features(simulations.shape[1:], iid_trials)
    x_rows = np.reshape(simulations[:n_train], (-1, trials))
    cost_network = build_cost_network(
        theta.shape[1], simulations.shape[1:], iid_trials, network, embedding_size,
        key=init_key, theta_scaler=theta_scaler, x_scaler=Standardization.fit(x_rows),
        scale=scale,
    )  # fmt: skip
    optimizer = training.optimizer or _cost_optimizer(training.learning_rate, training.max_steps)
    params, static = eqx.partition(cost_network, eqx.is_inexact_array)
    data = (*(jnp.asarray(a) for a in (theta, simulations, target_data)), pairing)
    validation = (
        jnp.asarray(theta[validation_rows]),
        jnp.asarray(target_data[validation_targets]),
        jnp.asarray(validation_labels),
        jnp.asarray(validation_rows != sources[validation_targets]),
    )
    validation_loss = eqx.filter_jit(_validation_error)
    batch_loss = Partial(_pair_loss, distance, n_train, min(training.batch_size, n_train))

    def run_chunk(params, opt_state, key):
        return optimizer_chunk(
            params, static, opt_state, optimizer, batch_loss, data, key, training.eval_every
        )

    result = early_stopping(
        run_chunk,
        lambda params: float(validation_loss(params, static, *validation)),
        params,
        optimizer.init(params),
        train_key,
        max_steps=training.max_steps,
        eval_every=training.eval_every,
        patience=training.patience,
    )
    return result._replace(network=eqx.combine(result.network, static))
