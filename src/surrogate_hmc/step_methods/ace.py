"""``ACE``: NUTS on the generalized-Bayes posterior of a simulator model, with a learned cost."""

import os
import time
from dataclasses import field
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
from pymc.blocking import RaveledVars
from pymc.step_methods.arraystep import ArrayStepShared
from pymc.step_methods.compound import Competence, StepMethodState
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
from pymc.step_methods.state import dataclass_state
from pymc.step_methods.step_sizes import DualAverageAdaptation

from surrogate_hmc.core.cost import CostNetwork
from surrogate_hmc.core.surrogate import surrogate_nuts
from surrogate_hmc.estimator import CostEstimator
from surrogate_hmc.simulation import SimulatorModel
from surrogate_hmc.step_methods.model_functions import exact_prior_logdensity

__all__ = ["ACE", "GBILogDensity"]

_SURROGATE_PHASE = 1


class GBILogDensity(eqx.Module):
    """``log p(theta) + log|J| - beta f(theta, x_o)`` on the sampler's unconstrained vector."""

    prior: Any = eqx.field(static=True)
    to_theta: Any = eqx.field(static=True)
    cost: CostNetwork
    observed: jax.Array
    beta: float

    def __call__(self, q: jax.Array) -> jax.Array:
        """The log-density at the unconstrained position ``q``."""
        return self.prior(q) - self.beta * self.cost(self.to_theta(q), self.observed)


@dataclass_state
class ACEState(StepMethodState):
    potential: Any
    step_adapt: Any
    tune: bool
    iter_count: int
    beta: float = field(metadata={"frozen": True})


