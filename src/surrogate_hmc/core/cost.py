"""The ACE cost network: ``f(theta, x_t)`` regresses the expected distance ``E[d(x, x_t) | theta]``.

Trained on prior simulations ``(theta_i, x_i)`` and targets ``x_t``; every optimizer step draws
fresh ``(i, t)`` pairs, labels them with ``d(x_i, x_t)`` and regresses with a squared loss, so the
network converges to the expected distance (ACE, arXiv:2305.15208, Propositions 1 and 2).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.distances import Distance
from surrogate_hmc.core.network import NetworkConfig, Standardization
from surrogate_hmc.core.training import (
    TrainingConfig,
    TrainingResult,
    _optimizer,
    _validation_split,
    early_stopping,
)

__all__ = ["CostNetwork", "augmented_targets", "build_cost_network", "fit_cost"]

_VALIDATION_PAIRS = 4096
_RELATIVE_FLOOR = 0.05


class CostNetwork(eqx.Module):
    """A positive function of parameters ``theta`` and data ``x``.

    The data are standardized per feature and embedded by an MLP; with i.i.d. trials (first axis)
    each trial is embedded and the embeddings averaged, so the network does not depend on the
    trials' order. A head MLP maps the standardized ``theta`` and the embedding to a softplus,
    scaled to the typical distance.

    Examples
    --------
    >>> net = build_cost_network(2, (5,), False, NetworkConfig(width=8), 4, key=jax.random.key(0))
    >>> bool(net(jnp.zeros(2), jnp.ones(5)) > 0)
    True
    """

    theta_scaler: Standardization
    x_scaler: Standardization
    embedding: eqx.nn.MLP
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
        features = jnp.concatenate([self.theta_scaler.apply(theta), embedded])
        return self.scale * jax.nn.softplus(self.head(features)[0])


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
    """A freshly initialised :class:`CostNetwork` (identity standardizations unless given)."""
    features = _features(data_shape, iid_trials)
    embed_key, head_key = jax.random.split(key)
    ones_theta, ones_x = np.ones(theta_dim), np.ones(features)
    return CostNetwork(
        theta_scaler=theta_scaler or Standardization(0 * ones_theta, ones_theta),
        x_scaler=x_scaler or Standardization(0 * ones_x, ones_x),
        embedding=network.build(features, embedding_size, key=embed_key),
        head=network.build(theta_dim + embedding_size, 1, key=head_key),
        scale=jnp.asarray(float(scale)),
        iid_trials=iid_trials,
    )


def augmented_targets(
    simulations: np.ndarray,
    *,
    noise: float,
    rng: np.random.Generator,
    observations: np.ndarray | None = None,
) -> np.ndarray:
    """Targets ``x_t``: the simulations, noisy copies of them, and the observations if given.

    The copies add Gaussian noise of ``noise`` times each feature's spread across simulations,
    so that observations outside the prior predictive (a misspecified model) are still near
    something the network was trained on.
    """
    spread = np.std(simulations, axis=0, keepdims=True)
    copies = simulations + noise * spread * rng.standard_normal(simulations.shape)
    parts = [simulations, copies] if noise > 0 else [simulations]
    if observations is not None:
        parts.append(np.reshape(observations, (-1, *simulations.shape[1:])))
    return np.concatenate(parts)


def _squared_error(params, static, theta, targets, labels):
    # Relative to the prediction, which depends on (theta, x_t) only: the minimiser is still
    # the expected distance, and small costs, where a posterior concentrates, are fit as well
    # as large ones.
    network = eqx.combine(params, static)
    predicted = jax.vmap(network)(theta, targets)
    reference = jax.lax.stop_gradient(predicted) + _RELATIVE_FLOOR * network.scale
    return jnp.mean(((predicted - labels) / reference) ** 2)


@eqx.filter_jit
def _cost_chunk(
    params, static, opt_state, optimizer, distance, theta, simulations, targets, n_train, key,
    n_steps, batch,
):  # fmt: skip
    labels_of = jax.vmap(distance)

    def step(carry, key):
        params, opt_state = carry
        sim_key, target_key = jax.random.split(key)
        rows = jax.random.randint(sim_key, (batch,), 0, n_train)
        picked = jax.random.randint(target_key, (batch,), 0, targets.shape[0])
        labels = labels_of(simulations[rows], targets[picked])
        loss, grads = jax.value_and_grad(_squared_error)(
            params, static, theta[rows], targets[picked], labels
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (eqx.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), jax.random.split(key, n_steps)
    )
    return params, opt_state, jnp.mean(losses)


def fit_cost(
    theta: np.ndarray,
    simulations: np.ndarray,
    targets: np.ndarray,
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
    includes the labels' own noise, so it does not go to 0: it is used for early stopping.

    Parameters
    ----------
    theta
        Parameters of each simulation, shape ``(n, p)``.
    simulations
        The simulations, shape ``(n, *data_shape)``; i.i.d. trials along ``data_shape[0]``.
    targets
        Targets ``x_t``, shape ``(m, *data_shape)`` (see :func:`augmented_targets`).
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
    >>> fit = fit_cost(
    ...     theta, sims, sims, distance=mse, iid_trials=False, network=NetworkConfig(width=16),
    ...     training=TrainingConfig(max_steps=500), embedding_size=4, key=jax.random.key(0),
    ... )
    >>> bool(fit.validation_error < 1.0)
    True
    """
    theta = np.asarray(theta, dtype=np.float64)
    simulations = np.asarray(simulations, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    split_key, init_key, label_key, train_key = jax.random.split(key, 4)
    is_validation = _validation_split(len(theta), training.validation_fraction, split_key)
    order = np.argsort(is_validation, kind="stable")  # training rows first
    theta, simulations = theta[order], simulations[order]
    n_train = int((~is_validation).sum())

    labels_of = jax.jit(jax.vmap(distance))
    pair_key, sim_key, target_key = jax.random.split(label_key, 3)
    n_pairs = _VALIDATION_PAIRS
    validation_rows = np.asarray(jax.random.randint(sim_key, (n_pairs,), n_train, len(theta)))
    validation_targets = np.asarray(jax.random.randint(target_key, (n_pairs,), 0, len(targets)))
    validation_labels = labels_of(simulations[validation_rows], targets[validation_targets])
    train_rows = np.asarray(jax.random.randint(pair_key, (n_pairs,), 0, n_train))
    scale = float(np.mean(labels_of(simulations[train_rows], targets[validation_targets])))
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"The distance between simulations and targets has mean {scale!r}; it must be "
            "positive and finite."
        )

    trials = _features(simulations.shape[1:], iid_trials)
    x_rows = np.reshape(simulations[:n_train], (-1, trials))
    cost_network = build_cost_network(
        theta.shape[1], simulations.shape[1:], iid_trials, network, embedding_size,
        key=init_key, theta_scaler=Standardization.fit(theta[:n_train]),
        x_scaler=Standardization.fit(x_rows), scale=scale,
    )  # fmt: skip
    optimizer = _optimizer(training)
    params, static = eqx.partition(cost_network, eqx.is_inexact_array)
    theta_d, simulations_d, targets_d = (jnp.asarray(a) for a in (theta, simulations, targets))
    validation = (
        jnp.asarray(theta[validation_rows]),
        jnp.asarray(targets[validation_targets]),
        jnp.asarray(validation_labels),
    )
    validation_loss = eqx.filter_jit(_squared_error)
    batch = min(training.batch_size, n_train)

    def run_chunk(params, opt_state, key):
        return _cost_chunk(
            params, static, opt_state, optimizer, distance, theta_d, simulations_d, targets_d,
            n_train, key, training.eval_every, batch,
        )  # fmt: skip

    result = early_stopping(
        run_chunk,
        lambda params: float(validation_loss(params, static, *validation)),
        params,
        optimizer.init(params),
        training,
        train_key,
    )
    return result._replace(network=eqx.combine(result.network, static))
