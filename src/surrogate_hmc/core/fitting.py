"""From the training buffer to a surrogate: one fit, and the record of how it went."""

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import numpy as np
from scipy.stats import chi2

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.compiled import values_and_gradients
from surrogate_hmc.core.lifecycle import TrainingRecord
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.structure import StructuredNetwork
from surrogate_hmc.core.surrogate import (
    SURROGATE_KINDS,
    AbstractLearnedSurrogate,
    SurrogateKind,
)
from surrogate_hmc.core.training import TrainingConfig, fit_log_density, fit_network

__all__ = [
    "MIN_TRAINING_POINTS",
    "REACH_TAIL",
    "REFIT_STEPS_DIVISOR",
    "ExactPrior",
    "fit_surrogate",
    "within_reach",
]

MIN_TRAINING_POINTS = 32
"""Fewest finite exact evaluations worth a training (a fifth of them is held out)."""
REFIT_STEPS_DIVISOR = 4
"""A refit continues from the network in use, with this fraction of the optimizer steps."""
REACH_TAIL = 1e-6
"""Share of a Gaussian posterior's trajectory points that :func:`within_reach` would drop."""


def within_reach(logps: np.ndarray, dim: int, tail: float = REACH_TAIL) -> np.ndarray:
    """Which evaluations lie where the chain's trajectories go now, judged by log-density.

    On a ``dim``-dimensional Gaussian posterior a draw lies ``chi2(dim) / 2`` nats below the
    mode, and a trajectory from it at most its kinetic energy, another ``chi2(dim) / 2``,
    lower. An evaluation more than ``chi2(2 dim).ppf(1 - tail) / 2`` nats below the median of
    the most recent quarter is from a chain's approach or a minor mode it left: training on
    it spends the network where the chain does not return (on a GP, a chain that started in
    the near-zero-noise mode 35 nats below took the held-out error from 0.08 to 1.1).

    Examples
    --------
    >>> logps = np.array([-500.0, -420.0, -12.0, -10.0, -11.0, -25.0, -9.0, -10.5])
    >>> within_reach(logps, dim=2).tolist()
    [False, False, True, True, True, True, True, True]
    """
    logps = np.asarray(logps, dtype=np.float64)
    recent = np.median(logps[-max(1, len(logps) // 4) :])
    return logps >= recent - chi2.ppf(1.0 - tail, 2 * dim) / 2


class ExactPrior(NamedTuple):
    """The cheap part of the log-density, kept exact inside the surrogate (priors, Jacobians)."""

    logdensity: Callable[[jax.Array], jax.Array]
    values_and_gradients: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    """Batched: positions ``(n, dim)`` to values ``(n,)`` and gradients ``(n, dim)``."""

    @classmethod
    def of(cls, logdensity: Callable[[jax.Array], jax.Array]) -> "ExactPrior":
        """Wrap a log-density of one position, with its batched value and gradient."""
        return cls(logdensity, functools.partial(values_and_gradients, logdensity))


def fit_surrogate(
    buffer: TrainingBuffer,
    *,
    kind: SurrogateKind,
    prior: ExactPrior | None,
    network: NetworkConfig,
    training: TrainingConfig,
    key: jax.Array,
    iteration: int,
    max_validation_error: float,
    refit: bool = False,
    start_from: AbstractLearnedSurrogate | None = None,
) -> tuple[AbstractLearnedSurrogate | None, TrainingRecord]:
    """Fit a surrogate of ``kind`` to the buffer's exact evaluations, less the exact ``prior``.

    A ``refit`` of a surrogate in use is recorded as one. With ``start_from`` (a log-density
    surrogate) training continues from its network, with ``1 / REFIT_STEPS_DIVISOR`` of the
    steps. Only the evaluations :func:`within_reach` of where the chain is now are fitted.
    Returns the surrogate (``None`` when there was too little data) and the record the
    lifecycle decides on.

    Examples
    --------
    >>> import numpy as np
    >>> buffer = TrainingBuffer(capacity=256, dim=2)
    >>> for q in np.random.default_rng(0).normal(size=(200, 2)):
    ...     _ = buffer.add(q, -0.5 * q @ q, -q)
    >>> surrogate, record = fit_surrogate(
    ...     buffer, kind="logp", prior=None, network=NetworkConfig(width=16),
    ...     training=TrainingConfig(max_steps=300), key=jax.random.key(0), iteration=50,
    ...     max_validation_error=0.5,
    ... )
    >>> record.passed_validation, surrogate.kind
    (True, 'logp')
    """
    start = time.perf_counter()
    positions, logps, gradients = buffer.positions(), buffer.logps(), buffer.gradients()
    keep = within_reach(logps, positions.shape[1])
    positions, logps, gradients = positions[keep], logps[keep], gradients[keep]
    n_points = len(logps)
    if n_points < MIN_TRAINING_POINTS:
        return None, TrainingRecord(iteration, n_points, refit=refit)
    if prior is not None:
        prior_values, prior_gradients = prior.values_and_gradients(positions)
        logps = logps - np.asarray(prior_values)
        gradients = gradients - np.asarray(prior_gradients)
    if start_from is not None:
        training = dataclasses.replace(
            training, max_steps=max(1, training.max_steps // REFIT_STEPS_DIVISOR)
        )
    options: dict[str, Any] = {
        "network": network,
        "training": training,
        "key": key,
        "pad_to": buffer.capacity,
    }
    if start_from is not None:
        result = fit_log_density(
            positions,
            logps,
            gradients,
            start_from=cast(StructuredNetwork, start_from.network),
            **options,
        )
    elif kind == "logp":
        result = fit_log_density(positions, logps, gradients, **options)
    else:
        result = fit_network(positions, gradients, targets_are_gradients=True, **options)
    record = TrainingRecord(
        iteration=iteration,
        n_points=n_points,
        validation_error=result.validation_error,
        max_validation_error=max_validation_error,
        train_losses=result.train_losses,
        validation_losses=result.validation_losses,
        steps_per_loss=training.eval_every,
        seconds=time.perf_counter() - start,
        refit=refit,
    )
    exact_part = None if prior is None else prior.logdensity
    return SURROGATE_KINDS[kind](result.network, exact_part), record