class ACE(ArrayStepShared):
    """Sample ``p(theta | x_o) ∝ p(theta) exp(-beta f(theta, x_o))`` of a ``pm.Simulator`` model.

    ``f`` is a :class:`~surrogate_hmc.CostEstimator`: a network of the expected distance between
    simulations at ``theta`` and the observation ``x_o`` (amortized cost estimation,
    arXiv:2305.15208). Sampling runs no simulation: NUTS (BlackJAX, one compiled call per draw)
    runs on that log-density, with the priors and transform Jacobians exact, and adapts its step
    size and diagonal mass matrix during tuning as PyMC's NUTS does. The same estimator serves
    any observation of the same shape: a model with the same parameters and another observed
    value needs no new simulation.

    Parameters
    ----------
    vars
        The model's free variables (default: all; ACE samples them all jointly).
    estimator
        A fitted :class:`~surrogate_hmc.CostEstimator`, or the path of a saved one. Without it,
        one is fit first with ``n_simulations`` and ``fit_kwargs``.
    beta
        Inverse temperature of the generalized-Bayes posterior (> 0): larger values concentrate
        it on parameters whose simulations are closer to the data.
    n_simulations
        Simulations for the estimator fit when none is given.
    fit_kwargs
        Other arguments of :meth:`CostEstimator.fit` (``distance``, ``executor``, ...).
    target_accept, max_treedepth, max_energy_error
        NUTS settings, as in PyMC's NUTS.
    model
        The model (default: the one in context).
    rng
        Seed or generator (``pm.sample`` sets one per chain).

    Notes
    -----
    There is no exact model to correct with: the network *defines* the generalized-Bayes
    posterior, as in the paper. Its accuracy is the estimator's ``validation_error``.

    Sample stats: ``acceptance_rate``, ``diverging``, ``energy``, ``energy_error``,
    ``step_size``, ``step_size_bar``, ``n_steps``, ``tree_depth``, ``reached_max_treedepth``,
    ``model_logp`` (the generalized-Bayes log-density), and, as for ``SurrogateHMC``, ``phase``
    (always 1, surrogate), the exact evaluations ``n_exact_grad`` and ``n_exact_logp``
    (always 0: no simulation runs while sampling) and ``surrogate_error`` (always ``nan``:
    there is no exact model to compare the network with).

    Examples
    --------
    >>> import numpy as np, pymc as pm, surrogate_hmc as shmc
    >>> def simulate(rng, theta, size=None):
    ...     return theta + 0.1 * rng.normal(size=2)
    >>> with pm.Model() as model:
    ...     theta = pm.Uniform("theta", -1, 1, shape=2)
    ...     _ = pm.Simulator("x", simulate, theta, observed=np.zeros(2))
    ...     step = shmc.ACE(beta=10.0, n_simulations=200, fit_kwargs={
    ...         "executor": None, "progressbar": False, "random_seed": 0,
    ...         "training": shmc.TrainingConfig(max_steps=200)})
    ...     idata = pm.sample(step=step, tune=100, draws=100, chains=1, progressbar=False,
    ...                       compute_convergence_checks=False, random_seed=0)
    >>> float(idata.posterior["theta"].mean()) ** 2 < 0.25
    True
    """

    name = "ace"
    default_blocked = True
    stats_dtypes_shapes: ClassVar[dict[str, tuple[Any, list]]] = {
        "phase": (np.int8, []),
        "acceptance_rate": (np.float64, []),
        "diverging": (bool, []),
        "energy": (np.float64, []),
        "energy_error": (np.float64, []),
        "step_size": (np.float64, []),
        "step_size_bar": (np.float64, []),
        "n_steps": (np.int64, []),
        "tree_depth": (np.int64, []),
        "reached_max_treedepth": (bool, []),
        "model_logp": (np.float64, []),
        "n_exact_grad": (np.int64, []),
        "n_exact_logp": (np.int64, []),
        "surrogate_error": (np.float64, []),
        "perf_counter_diff": (np.float64, []),
        "perf_counter_start": (np.float64, []),
    }
    _state_class = ACEState

    def __init__(
        self,
        vars=None,
        *,
        estimator: CostEstimator | str | os.PathLike | None = None,
        beta: float = 1.0,
        n_simulations: int = 2000,
        fit_kwargs: dict[str, Any] | None = None,
        target_accept: float = 0.8,
        max_treedepth: int = 10,
        max_energy_error: float = 1000.0,
        model=None,
        rng=None,
    ) -> None:
        model = pm.modelcontext(model)
        if not (isinstance(beta, int | float) and np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive number, got {beta!r}.")
        if not 0 < target_accept < 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}.")
        simulator_model = SimulatorModel.from_model(model)
        free_values = [model.rvs_to_values[rv] for rv in model.free_RVs]
        if vars is not None:
            chosen = {model.rvs_to_values.get(v, v) for v in vars}
            if chosen != set(free_values):
                raise ValueError(
                    "ACE samples all of the model's free variables jointly "
                    f"({[v.name for v in model.free_RVs]}); do not combine it with other steps."
                )
        if estimator is None:
            fit_kwargs = {"random_seed": None, **(fit_kwargs or {})}
            estimator = CostEstimator.fit(model, n_simulations, **fit_kwargs)
        elif isinstance(estimator, str | os.PathLike):
            estimator = CostEstimator.load(estimator)
        elif not isinstance(estimator, CostEstimator):
            raise TypeError(
                f"estimator must be a CostEstimator or the path of a saved one, got "
                f"{type(estimator).__name__}."
            )
        estimator.check(simulator_model)
        self.estimator = estimator
        self.beta = float(beta)
        self.target_accept = float(target_accept)
        self.max_treedepth = int(max_treedepth)
        self.Emax = float(max_energy_error)
        self._model = model
        self._observed = simulator_model.observed
        point = model.initial_point()
        self._point_map_info = [
            (v.name, point[v.name].shape, point[v.name].dtype) for v in free_values
        ]
        self._dim = int(sum(np.size(point[v.name]) for v in free_values))
        self._parent_pid = os.getpid()
        self._process_local: dict[str, Any] | None = None
        super().__init__(free_values, {}, rng=rng)
        self._reset_chain()

    @staticmethod
    def competence(var, has_grad):
        """ACE is never chosen automatically: pass it as ``step=``."""
        return Competence.INCOMPATIBLE

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_process_local"] = None
        return state

    def _reset_chain(self) -> None:
        self.tune = True
        self.iter_count = 0
        self.potential = QuadPotentialDiagAdapt(
            self._dim, np.zeros(self._dim), np.ones(self._dim), 10
        )
        self.step_adapt = DualAverageAdaptation(
            0.25 / self._dim**0.25, self.target_accept, 0.05, 0.75, 10
        )
        self._state = None  # BlackJAX's state on the device, and its position and log-density
        self._position = np.zeros(0)  # on the host, read once per draw with the step's stats
        self._logdensity = np.nan

    def setup_chain(self, rng, tune: int, draws: int) -> None:
        """Start a chain (PyMC 6): fresh adaptation."""
        super().setup_chain(rng, tune, draws)
        self._reset_chain()

    def set_rng(self, rng) -> None:
        """Start a chain (PyMC 5): fresh adaptation."""
        super().set_rng(rng)
        self._reset_chain()

    def reset_tuning(self, start=None) -> None:
        """Restart tuning from scratch (PyMC calls this as each chain starts)."""
        self._reset_chain()

    def stop_tuning(self) -> None:
        """Freeze step size and mass matrix for the draws."""
        self.tune = False

    def _local(self) -> dict[str, Any]:
        if self._process_local is None:
            self._process_local = self._build_kernel()
        return self._process_local

    def _build_kernel(self) -> dict[str, Any]:
        from jax._src.xla_bridge import backends_are_initialized

        if os.getpid() != self._parent_pid and backends_are_initialized():
            raise RuntimeError(
                "This chain's process was forked from one that had already run JAX, and JAX "
                "cannot run after such a fork. Sample with "
                "pm.sample(..., mp_ctx='forkserver') (or cores=1), or fit the CostEstimator "
                "in a fresh Python process before sampling."
            )
        model, values = self._model, self.vars
        info = [(name, shape) for name, shape, _ in self._point_map_info]
        prior = exact_prior_logdensity(model, values, info)
        if prior is None:
            raise ValueError(
                "ACE needs the priors in JAX, and a prior of this model has no JAX "
                "implementation in PyTensor."
            )
        from pymc.sampling.jax import get_jaxified_graph

        rvs = model.replace_rvs_by_values(model.free_RVs)
        constrained = get_jaxified_graph(inputs=list(values), outputs=rvs)
        shapes = [shape for _, shape in info]
        bounds = np.cumsum([0] + [int(np.prod(shape, dtype=int)) for shape in shapes])

        def to_theta(q):
            pieces = [
                jnp.reshape(q[lo:hi], s)
                for lo, hi, s in zip(bounds[:-1], bounds[1:], shapes, strict=True)
            ]
            return jnp.concatenate([jnp.ravel(t) for t in constrained(*pieces)])

        logdensity = GBILogDensity(
            prior, to_theta, self.estimator.build(), jnp.asarray(self._observed), self.beta
        )
        nuts = surrogate_nuts(
            logdensity, max_tree_depth=self.max_treedepth, max_energy_error=self.Emax
        )
        return {"nuts": nuts}

    def astep(self, q0: RaveledVars) -> tuple[RaveledVars, list[dict[str, Any]]]:
        """One NUTS transition on the generalized-Bayes log-density."""
        start = time.perf_counter()
        nuts = self._local()["nuts"]
        state, previous_logdensity = self._state, self._logdensity
        if state is None or not np.array_equal(self._position, q0.data):
            state = nuts.init(q0.data)
            previous_logdensity = float(np.asarray(state.logdensity))
        step_size = float(self.step_adapt.current(self.tune))
        inverse_mass = np.asarray(self.potential._var, dtype=np.float64)
        seed = int(self.rng.integers(2**32, dtype=np.uint64))
        state, info = nuts.step(seed, state, step_size, inverse_mass)
        self._state, self._position, self._logdensity = state, info.position, info.logdensity
        if self.tune:
            self.step_adapt.update(info.acceptance_rate, True)
            self.potential.update(info.position, None, True)
        self.iter_count += 1
        initial_energy = info.initial_kinetic_energy - previous_logdensity
        stats = {
            "phase": _SURROGATE_PHASE,
            "acceptance_rate": info.acceptance_rate,
            "diverging": info.is_divergent,
            "energy": info.energy,
            "energy_error": info.energy - initial_energy,
            "step_size": step_size,
            "step_size_bar": float(self.step_adapt.current(False)),
            "n_steps": info.n_steps,
            "tree_depth": info.tree_depth,
            "reached_max_treedepth": bool(
                info.tree_depth >= self.max_treedepth
                and not info.is_divergent
                and not info.is_turning
            ),
            "model_logp": info.logdensity,
            "n_exact_grad": 0,
            "n_exact_logp": 0,
            "surrogate_error": np.nan,
            "perf_counter_diff": time.perf_counter() - start,
            "perf_counter_start": start,
        }
        return RaveledVars(np.array(info.position), q0.point_map_info), [stats]
