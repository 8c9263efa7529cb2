"""``SurrogateHMC``: a PyMC step method that learns a gradient surrogate online and stays exact."""

import time
import warnings
from collections import deque
from dataclasses import field
from typing import Any, ClassVar, Literal

import jax
import numpy as np
from pymc.blocking import RaveledVars, StatsType
from pymc.model import modelcontext
from pymc.stats.convergence import SamplerWarning, WarningType
from pymc.step_methods.hmc.nuts import NUTS, NUTSState
from pymc.step_methods.state import dataclass_state
from pymc.step_methods.step_sizes import DualAverageAdaptation
from pymc.util import get_value_vars_from_user_vars
from pymc.vartypes import continuous_types
from rich.progress import TextColumn
from rich.table import Column

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.schedule import Schedule, SchedulePlan, SwitchTest
from surrogate_hmc.core.surrogate import GradientSurrogate, surrogate_trajectory
from surrogate_hmc.core.training import TrainingConfig, TrainingResult, fit_network
from surrogate_hmc.core.transition import HMCState, static_hmc_transition
from surrogate_hmc.step_methods.model_functions import (
    LogpFunction,
    exact_prior_logdensity,
    tune_from_pymc5_caller,
)

__all__ = ["SurrogateHMC", "SurrogateWarning"]

EXACT, SURROGATE = 0, 1
_DEFAULT_TUNE = 1000  # pm.sample's default, used when PyMC does not say how long tuning is
_MAX_TRAJECTORY_STEPS = 1024


class SurrogateWarning(UserWarning):
    """The surrogate could not be used; the chain stays on exact NUTS, which is still correct."""


@dataclass_state
class SurrogateHMCState(NUTSState):
    """Everything a chain needs to continue: NUTS's state plus the surrogate's."""

    _phase: int
    _pilot_remaining: int
    _pilot_acceptance: list[float]
    _buffer: TrainingBuffer | None
    _surrogate: GradientSurrogate | None
    _surrogate_step_adapt: DualAverageAdaptation | None
    _trajectory_lengths: np.ndarray
    _current: HMCState | None
    _recent_exact: deque = field(default_factory=deque)
    _plan: SchedulePlan | None = None
    _trainings: list[dict[str, Any]] = field(default_factory=list)


