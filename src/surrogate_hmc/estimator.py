"""``CostEstimator``: the trained ACE cost network of a simulator model, as plain data."""

import os
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm

from surrogate_hmc.core.cost_network import (
    CostNetwork,
    augmented_targets,
    build_cost_network,
    fit_cost,
)
from surrogate_hmc.core.distances import DISTANCES, resolve
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.persistence import (
    all_finite,
    archive_error,
    module_arrays,
    module_from_arrays,
    numbered_arrays,
    read_archive,
    write_archive,
)
from surrogate_hmc.core.trained import count_values, describe_variables
from surrogate_hmc.core.training import TrainingConfig
from surrogate_hmc.core.validation import check_int, check_real
from surrogate_hmc.simulation import (
    SimulatorModel,
    default_executor,
    draw_prior,
    run_simulations,
)

__all__ = ["CostEstimator"]

_FORMAT = "surrogate-hmc-cost/3"
_RECREATE = "fit the estimator again with shmc.CostEstimator.fit(model) and save it"
_WHAT = "cost estimator"
_ACE_TRAINING = TrainingConfig(batch_size=256, max_steps=5000, patience=8)


@dataclass(frozen=True, eq=False)
class CostEstimator:
    """A network ``f(theta, x)`` of the expected distance between simulations and data.

    Fit it once on prior simulations of a model with a ``pm.Simulator`` (:meth:`fit`), then
    sample generalized-Bayes posteriors ``p(theta) exp(-beta f(theta, x_o))`` for any
    observation ``x_o`` with :class:`~surrogate_hmc.ACE`, without new simulations. It holds
    NumPy arrays only: it pickles to worker processes, and :meth:`save` writes a ``.npz`` file
    without pickled objects.

    Attributes
    ----------
    variables
        ``(name, shape)`` of the parameters (the model's free variables), in order.
    data_shape
        Shape of one simulation (and of an observation).
    iid_trials
        Whether the first data axis holds i.i.d. trials (embedded order-free).
    distance
        The distance trained on: its ``name`` and settings (``bandwidth`` for ``"mmd"``).
    network, embedding_size
        The architecture of the embedding and head MLPs.
    arrays
        The network's arrays, in tree order.
    n_simulations
        Simulations kept for training (``n_failed`` more failed).
    validation_error
        Root mean squared error on held-out pairs, in units of the typical distance (it
        includes the labels' own noise, so it stays above 0).

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> def simulate(rng, theta, size=None):
    ...     return theta + 0.1 * rng.normal(size=2)
    >>> with pm.Model() as model:
    ...     theta = pm.Uniform("theta", -1, 1, shape=2)
    ...     _ = pm.Simulator("x", simulate, theta, observed=np.zeros(2))
    >>> estimator = CostEstimator.fit(
    ...     model, n_simulations=200, executor=None, random_seed=0, progressbar=False,
    ...     training=TrainingConfig(max_steps=200),
    ... )
    >>> estimator.predict(np.zeros(2), np.zeros(2)).shape
    ()
    >>> estimator  # doctest: +ELLIPSIS
    CostEstimator(variables=[theta (2,)], data_shape=(2,), distance=mse, iid_trials=False, ...)
    """

    variables: tuple[tuple[str, tuple[int, ...]], ...]
    data_shape: tuple[int, ...]
    iid_trials: bool
    distance: dict[str, Any]
    network: NetworkConfig
    embedding_size: int
    arrays: tuple[np.ndarray, ...]
    n_simulations: int = 0
    n_failed: int = 0
    validation_error: float = float("nan")
    train_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validation_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __repr__(self) -> str:
        """One line: the parameters, data, distance, network and fit, without the arrays."""
        settings = ", ".join(f"{k}={_short(v)}" for k, v in self.distance.items() if k != "name")
        distance = str(self.distance.get("name")) + (f"({settings})" if settings else "")
        failed = f", n_failed={self.n_failed}" if self.n_failed else ""
        curves = {"train_losses": self.train_losses, "validation_losses": self.validation_losses}
        losses = "".join(f", {k}=<{count_values(len(v))}>" for k, v in curves.items() if len(v))
        return (
            f"CostEstimator(variables={describe_variables(self.variables, 8)}, "
            f"data_shape={self.data_shape}, distance={distance}, iid_trials={self.iid_trials}, "
            f"network={self.network}, embedding_size={self.embedding_size}, "
            f"n_simulations={self.n_simulations}{failed}, "
            f"validation_error={self.validation_error:.3g}{losses})"
        )

    @property
    def dim(self) -> int:
        """Number of parameters (length of a raveled ``theta``)."""
        return int(sum(np.prod(shape, dtype=int) for _, shape in self.variables))

    @classmethod
    def fit(
        cls,
        model: pm.Model | None = None,
        n_simulations: int = 2000,
        *,
        distance="mse",
        iid_trials: bool | None = None,
        target_noise: float = 1.0,
        include_observed: bool = True,
        network: NetworkConfig | None = None,
        embedding_size: int = 16,
        training: TrainingConfig | None = None,
        executor: Executor | str | None = "processes",
        random_seed: int | None = None,
        progressbar: bool = True,
    ) -> "CostEstimator":
        """Simulate from the prior and train the cost network.

        Parameters
        ----------
        model
            A PyMC model with priors and one ``pm.Simulator`` (default: the model in context).
        n_simulations
            Prior simulations to run.
        distance
            ``"mse"``, ``"mae"``, ``"mmd"`` (data with i.i.d. trials; Gaussian kernel, median
            heuristic bandwidth), ``"energy"`` (energy score, i.i.d. trials), or a function
            ``distance(x, x_t)`` of two arrays of the data's shape written with ``jax.numpy``.
        iid_trials
            Whether the data's first axis holds i.i.d. trials; defaults to ``True`` for
            ``"mmd"`` and ``"energy"``, else ``False``.
        target_noise
            Noise, in units of each feature's spread, of the noisy copies of the simulations
            added to the targets (0: none). They let the network judge observations outside
            the prior predictive.
        include_observed
            Add the model's observation to the targets.
        network, embedding_size, training
            Architecture and optimizer settings.
        executor
            Where simulations run: ``"processes"`` (local worker processes, the default),
            ``None`` (this process) or any ``concurrent.futures.Executor``, such as
            ``dask.distributed.Client(...).get_executor()``.
        random_seed
            Seed of prior draws, simulations and training.
        progressbar
            Show a progress bar while simulating.
        """
        model = pm.modelcontext(model)
        simulator_model = SimulatorModel.from_model(model)
        n_simulations = check_int("n_simulations", n_simulations)
        target_noise = check_real("target_noise", target_noise, low=0.0)
        embedding_size = check_int("embedding_size", embedding_size)
        if not (callable(distance) or distance in DISTANCES):
            raise ValueError(
                f"distance must be one of {DISTANCES} or a function of (simulation, target) "
                f"written with jax.numpy, got {distance!r}."
            )
        iid_trials = distance in ("mmd", "energy") if iid_trials is None else bool(iid_trials)
        if iid_trials and simulator_model.observed.ndim == 0:
            raise ValueError("iid_trials needs data with a trials axis (at least 1-D).")
        network = network or NetworkConfig(width=64)
        training = training or _ACE_TRAINING
        seeds = np.random.SeedSequence(random_seed).generate_state(3)

        theta, inputs = draw_prior(model, n_simulations, int(seeds[0]))
        own_pool = executor == "processes"
        pool = default_executor() if own_pool else executor
        if pool is not None and not isinstance(pool, Executor):
            raise ValueError(f"executor must be 'processes', None or an Executor, got {pool!r}.")
        try:
            simulations = run_simulations(
                simulator_model, theta, inputs, executor=pool, seed=int(seeds[1]),
                progressbar=progressbar,
            )  # fmt: skip
        finally:
            if own_pool and pool is not None:
                pool.shutdown()
        targets = augmented_targets(
            simulations.data,
            noise=target_noise,
            rng=np.random.default_rng(seeds[2]),
            observations=simulator_model.observed if include_observed else None,
        )
        distance_fn, settings = resolve(distance, simulations.data)
        result = fit_cost(
            simulations.theta, simulations.data, targets, distance=distance_fn,
            iid_trials=iid_trials, network=network, training=training,
            embedding_size=embedding_size, key=jax.random.key(int(seeds[2])),
        )  # fmt: skip
        return cls(
            variables=simulator_model.variables,
            data_shape=tuple(simulator_model.observed.shape),
            iid_trials=iid_trials,
            distance=settings,
            network=network,
            embedding_size=embedding_size,
            arrays=module_arrays(result.network),
            n_simulations=len(simulations),
            n_failed=simulations.n_failed,
            validation_error=result.validation_error,
            train_losses=result.train_losses,
            validation_losses=result.validation_losses,
        )

    def build(self) -> CostNetwork:
        """The cost network as an Equinox module."""
        skeleton = build_cost_network(
            self.dim, self.data_shape, self.iid_trials, self.network, self.embedding_size,
            key=jax.random.key(0),
        )  # fmt: skip
        return module_from_arrays(skeleton, self.arrays, "the cost network they describe")

    def predict(self, theta, x) -> np.ndarray:
        """Estimated expected distance between simulations at ``theta`` and the data ``x``.

        ``theta`` is a raveled parameter vector (shape ``(..., dim)``) or a dict of the
        variables; ``x`` has the data's shape, or a batch of them with the same leading shape
        as ``theta``.
        """
        if isinstance(theta, dict):
            theta = np.concatenate(
                [_ravel_trailing(theta[name], shape) for name, shape in self.variables], axis=-1
            )
        theta = np.asarray(theta, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        if theta.shape[-1:] != (self.dim,):
            raise ValueError(f"theta must have {self.dim} parameters, got shape {theta.shape}.")
        if x.shape[x.ndim - len(self.data_shape) :] != self.data_shape:
            raise ValueError(f"x must end with the data shape {self.data_shape}, got {x.shape}.")
        batch = np.broadcast_shapes(theta.shape[:-1], x.shape[: x.ndim - len(self.data_shape)])
        theta = np.broadcast_to(theta, (*batch, self.dim)).reshape(-1, self.dim)
        x = np.broadcast_to(x, (*batch, *self.data_shape)).reshape(-1, *self.data_shape)
        costs = jax.vmap(self.build())(jnp.asarray(theta), jnp.asarray(x))
        return np.asarray(costs).reshape(batch)

    def check(self, simulator_model: SimulatorModel) -> None:
        """Raise a clear ``ValueError`` unless the model's parameters and data fit."""
        if simulator_model.variables != self.variables:
            raise ValueError(
                "The cost estimator was fit for the parameters "
                f"{describe_variables(self.variables)}, but this model has "
                f"{describe_variables(simulator_model.variables)}. Fit one for this model with "
                "shmc.CostEstimator.fit(model)."
            )
        if simulator_model.observed.shape != self.data_shape:
            raise ValueError(
                f"The observation has shape {simulator_model.observed.shape}, but the cost "
                f"estimator was fit on simulations of shape {self.data_shape}."
            )

    def save(self, path: str | os.PathLike):
        """Write to exactly ``path``, atomically; return the path."""
        metadata = {
            "format": _FORMAT,
            "variables": [[name, list(shape)] for name, shape in self.variables],
            "data_shape": list(self.data_shape),
            "iid_trials": self.iid_trials,
            "distance": self.distance,
            "network": asdict(self.network),
            "embedding_size": self.embedding_size,
            "n_simulations": self.n_simulations,
            "n_failed": self.n_failed,
            "validation_error": self.validation_error,
        }
        arrays = {f"array_{i:03d}": a for i, a in enumerate(self.arrays)}
        arrays |= {"train_losses": self.train_losses, "validation_losses": self.validation_losses}
        return write_archive(path, metadata, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CostEstimator":
        """Read an estimator written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If ``path`` is a directory, or the file is damaged, altered, written by another
            program or version, or holds arrays that do not make the network it records: the
            message names the file and says what is wrong.
        """
        metadata, data = read_archive(
            path, _FORMAT, _WHAT, recreate=_RECREATE, saved_by="CostEstimator.save"
        )
        try:
            estimator = cls(
                variables=tuple((name, tuple(shape)) for name, shape in metadata["variables"]),
                data_shape=tuple(metadata["data_shape"]),
                iid_trials=bool(metadata["iid_trials"]),
                distance=metadata["distance"],
                network=NetworkConfig(**metadata["network"]),
                embedding_size=int(metadata["embedding_size"]),
                arrays=numbered_arrays(data),
                n_simulations=int(metadata["n_simulations"]),
                n_failed=int(metadata["n_failed"]),
                validation_error=float(metadata["validation_error"]),
                train_losses=data["train_losses"],
                validation_losses=data["validation_losses"],
            )
        except KeyError as error:
            raise archive_error(path, _WHAT, f"it lacks {error}") from error
        except (TypeError, ValueError) as error:
            reason = f"its records are invalid ({str(error).rstrip('.')})"
            raise archive_error(path, _WHAT, reason) from error
        try:  # refuse a damaged file now, not when sampling
            estimator.build()
        except (TypeError, ValueError) as error:
            reason = (
                f"its arrays do not fit the network it records ({estimator.network} for "
                f"{estimator.dim} parameters and data of shape {estimator.data_shape})"
            )
            raise archive_error(path, _WHAT, reason) from error
        if not all_finite(estimator.arrays):
            raise archive_error(path, _WHAT, "its network weights are not all finite numbers")
        return estimator


def _ravel_trailing(value, shape: tuple[int, ...]) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    return np.reshape(value, (*value.shape[: value.ndim - len(shape)], -1))


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else repr(value)