class SurrogateHMC(NUTS):
    r"""Exact HMC that learns a neural surrogate of the gradient during tuning (NNgHMC).

    The chain starts with PyMC's NUTS (step size and diagonal mass matrix adapted) and keeps every
    exact gradient it evaluates, at every leapfrog point. At the iterations of ``schedule`` an
    Equinox network is fitted to the gradient of the log-likelihood (priors and transform
    Jacobians stay exact); when it passes ``switch_test`` the chain moves to static-length HMC
    trajectories on the surrogate force, each one jitted JAX call, corrected by a Metropolis step
    with the exact log-density at the proposal (one exact log-density, no gradient, per draw).
    Leapfrog on any position-only force field is reversible and volume preserving, so the draws
    target the exact posterior; the kernel (network, step size, mass matrix, trajectory length) is
    frozen after tuning.

    Parameters
    ----------
    vars : list, optional
        Continuous variables to sample; all continuous free variables by default.
    surrogate : {"gradient"}
        What the network learns: the gradient of the expensive part of the log-density.
    trajectory : {"static"}
        Static-length HMC trajectories with a jittered number of steps.
    n_steps : int, optional
        Leapfrog steps per surrogate trajectory. By default each trajectory's length is drawn
        from the lengths NUTS used in the last exact iterations (empirical HMC, Wu et al. 2018)
        and divided by the surrogate phase's step size; the draw does not depend on the state,
        so the kernel stays exact.
    schedule : Schedule, optional
        Tuning iterations at which the network is trained (defaults derive from ``tune``).
    switch_test : SwitchTest, optional
        What the surrogate must show before it takes over.
    network : NetworkConfig, optional
        Network architecture (default: 2 hidden layers of 128 SiLU units).
    training : TrainingConfig, optional
        Optimizer, held-out split and early stopping.
    buffer_size : int, default 4096
        Most recent exact evaluations kept for training.
    exact_prior : bool, default True
        Keep priors and Jacobians exact inside the surrogate where they can be translated to JAX
        (otherwise, or when ``False``, the network learns the whole gradient).
    target_accept : float, default 0.8
        Target acceptance of the step-size adaptation, in both phases.
    **kwargs
        Passed to :class:`pymc.NUTS` (for example ``max_treedepth``, ``Emax``, ``scaling``).

    Notes
    -----
    Per-draw sample stats: ``phase`` (0 exact, 1 surrogate), ``acceptance_rate``, ``diverging``,
    ``energy``, ``energy_error``, ``step_size``, ``n_steps``, ``tree_depth``, ``model_logp``, and
    the cost counters ``n_exact_grad`` and ``n_exact_logp``: exact evaluations spent in the
    iteration.

    JAX objects are built lazily inside each chain's process, so ``cores>1`` works with Linux's
    default ``fork``. If your own code runs JAX before ``pm.sample``, pass
    ``mp_ctx="forkserver"``.

    Examples
    --------
    >>> import pymc as pm
    >>> import surrogate_hmc as shmc
    >>> with pm.Model():
    ...     x = pm.Normal("x", shape=2)
    ...     step = shmc.SurrogateHMC(schedule=shmc.Schedule(start=50, every=50))
    ...     idata = pm.sample(
    ...         step=step, tune=200, draws=100, chains=1, progressbar=False,
    ...         compute_convergence_checks=False, random_seed=1,
    ...     )
    >>> sorted(set(idata.sample_stats["phase"].values.ravel().tolist()))
    [1]
    """

    name = "surrogate_hmc"
    _state_class = SurrogateHMCState

    stats_dtypes_shapes: ClassVar[dict[str, tuple[type, list | None]]] = {
        "phase": (np.int64, []),
        "acceptance_rate": (np.float64, []),
        "diverging": (bool, []),
        "divergences": (np.int64, []),
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
        "perf_counter_diff": (np.float64, []),
        "process_time_diff": (np.float64, []),
        "perf_counter_start": (np.float64, []),
        "warning": (SamplerWarning, None),
    }

    # Per-chain state, set by _reset_chain (see SurrogateHMCState).
    _phase: int
    _pilot_remaining: int
    _pilot_acceptance: list[float]
    _buffer: TrainingBuffer
    _surrogate: GradientSurrogate | None
    _surrogate_step_adapt: DualAverageAdaptation | None
    _trajectory_lengths: np.ndarray
    _current: HMCState | None
    _recent_exact: deque[tuple[float, float, float]]
    _trainings: list[dict[str, Any]]
    _plan: SchedulePlan

    # Built in each chain's process on first use and never pickled (see __getstate__).
    _process_local: dict[str, Any] | None = None
    _trajectory: tuple[Any, Any] = (None, None)  # (surrogate, its compiled trajectory)

    def __init__(
        self,
        vars=None,
        *,
        surrogate: Literal["gradient"] = "gradient",
        trajectory: Literal["static"] = "static",
        n_steps: int | None = None,
        schedule: Schedule | None = None,
        switch_test: SwitchTest | None = None,
        network: NetworkConfig | None = None,
        training: TrainingConfig | None = None,
        buffer_size: int = 4096,
        exact_prior: bool = True,
        target_accept: float = 0.8,
        model=None,
        initial_point=None,
        **kwargs,
    ) -> None:
        model = modelcontext(model)
        _check_options(surrogate, trajectory, n_steps, buffer_size, target_accept)
        self.schedule = _checked_instance("schedule", schedule, Schedule)
        self.switch_test = _checked_instance("switch_test", switch_test, SwitchTest)
        self.network = _checked_instance("network", network, NetworkConfig)
        self.training = _checked_instance("training", training, TrainingConfig)
        self.n_steps = n_steps
        self.buffer_size = buffer_size
        self.exact_prior = bool(exact_prior)
        value_vars = _continuous_value_vars(model, vars)
        if initial_point is None:
            initial_point = model.initial_point()
        super().__init__(
            value_vars,
            target_accept=target_accept,
            model=model,
            initial_point=initial_point,
            **kwargs,
        )
        self._dual_averaging = {
            key: kwargs.get(key, default)
            for key, default in (("gamma", 0.05), ("k", 0.75), ("t0", 10))
        }
        self._logp_fn = LogpFunction(model, value_vars, initial_point)
        self._extra_point: dict[str, np.ndarray] | None = None
        self._dim = sum(int(np.prod(initial_point[v.name].shape, dtype=int)) for v in value_vars)
        self._cost = {"grad": 0, "logp": 0}
        self._harvest_exact_gradients()
        self._reset_chain(tune=None, warn=False)

    # -- pickling and per-chain state -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_process_local", None)
        state.pop("_trajectory", None)
        return state

    def _reset_chain(self, tune: int | None, warn: bool = True) -> None:
        tune = _DEFAULT_TUNE if tune is None else tune
        self._tune = tune
        self._phase = EXACT
        self._pilot_remaining = 0
        self._pilot_acceptance = []
        self._buffer = TrainingBuffer(self.buffer_size, self._dim)
        self._surrogate = None
        self._surrogate_step_adapt = None
        self._trajectory_lengths = np.ones(1)
        self._current = None
        self._recent_exact = deque(maxlen=50)
        self._plan = self.schedule.plan(tune)
        self._trainings = []
        if warn and not self._plan.training_iterations:
            warnings.warn(
                f"tune={tune} is too short for {self.schedule} to train a surrogate (the "
                "default schedule needs tune >= 300); sampling with exact NUTS. Use more tuning "
                "iterations or an earlier shmc.Schedule(start=..., stop=...).",
                SurrogateWarning,
                stacklevel=2,
            )

    def setup_chain(self, rng, tune: int, draws: int) -> None:
        """Start a chain (PyMC 6): fresh per-chain state, schedule derived from ``tune``."""
        super().setup_chain(rng, tune, draws)
        self._reset_chain(tune)

    def set_rng(self, rng) -> None:
        """Start a chain (PyMC 5): fresh per-chain state, ``tune`` read from ``pm.sample``."""
        super().set_rng(rng)
        self._reset_chain(tune_from_pymc5_caller())

    def reset_tuning(self, start=None):
        """Restart tuning from scratch (PyMC calls this as each chain starts)."""
        super().reset_tuning(start)
        self._reset_chain(self._tune, warn=False)

    @property
    def training_history(self) -> list[dict[str, Any]]:
        """The trainings of the chain last sampled in this process, oldest first.

        Each record has the tuning ``iteration``, the number of exact evaluations trained on
        (``n_points``), the held-out ``validation_error``, the loss curves, and, when a pilot
        ran, its ``pilot_acceptance`` and whether the sampler ``switched`` to the surrogate.
        With ``cores>1`` the chains run in other processes and this stays empty.
        """
        return list(self._trainings)

    # -- the exact and the surrogate functions -------------------------------------------------

    def _harvest_exact_gradients(self) -> None:
        exact_logp_dlogp = self.integrator._logp_dlogp_func

        def harvested(q, point_map_info):
            logp, grad = exact_logp_dlogp(q, point_map_info)
            self._cost["grad"] += 1
            if self.tune and self._phase == EXACT and self.iter_count >= self._plan.collect_from:
                self._buffer.add(q, logp, grad)
            return logp, grad

        self.integrator._logp_dlogp_func = harvested

    def _exact_logp(self, q: np.ndarray) -> float:
        self._cost["logp"] += 1
        return self._logp_fn(q)

    def _local(self) -> tuple[Any, Any]:
        """The exact prior (and its batched gradient) in JAX, built once per process."""
        if self._process_local is None:
            prior = prior_gradients = None
            if self.exact_prior:
                point = self._model.initial_point()
                point_map_info = [(v.name, point[v.name].shape) for v in self.vars]
                prior = exact_prior_logdensity(self._model, self.vars, point_map_info)
            if prior is not None:
                prior_gradients = jax.jit(jax.vmap(jax.grad(prior)))
            self._process_local = {"prior": prior, "prior_gradients": prior_gradients}
        return self._process_local["prior"], self._process_local["prior_gradients"]

    def _compiled_trajectory(self):
        surrogate, compiled = self._trajectory
        assert self._surrogate is not None, "no surrogate outside the surrogate phase"
        if surrogate is not self._surrogate:  # refitted, or restored from a sampling_state
            compiled = surrogate_trajectory(self._surrogate)
            self._trajectory = (self._surrogate, compiled)
        return compiled

    def step(self, point):
        """One iteration; refreshes what other step methods of a compound step have changed."""
        if self._logp_fn.extra_names:
            extra = {name: np.array(point[name]) for name in self._logp_fn.extra_names}
            if self._extra_point is None or any(
                not np.array_equal(extra[name], self._extra_point[name]) for name in extra
            ):
                self._logp_fn.set_extra_values(extra)
                self._extra_point = extra
                self._current = None
        return super().step(point)

    # -- one iteration --------------------------------------------------------------------------

    def astep(self, q0: RaveledVars) -> tuple[RaveledVars, StatsType]:
        """Advance the chain by one iteration of the current phase."""
        perf_start, process_start = time.perf_counter(), time.process_time()
        self._cost.update(grad=0, logp=0)
        iteration = self.iter_count
        if self._phase == SURROGATE:
            q, stats = self._surrogate_step(q0)
        else:
            q, stats = self._exact_step(q0)
        stats |= {
            "n_exact_grad": self._cost["grad"],
            "n_exact_logp": self._cost["logp"],
            "perf_counter_diff": time.perf_counter() - perf_start,
            "process_time_diff": time.process_time() - process_start,
            "perf_counter_start": perf_start,
        }
        if self.tune:
            self._advance_schedule(iteration, stats)
        return q, [stats]

    def _exact_step(self, q0: RaveledVars) -> tuple[RaveledVars, dict[str, Any]]:
        q, (nuts,) = super().astep(q0)
        self._current = HMCState(q.data.copy(), float(nuts["model_logp"]))
        if self.tune:
            self._recent_exact.append(
                (nuts["mean_tree_accept"], nuts["tree_size"], nuts["step_size"])
            )
        return q, {
            "phase": EXACT,
            "acceptance_rate": nuts["mean_tree_accept"],
            "diverging": nuts["diverging"],
            "divergences": self.divergences,
            "energy": nuts["energy"],
            "energy_error": nuts["energy_error"],
            "step_size": nuts["step_size"],
            "step_size_bar": nuts["step_size_bar"],
            "n_steps": int(nuts["tree_size"]),
            "tree_depth": nuts["depth"],
            "reached_max_treedepth": nuts["reached_max_treedepth"],
            "model_logp": nuts["model_logp"],
            "warning": nuts["warning"],
        }

    def _surrogate_step(self, q0: RaveledVars) -> tuple[RaveledVars, dict[str, Any]]:
        current = self._current
        if current is None or not np.array_equal(current.position, q0.data):
            current = HMCState(q0.data.copy(), self._exact_logp(q0.data))
        adapt = self._surrogate_step_adapt
        assert adapt is not None, "the surrogate phase starts with its step-size adaptation"
        step_size = float(adapt.current(self.tune))
        if self.n_steps is None:
            length = self.rng.choice(self._trajectory_lengths)
            n_steps = int(np.clip(np.ceil(length / step_size), 1, _MAX_TRAJECTORY_STEPS))
        else:
            n_steps = self.n_steps
        inverse_mass = np.asarray(self.potential._var, dtype=np.float64)
        compiled = self._compiled_trajectory()

        def trajectory(q, p, eps, n):
            q1, p1 = compiled(q, p, np.float64(eps), inverse_mass, np.int32(n))
            return np.asarray(q1), np.asarray(p1)

        new, info = static_hmc_transition(
            self.rng,
            current,
            logdensity_fn=self._exact_logp,
            trajectory_fn=trajectory,
            step_size=step_size,
            inverse_mass=inverse_mass,
            n_steps=n_steps,
            max_energy_error=self.Emax,
        )
        self._current = new
        if not self._pilot_remaining:  # the pilot measures acceptance at NUTS's step size
            adapt.update(info.acceptance_rate, self.tune)
        if self.tune:
            self.potential.update(new.position, None, self.tune)
        self.iter_count += 1
        warning = None
        if info.diverging and not self.tune:
            self.divergences += 1
            warning = SamplerWarning(
                WarningType.DIVERGENCE,
                "Energy change in surrogate trajectory larger than the maximum energy error.",
                "debug",
                self.iter_count,
            )
        return RaveledVars(new.position, q0.point_map_info), {
            "phase": SURROGATE,
            "acceptance_rate": info.acceptance_rate,
            "diverging": info.diverging,
            "divergences": self.divergences,
            "energy": info.energy,
            "energy_error": info.energy_error,
            "step_size": step_size,
            "step_size_bar": float(adapt.current(False)),
            "n_steps": n_steps,
            "tree_depth": 0,
            "reached_max_treedepth": False,
            "model_logp": new.logdensity,
            "warning": warning,
        }

    # -- the schedule: exact -> train -> pilot -> surrogate -------------------------------------

    def _advance_schedule(self, iteration: int, stats: dict[str, Any]) -> None:
        if self._pilot_remaining:
            self._pilot_acceptance.append(stats["acceptance_rate"])
            self._pilot_remaining -= 1
            if not self._pilot_remaining:
                self._end_pilot()
        elif self._phase == EXACT and iteration in self._plan.training_iterations:
            self._train(iteration)

    def _train(self, iteration: int) -> None:
        buffer = self._buffer
        if len(buffer) < 32:
            self._trainings.append({"iteration": iteration, "n_points": len(buffer)})
            return
        positions, gradients = buffer.positions(), buffer.gradients()
        prior, prior_gradients = self._local()
        if prior is not None:
            gradients = gradients - np.asarray(prior_gradients(positions))
        key = jax.random.key(int(self.rng.integers(2**31)))
        result: TrainingResult = fit_network(
            positions,
            gradients,
            network=self.network,
            training=self.training,
            key=key,
            targets_are_gradients=True,
        )
        record = {
            "iteration": iteration,
            "n_points": len(buffer),
            "validation_error": result.validation_error,
            "train_losses": result.train_losses,
            "validation_losses": result.validation_losses,
        }
        self._trainings.append(record)
        if not result.validation_error <= self.switch_test.max_validation_error:
            return
        self._surrogate = GradientSurrogate(result.network, prior)
        self._start_pilot()

    def _start_pilot(self) -> None:
        _, tree_sizes, step_sizes = np.array(self._recent_exact).T
        step_size = float(np.exp(np.mean(np.log(step_sizes))))
        self._trajectory_lengths = tree_sizes * step_sizes
        self._surrogate_step_adapt = DualAverageAdaptation(
            step_size, self.target_accept, **self._dual_averaging
        )
        self._phase = SURROGATE
        self._pilot_acceptance = []
        self._pilot_remaining = self.switch_test.pilot_iterations

    def _end_pilot(self) -> None:
        self._pilot_remaining = 0
        exact_acceptance = np.mean([accept for accept, _, _ in self._recent_exact])
        pilot_acceptance = float(np.mean(self._pilot_acceptance))
        self._trainings[-1]["pilot_acceptance"] = pilot_acceptance
        passed = pilot_acceptance >= self.switch_test.min_acceptance_ratio * exact_acceptance
        self._trainings[-1]["switched"] = passed
        if not passed:
            self._phase = EXACT

    def stop_tuning(self) -> None:
        """Freeze the kernel for the draws; say so when the surrogate was never good enough."""
        if self._pilot_remaining:
            self._end_pilot()
        if self._phase == EXACT and self._plan.training_iterations:
            tried = [t for t in self._trainings if "validation_error" in t]
            detail = (
                f"best held-out error {min(t['validation_error'] for t in tried):.3g} "
                f"(needed <= {self.switch_test.max_validation_error:g})"
                if tried
                else "too few finite exact evaluations to train on"
            )
            pilots = [t["pilot_acceptance"] for t in tried if "pilot_acceptance" in t]
            if pilots:
                detail += f", best pilot acceptance {max(pilots):.2f}"
            warnings.warn(
                f"The surrogate never passed the switch test after {len(self._trainings)} "
                f"training(s) ({detail}); the draws come from exact NUTS. Try more tuning "
                "iterations, a larger network, or a looser shmc.SwitchTest.",
                SurrogateWarning,
                stacklevel=2,
            )
        super().stop_tuning()

    # -- progress bar ---------------------------------------------------------------------------

    @staticmethod
    def _progressbar_config(n_chains=1):
        columns = [
            TextColumn("{task.fields[phase]}", table_column=Column("Phase", ratio=1)),
            TextColumn("{task.fields[divergences]}", table_column=Column("Divergences", ratio=1)),
            TextColumn("{task.fields[step_size]:0.3f}", table_column=Column("Step size", ratio=1)),
            TextColumn("{task.fields[n_exact_grad]}", table_column=Column("Grad evals", ratio=1)),
        ]
        stats = {
            "phase": ["exact"] * n_chains,
            "divergences": [0] * n_chains,
            "step_size": [0.0] * n_chains,
            "n_exact_grad": [0] * n_chains,
        }
        return columns, stats

    @staticmethod
    def _make_progressbar_update_functions():
        def update_stats(stats):
            return {
                "phase": "surrogate" if stats["phase"] == SURROGATE else "exact",
                "divergences": stats["divergences"],
                "step_size": stats["step_size"],
                "n_exact_grad": stats["n_exact_grad"],
                "failing": stats["divergences"] > 0,
            }

        return (update_stats,)


def _check_options(surrogate, trajectory, n_steps, buffer_size, target_accept) -> None:
    if surrogate != "gradient":
        raise ValueError(f"surrogate must be 'gradient', got {surrogate!r}.")
    if trajectory == "nuts":
        raise ValueError(
            "trajectory='nuts' needs a surrogate of the log-density to build trees with; a "
            "gradient surrogate has no energy. Use trajectory='static'."
        )
    if trajectory != "static":
        raise ValueError(f"trajectory must be 'static', got {trajectory!r}.")
    if n_steps is not None and (not isinstance(n_steps, int | np.integer) or n_steps < 1):
        raise ValueError(f"n_steps must be a positive integer or None, got {n_steps!r}.")
    if not isinstance(buffer_size, int | np.integer) or buffer_size < 64:
        raise ValueError(f"buffer_size must be an integer >= 64, got {buffer_size!r}.")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}.")


def _checked_instance(name: str, value, cls):
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(
            f"{name} must be a surrogate_hmc.{cls.__name__}, got {type(value).__name__}: "
            f"for example {name}=shmc.{cls.__name__}()."
        )
    return value


def _continuous_value_vars(model, vars) -> list:
    if vars is None:
        value_vars = model.continuous_value_vars
        if not value_vars:
            raise ValueError(
                "The model has no continuous free variables; SurrogateHMC samples continuous "
                "variables only. Use a sampler for discrete variables such as pm.Metropolis."
            )
        return value_vars
    value_vars = get_value_vars_from_user_vars(vars, model)
    discrete = [v.name for v in value_vars if v.dtype not in continuous_types]
    if discrete:
        raise ValueError(
            f"SurrogateHMC samples continuous variables only, but {discrete} are discrete. "
            "Give them to another step method (e.g. pm.Metropolis) in a list: "
            "pm.sample(step=[shmc.SurrogateHMC(vars=[...continuous...]), pm.Metropolis(...)])."
        )
    return value_vars
