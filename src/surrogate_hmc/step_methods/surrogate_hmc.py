"""``SurrogateHMC``: a PyMC step method that learns a neural surrogate online and stays exact."""

import dataclasses
import os
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
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
from pymc.step_methods.state import dataclass_state
from pymc.step_methods.step_sizes import DualAverageAdaptation
from pymc.util import get_value_vars_from_user_vars
from pymc.vartypes import continuous_types
from rich.progress import TextColumn
from rich.table import Column

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.delayed_acceptance import DAState, delayed_acceptance_transition
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.schedule import Schedule, SchedulePlan, SwitchTest
from surrogate_hmc.core.surrogate import (
    GradientOf,
    GradientSurrogate,
    LogDensitySurrogate,
    surrogate_nuts,
    surrogate_trajectory,
)
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.training import (
    TrainingConfig,
    TrainingResult,
    fit_log_density,
    fit_network,
)
from surrogate_hmc.core.transition import HMCState, static_hmc_transition
from surrogate_hmc.step_methods.model_functions import (
    LogpFunction,
    exact_prior_logdensity,
    prior_is_separable,
    tune_from_pymc5_caller,
)

__all__ = ["SurrogateCostWarning", "SurrogateHMC", "SurrogateWarning"]

EXACT, SURROGATE = 0, 1
_DEFAULT_TUNE = 1000  # pm.sample's default, used when PyMC does not say how long tuning is
_MAX_TRAJECTORY_STEPS = 1024
_REUSE_AFTER = 50  # exact iterations that take a chain to the posterior before a given surrogate
_MIN_SPEEDUP_PER_DRAW = 2.0  # below this a surrogate cannot pay for its exact phase and training
_LEARN_GRADIENT_ABOVE = 0.1  # |log ratio| (nats) of a proposal whose exact gradient is learned
_REFIT_STEPS_DIVISOR = 4  # a refit continues from the network in use, with fewer steps

Surrogate = GradientSurrogate | LogDensitySurrogate


class SurrogateWarning(UserWarning):
    """The surrogate could not be used; the chain stays on exact NUTS, which is still correct."""


class SurrogateCostWarning(UserWarning):
    """The surrogate works but the exact model is too cheap for it to pay off."""


@dataclass_state
class SurrogateHMCState(NUTSState):
    """Everything a chain needs to continue: NUTS's state plus the surrogate's."""

    _phase: int
    _pilot_remaining: int
    _pilot_acceptance: list[tuple[float, float]]
    _buffer: TrainingBuffer | None
    _surrogate: Surrogate | None
    _surrogate_step_adapt: DualAverageAdaptation | None
    _trajectory_lengths: np.ndarray
    _current: HMCState | None
    _nuts_state: Any = None
    _recent_exact: deque = field(default_factory=deque)
    _plan: SchedulePlan | None = None
    _trainings: list[dict[str, Any]] = field(default_factory=list)
    _seconds: dict[Any, Any] = field(default_factory=dict)


class SurrogateHMC(NUTS):
    r"""Exact HMC/NUTS that learns a neural surrogate of the model during tuning.

    The chain starts with PyMC's NUTS (step size and diagonal mass matrix adapted) and keeps every
    exact evaluation (position, log-density, gradient), at every leapfrog point. At the
    iterations of ``schedule`` an Equinox network is fitted to the expensive part of the model,
    the log-likelihood, while priors and transform Jacobians stay exact; when it passes
    ``switch_test`` the chain moves to trajectories on the surrogate, each one jitted JAX call,
    corrected with the exact log-density at the proposal: one exact log-density evaluation, no
    gradient, per draw. The kernel (network, step size, mass matrix, trajectory lengths) is frozen
    after tuning, so the draws target the exact posterior.

    Two surrogates and two trajectories:

    - ``surrogate="gradient"`` (NNgHMC): the network learns the gradient; static-length HMC
      trajectories on it (leapfrog on any position-only force is reversible and volume
      preserving), accepted with the exact Hamiltonian at both ends.
    - ``surrogate="logp"``: the network learns the log-likelihood from its values *and*
      gradients (a Sobolev loss). With ``trajectory="nuts"`` (its default) NUTS runs on the
      surrogate log-density and its output is accepted by a delayed-acceptance step with
      probability ``min(1, exp([logp(q') - logp(q)] - [s(q') - s(q)]))``; no exact evaluation
      at all when NUTS returns the current point. ``trajectory="static"`` uses the surrogate's
      gradient as with ``"gradient"``.

    Parameters
    ----------
    vars : list, optional
        Continuous variables to sample; all continuous free variables by default.
    surrogate : {"gradient", "logp"}, TrainedSurrogate or path, default "gradient"
        What the network learns, or a surrogate trained by an earlier run of the same model
        (a :class:`TrainedSurrogate` or the path it was saved to). A given surrogate is piloted
        after ``min(50, tune // 4)`` exact iterations, skipping the training; if it fails
        the pilot, a new one is trained as usual. Its step size and mass matrix start the
        adaptation unless ``scaling``, ``potential`` or ``step_scale`` are given.
    trajectory : {"static", "nuts"}, optional
        Surrogate trajectories: NUTS on the surrogate log-density (the default for
        ``surrogate="logp"``; a gradient surrogate cannot build trees) or static-length HMC
        (the default for ``"gradient"``).
    surrogate_transitions : int, default 2
        NUTS transitions on the surrogate per exact correction (``trajectory="nuts"``), in one
        compiled call. Powers of NUTS are reversible with respect to the surrogate too, so the
        correction stays exact. A transition on the surrogate costs little next to the call
        itself (the second one about a tenth of the first, on a 6-parameter GP), and the
        draws decorrelate further, while a good surrogate keeps the second-stage acceptance
        high. Use 1 if the second-stage acceptance is low.
    n_steps : int, optional
        Leapfrog steps per static trajectory. By default each trajectory's length is drawn
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
        (otherwise, or when ``False``, the network learns the whole log-density or gradient).
    save_to : str or path, optional
        Where each chain saves its surrogate at the end of tuning (see
        :class:`TrainedSurrogate`); with several chains the last one to finish tuning is kept.
        With ``cores=1`` the surrogate is also available as :attr:`trained_surrogate`.
    target_accept : float, default 0.8
        Target acceptance of the step-size adaptation, in both phases (for NUTS on the
        surrogate, the acceptance within the tree).
    **kwargs
        Passed to :class:`pymc.NUTS` (for example ``max_treedepth``, ``Emax``, ``scaling``).

    Notes
    -----
    Per-draw sample stats: ``phase`` (0 exact, 1 surrogate), ``acceptance_rate``, ``diverging``,
    ``energy``, ``energy_error``, ``step_size``, ``n_steps``, ``tree_depth``, ``model_logp``,
    ``second_stage_acceptance`` (the exact correction's acceptance probability after NUTS on
    the surrogate, ``nan`` otherwise: how well the surrogate agrees with the model),
    ``surrogate_error``, and the cost counters ``n_exact_grad`` and ``n_exact_logp``: exact
    evaluations spent in the iteration.

    ``surrogate_error`` is the log of the exact correction's Metropolis ratio at the proposal,
    which says how far the surrogate was from the exact model there, at no extra cost: 0 is a
    perfect surrogate, and ``exp(min(0, surrogate_error))`` is the probability that the
    correction accepts. With NUTS on the surrogate it is the delayed-acceptance log ratio
    ``[logp(q') - logp(q)] - [s(q') - s(q)]`` (``s`` the surrogate log-density); with static
    trajectories it is minus the exact energy error of the proposal,
    ``-(H(q', p') - H(q, p))`` with the exact potential, which also contains the leapfrog's
    own discretization error. It is ``nan`` where nothing exact was evaluated at a proposal (the
    exact phase, NUTS returning the current point, a trajectory ending at a non-finite point)
    and ``-inf`` where the exact log-density or the ratio is not finite.
    :func:`surrogate_hmc.plot_diagnostics` plots it with the phases, losses and costs.

    When the exact model is so cheap that a surrogate draw is not clearly cheaper than an exact
    NUTS iteration, a :class:`SurrogateCostWarning` says so once, with the measured costs.

    JAX objects are built lazily inside each chain's process, so ``cores>1`` works with Linux's
    default ``fork``. If your own code runs JAX before ``pm.sample``, pass
    ``mp_ctx="forkserver"``.

    Examples
    --------
    >>> import pymc as pm
    >>> import surrogate_hmc as shmc
    >>> with pm.Model():
    ...     x = pm.Normal("x", shape=2)
    ...     step = shmc.SurrogateHMC(surrogate="logp", schedule=shmc.Schedule(start=50, every=50))
    ...     idata = pm.sample(
    ...         step=step, tune=200, draws=100, chains=1, progressbar=False,
    ...         compute_convergence_checks=False, random_seed=1,
    ...     )
    >>> sorted(set(idata.sample_stats["phase"].values.ravel().tolist()))
    [1]
    >>> step.trained_surrogate.kind
    'logp'
    """

    name = "surrogate_hmc"
    _state_class = SurrogateHMCState

    stats_dtypes_shapes: ClassVar[dict[str, tuple[type, list | None]]] = {
        "phase": (np.int64, []),
        "acceptance_rate": (np.float64, []),
        "second_stage_acceptance": (np.float64, []),
        "surrogate_error": (np.float64, []),
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
    _pilot_acceptance: list[tuple[float, float]]
    _buffer: TrainingBuffer
    _surrogate: Surrogate | None
    _surrogate_step_adapt: DualAverageAdaptation | None
    _trajectory_lengths: np.ndarray
    _current: HMCState | None
    _nuts_state: Any
    _recent_exact: deque[tuple[float, float, float]]
    _trainings: list[dict[str, Any]]
    _plan: SchedulePlan
    _seconds: dict[Any, Any]

    # Built in each chain's process on first use and never pickled (see __getstate__).
    _process_local: dict[str, Any] | None = None
    _kernel: tuple[Any, Any] = (None, None)  # (surrogate, its compiled trajectory or NUTS)

    def __init__(
        self,
        vars=None,
        *,
        surrogate: Literal["gradient", "logp"] | TrainedSurrogate | str | os.PathLike = "gradient",
        trajectory: Literal["static", "nuts"] | None = None,
        surrogate_transitions: int = 2,
        n_steps: int | None = None,
        schedule: Schedule | None = None,
        switch_test: SwitchTest | None = None,
        network: NetworkConfig | None = None,
        training: TrainingConfig | None = None,
        buffer_size: int = 4096,
        exact_prior: bool = True,
        save_to: str | os.PathLike | None = None,
        target_accept: float = 0.8,
        model=None,
        initial_point=None,
        **kwargs,
    ) -> None:
        model = modelcontext(model)
        self._given = _given_surrogate(surrogate)
        self.surrogate_kind = self._given.kind if self._given is not None else str(surrogate)
        self.trajectory = _resolve_trajectory(self.surrogate_kind, trajectory, n_steps)
        _check_options(buffer_size, target_accept, save_to, surrogate_transitions)
        self.schedule = _checked_instance("schedule", schedule, Schedule)
        self.switch_test = _checked_instance("switch_test", switch_test, SwitchTest)
        self.network = _checked_instance("network", network, NetworkConfig)
        self.training = _checked_instance("training", training, TrainingConfig)
        self.n_steps = n_steps
        self.surrogate_transitions = surrogate_transitions
        self.buffer_size = buffer_size
        self.exact_prior = bool(exact_prior)
        self.save_to = save_to
        value_vars = _continuous_value_vars(model, vars)
        if initial_point is None:
            initial_point = model.initial_point()
        self._variables = [(v.name, np.shape(initial_point[v.name])) for v in value_vars]
        self._dim = sum(int(np.prod(shape, dtype=int)) for _, shape in self._variables)
        if self._given is not None:
            self._given.check_variables(self._variables)
            if self._given.exact_prior and not prior_is_separable(model, value_vars):
                raise ValueError(
                    "The given surrogate learned the likelihood only, but this model's priors "
                    "depend on variables sampled by another step, so they cannot be added back."
                )
            kwargs = _start_from(self._given, self._dim, kwargs)
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
        self._cost = {"grad": 0, "logp": 0}
        self._cost_warned = False
        self._harvest_exact_gradients()
        self._reset_chain(tune=None, warn=False)

    # -- pickling and per-chain state -----------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_process_local", None)
        state.pop("_kernel", None)
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
        self._nuts_state = None
        self._recent_exact = deque(maxlen=50)
        self._plan = self.schedule.plan(tune, self.surrogate_kind)
        self._trainings = []
        self._seconds = {
            "grad": 0.0,
            "logp": 0.0,
            "n_logp": 0,
            "n_grad": 0,
            EXACT: deque(maxlen=50),
            SURROGATE: deque(maxlen=50),
        }
        if warn and self._given is None and not self._plan.training_iterations:
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
        (``n_points``), the held-out ``validation_error``, the loss curves, the training's
        wall time in ``seconds``, and, when a pilot ran, its ``pilot_acceptance`` (and
        ``pilot_second_stage_acceptance`` for NUTS on the surrogate) and whether
        the sampler ``switched`` to the surrogate. A refit (see :class:`Schedule`) has
        ``refit=True`` and whether the new network was ``kept``. A surrogate given to the
        constructor appears as a record with ``given=True``. With ``cores>1`` the chains run
        in other processes and this stays empty.
        """
        return list(self._trainings)

    @property
    def trained_surrogate(self) -> TrainedSurrogate | None:
        """The surrogate of the chain last sampled in this process, ready to save or reuse.

        ``None`` when that chain never switched to a surrogate. With ``cores>1`` the chains
        run in other processes: use ``save_to`` instead.
        """
        if self._phase != SURROGATE or self._surrogate is None:
            return None
        adapt = self._surrogate_step_adapt
        assert adapt is not None, "the surrogate phase starts with its step-size adaptation"
        return TrainedSurrogate.from_surrogate(
            self._surrogate,
            variables=self._variables,
            network=self.network if self._given is None else self._given.network,
            step_size=float(adapt.current(False)),
            inverse_mass=np.asarray(self.potential._var, dtype=np.float64),
            trajectory_lengths=self._trajectory_lengths,
        )

    # -- the exact and the surrogate functions -------------------------------------------------

    def _harvest_exact_gradients(self) -> None:
        exact_logp_dlogp = self.integrator._logp_dlogp_func

        def harvested(q, point_map_info):
            start = time.perf_counter()
            logp, grad = exact_logp_dlogp(q, point_map_info)
            self._seconds["grad"] += time.perf_counter() - start
            self._seconds["n_grad"] += 1
            self._cost["grad"] += 1
            if self.tune and self._phase == EXACT and self.iter_count >= self._plan.collect_from:
                self._buffer.add(q, logp, grad)
            return logp, grad

        self.integrator._logp_dlogp_func = harvested

    def _exact_logp(self, q: np.ndarray) -> float:
        start = time.perf_counter()
        logp = self._logp_fn(q)
        self._seconds["logp"] += time.perf_counter() - start
        self._seconds["n_logp"] += 1
        self._cost["logp"] += 1
        if self._learning_online():
            self._buffer.add(q, logp, None)
        return logp

    def _learning_online(self) -> bool:
        """Whether the surrogate phase's exact evaluations still go to the training buffer."""
        refit = self._plan.refit_iteration
        return (
            bool(self.tune)
            and self._phase == SURROGATE
            and refit is not None
            and (self.iter_count < refit)
        )

    def _local(self) -> dict[str, Any]:
        """The exact prior and its batched value and gradient in JAX, built once per process."""
        if self._process_local is None:
            prior = None
            if self.exact_prior or (self._given is not None and self._given.exact_prior):
                point = self._model.initial_point()
                point_map_info = [(v.name, point[v.name].shape) for v in self.vars]
                prior = exact_prior_logdensity(self._model, self.vars, point_map_info)
            self._process_local = {
                "prior": prior,
                "prior_values_and_gradients": (
                    None if prior is None else jax.jit(jax.vmap(jax.value_and_grad(prior)))
                ),
            }
        return self._process_local

    def _compiled_kernel(self):
        surrogate, compiled = self._kernel
        assert self._surrogate is not None, "no surrogate outside the surrogate phase"
        if surrogate is not self._surrogate:  # refitted, or restored from a sampling_state
            if self.trajectory == "nuts":
                compiled = surrogate_nuts(
                    self._surrogate,
                    max_tree_depth=self.max_treedepth,
                    max_energy_error=self.Emax,
                    n_transitions=self.surrogate_transitions,
                )
            elif isinstance(self._surrogate, LogDensitySurrogate):
                compiled = surrogate_trajectory(GradientOf(self._surrogate))
            else:
                compiled = surrogate_trajectory(self._surrogate)
            self._kernel = (self._surrogate, compiled)
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
        iteration, phase = self.iter_count, self._phase
        if phase == SURROGATE:
            q, stats = self._surrogate_step(q0)
        else:
            q, stats = self._exact_step(q0)
        seconds = time.perf_counter() - perf_start
        stats |= {
            "n_exact_grad": self._cost["grad"],
            "n_exact_logp": self._cost["logp"],
            "perf_counter_diff": seconds,
            "process_time_diff": time.process_time() - process_start,
            "perf_counter_start": perf_start,
        }
        if self.tune:
            self._seconds[phase].append(seconds)
            self._advance_schedule(iteration, stats)
        return q, [stats]

    def _exact_step(self, q0: RaveledVars) -> tuple[RaveledVars, dict[str, Any]]:
        q, (nuts,) = super().astep(q0)
        self._current = HMCState(q.data.copy(), float(nuts["model_logp"]))
        self._nuts_state = None
        if self.tune:
            self._recent_exact.append(
                (nuts["mean_tree_accept"], nuts["tree_size"], nuts["step_size"])
            )
        return q, {
            "phase": EXACT,
            "acceptance_rate": nuts["mean_tree_accept"],
            "second_stage_acceptance": np.nan,
            "surrogate_error": np.nan,
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
            self._nuts_state = None
        adapt = self._surrogate_step_adapt
        assert adapt is not None, "the surrogate phase starts with its step-size adaptation"
        step_size = float(adapt.current(self.tune))
        inverse_mass = np.asarray(self.potential._var, dtype=np.float64)
        if self.trajectory == "nuts":
            new, stats = self._nuts_transition(current, step_size, inverse_mass, q0.point_map_info)
        else:
            new, stats = self._static_transition(current, step_size, inverse_mass)
        self._current = new
        if not self._pilot_remaining:  # the pilot measures acceptance at NUTS's step size
            adapt.update(stats["acceptance_rate"], self.tune)
        if self.tune:
            self.potential.update(new.position, None, self.tune)
        self.iter_count += 1
        warning = None
        if stats["diverging"] and not self.tune:
            self.divergences += 1
            warning = SamplerWarning(
                WarningType.DIVERGENCE,
                "Energy change in surrogate trajectory larger than the maximum energy error.",
                "debug",
                self.iter_count,
            )
        return RaveledVars(new.position, q0.point_map_info), stats | {
            "phase": SURROGATE,
            "divergences": self.divergences,
            "step_size": step_size,
            "step_size_bar": float(adapt.current(False)),
            "model_logp": new.logdensity,
            "warning": warning,
        }

    def _static_transition(self, current: HMCState, step_size: float, inverse_mass: np.ndarray):
        if self.n_steps is None:
            length = self.rng.choice(self._trajectory_lengths)
            n_steps = int(np.clip(np.ceil(length / step_size), 1, _MAX_TRAJECTORY_STEPS))
        else:
            n_steps = self.n_steps
        compiled = self._compiled_kernel()

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
        return new, {
            "acceptance_rate": info.acceptance_rate,
            "second_stage_acceptance": np.nan,
            "surrogate_error": -info.proposal_energy_error if info.n_exact_logp else np.nan,
            "diverging": info.diverging,
            "energy": info.energy,
            "energy_error": info.energy_error,
            "n_steps": n_steps,
            "tree_depth": 0,
            "reached_max_treedepth": False,
        }

    def _nuts_transition(
        self, current: HMCState, step_size: float, inverse_mass: np.ndarray, point_map_info
    ):
        nuts = self._compiled_kernel()
        if self._nuts_state is None:
            self._nuts_state = DAState.start(current.position, current.logdensity, nuts)
        proposals = []

        def exact_logp(q):
            proposals.append(q)
            return self._exact_logp(q)

        new, info = delayed_acceptance_transition(
            self.rng,
            self._nuts_state,
            logdensity_fn=exact_logp,
            nuts=nuts,
            step_size=step_size,
            inverse_mass=inverse_mass,
            max_tree_depth=self.max_treedepth,
        )
        self._nuts_state = new
        if (
            self._learning_online()
            and np.isfinite(info.log_ratio)
            and abs(info.log_ratio) > _LEARN_GRADIENT_ABOVE
        ):
            # Where the surrogate was off, the gradient is worth its cost to the refit.
            (q,) = proposals
            logp, gradient = self.integrator._logp_dlogp_func(q, point_map_info)
            self._buffer.add(q, logp, gradient)
        return HMCState(new.position, new.logdensity), {
            "acceptance_rate": info.acceptance_rate,
            "second_stage_acceptance": info.second_stage_acceptance,
            "surrogate_error": info.log_ratio,
            "diverging": info.diverging,
            "energy": info.energy,
            "energy_error": info.energy_error,
            "n_steps": info.n_steps,
            "tree_depth": info.tree_depth,
            "reached_max_treedepth": info.reached_max_treedepth,
        }

    # -- the schedule: exact -> train -> pilot -> surrogate -------------------------------------

    def _advance_schedule(self, iteration: int, stats: dict[str, Any]) -> None:
        if self._pilot_remaining:
            self._pilot_acceptance.append(
                (stats["acceptance_rate"], stats["second_stage_acceptance"])
            )
            self._pilot_remaining -= 1
            if not self._pilot_remaining:
                self._end_pilot()
        elif self._phase == SURROGATE and iteration == self._plan.refit_iteration:
            self._train(iteration, refit=True)
        elif self._phase == EXACT:
            if self._given is not None and iteration == self._reuse_iteration():
                self._pilot_given(iteration)
            elif iteration in self._plan.training_iterations:
                self._train(iteration)

    def _reuse_iteration(self) -> int:
        return min(_REUSE_AFTER, self._tune // 4)

    def _pilot_given(self, iteration: int) -> None:
        assert self._given is not None
        self._trainings.append({"iteration": iteration, "n_points": 0, "given": True})
        self._surrogate = self._given.build(self._local()["prior"])
        self._start_pilot()

    def _train(self, iteration: int, refit: bool = False) -> None:
        buffer = self._buffer
        if len(buffer) < 32:
            self._trainings.append({"iteration": iteration, "n_points": len(buffer)})
            return
        start = time.perf_counter()
        positions, logps, gradients = buffer.positions(), buffer.logps(), buffer.gradients()
        local = self._local()
        prior = local["prior"]
        if prior is not None:
            prior_values, prior_gradients = local["prior_values_and_gradients"](positions)
            logps = logps - np.asarray(prior_values)
            gradients = gradients - np.asarray(prior_gradients)
        key = jax.random.key(int(self.rng.integers(2**31)))
        options = {
            "network": self.network,
            "training": self.training,
            "key": key,
            "pad_to": self.buffer_size,
        }
        result: TrainingResult
        if refit and isinstance(self._surrogate, LogDensitySurrogate):
            # Continue from the network in use: a fraction of the steps refines it.
            options["training"] = dataclasses.replace(
                self.training, max_steps=max(1, self.training.max_steps // _REFIT_STEPS_DIVISOR)
            )
            result = fit_log_density(
                positions, logps, gradients, start_from=self._surrogate.network, **options
            )
        elif self.surrogate_kind == "logp":
            result = fit_log_density(positions, logps, gradients, **options)
        else:
            result = fit_network(positions, gradients, targets_are_gradients=True, **options)
        passed = result.validation_error <= self.switch_test.max_validation_error
        self._trainings.append(
            {
                "iteration": iteration,
                "n_points": len(buffer),
                "validation_error": result.validation_error,
                "train_losses": result.train_losses,
                "validation_losses": result.validation_losses,
                "seconds": time.perf_counter() - start,
            }
            | ({"refit": True, "kept": passed} if refit else {})
        )
        if not passed:
            return
        module = LogDensitySurrogate if self.surrogate_kind == "logp" else GradientSurrogate
        self._surrogate = module(result.network, prior)
        if refit:  # already trusted; tuning goes on adapting to the new surrogate
            self._nuts_state = None
        else:
            self._start_pilot()

    def _start_pilot(self) -> None:
        if self._recent_exact:
            _, tree_sizes, step_sizes = np.array(self._recent_exact).T
            step_size = float(np.exp(np.mean(np.log(step_sizes))))
            self._trajectory_lengths = tree_sizes * step_sizes
        else:  # a given surrogate piloted before any exact iteration
            assert self._given is not None
            step_size = self._given.step_size
            self._trajectory_lengths = self._given.trajectory_lengths
        self._surrogate_step_adapt = DualAverageAdaptation(
            step_size, self.target_accept, **self._dual_averaging
        )
        self._phase = SURROGATE
        self._nuts_state = None
        self._pilot_acceptance = []
        self._pilot_remaining = self.switch_test.pilot_iterations

    def _end_pilot(self) -> None:
        self._pilot_remaining = 0
        if self._recent_exact:
            exact_acceptance = float(np.mean([accept for accept, _, _ in self._recent_exact]))
        else:
            exact_acceptance = self.target_accept
        accept, second_stage = np.array(self._pilot_acceptance).T
        pilot_acceptance = float(
            np.mean(accept * np.where(np.isnan(second_stage), 1, second_stage))
        )
        record = self._trainings[-1]
        record["pilot_acceptance"] = pilot_acceptance
        passed = pilot_acceptance >= self.switch_test.min_acceptance_ratio * exact_acceptance
        if not np.all(np.isnan(second_stage)):
            record["pilot_second_stage_acceptance"] = float(np.nanmean(second_stage))
            passed &= float(np.nanmean(second_stage)) >= self.switch_test.min_second_stage
        record["switched"] = passed
        if not passed:
            self._phase = EXACT
            self._surrogate = None
            if record.get("given"):
                warnings.warn(
                    f"The given surrogate failed its pilot (acceptance {pilot_acceptance:.2f}, "
                    f"needed {self.switch_test.min_acceptance_ratio * exact_acceptance:.2f}); "
                    "training a new one from this run's exact evaluations.",
                    SurrogateWarning,
                    stacklevel=2,
                )

    def stop_tuning(self) -> None:
        """Freeze the kernel for the draws; say so when the surrogate was never good enough."""
        if self._pilot_remaining:
            self._end_pilot()
        if self._phase == EXACT and (self._plan.training_iterations or self._given is not None):
            self._warn_never_switched()
        if self._phase == SURROGATE:
            self._warn_if_too_cheap()
            if self.save_to is not None:
                trained = self.trained_surrogate
                assert trained is not None
                trained.save(self.save_to)
        super().stop_tuning()

    def _warn_never_switched(self) -> None:
        tried = [t for t in self._trainings if "validation_error" in t]
        detail = (
            f"best held-out error {min(t['validation_error'] for t in tried):.3g} "
            f"(needed <= {self.switch_test.max_validation_error:g})"
            if tried
            else "too few finite exact evaluations to train on"
        )
        pilots = [t["pilot_acceptance"] for t in self._trainings if "pilot_acceptance" in t]
        if pilots:
            detail += f", best pilot acceptance {max(pilots):.2f}"
        warnings.warn(
            f"The surrogate never passed the switch test after {len(self._trainings)} "
            f"training(s) ({detail}); the draws come from exact NUTS. Try more tuning "
            "iterations, a larger network, or a looser shmc.SwitchTest.",
            SurrogateWarning,
            stacklevel=3,
        )

    def _warn_if_too_cheap(self) -> None:
        exact_seconds, surrogate_seconds = self._seconds[EXACT], self._seconds[SURROGATE]
        if self._cost_warned or not exact_seconds or not surrogate_seconds:
            return
        exact, surrogate = np.median(exact_seconds), np.median(surrogate_seconds)
        if exact >= _MIN_SPEEDUP_PER_DRAW * surrogate:
            return
        self._cost_warned = True
        seconds = self._seconds
        grad_ms = 1e3 * seconds["grad"] / max(seconds["n_grad"], 1)
        logp_ms = 1e3 * seconds["logp"] / max(seconds["n_logp"], 1)
        training = sum(t.get("seconds", 0.0) for t in self._trainings)
        warnings.warn(
            f"This model is too cheap for a surrogate to pay off: an exact NUTS iteration took "
            f"{1e3 * exact:.2f} ms (logp and gradient {grad_ms:.3f} ms per evaluation) and a "
            f"surrogate iteration {1e3 * surrogate:.2f} ms (exact logp {logp_ms:.3f} ms), "
            f"a speed-up of {exact / surrogate:.1f}x per draw, after {training:.1f} s of "
            "training. Plain pm.sample() is likely faster here; sampling continues with the "
            "surrogate, which stays exact.",
            SurrogateCostWarning,
            stacklevel=3,
        )

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


def _given_surrogate(surrogate) -> TrainedSurrogate | None:
    if isinstance(surrogate, TrainedSurrogate):
        return surrogate
    if isinstance(surrogate, str) and surrogate in ("gradient", "logp"):
        return None
    if isinstance(surrogate, str | os.PathLike):
        try:
            return TrainedSurrogate.load(surrogate)
        except FileNotFoundError as error:
            raise ValueError(
                "surrogate must be 'gradient', 'logp', a shmc.TrainedSurrogate or the path of "
                f"a saved one; {error}"
            ) from None
    raise TypeError(
        "surrogate must be 'gradient', 'logp', a shmc.TrainedSurrogate or the path of a saved "
        f"one, got {type(surrogate).__name__}."
    )


def _resolve_trajectory(kind: str, trajectory, n_steps) -> str:
    if trajectory is None:
        trajectory = "nuts" if kind == "logp" else "static"
    if trajectory not in ("static", "nuts"):
        raise ValueError(f"trajectory must be 'static' or 'nuts', got {trajectory!r}.")
    if trajectory == "nuts" and kind == "gradient":
        raise ValueError(
            "trajectory='nuts' needs a surrogate of the log-density to build trees with; a "
            "gradient surrogate has no energy. Use surrogate='logp' or trajectory='static'."
        )
    if n_steps is not None:
        if not isinstance(n_steps, int | np.integer) or isinstance(n_steps, bool) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer or None, got {n_steps!r}.")
        if trajectory == "nuts":
            raise ValueError(
                "n_steps sets static trajectories; NUTS chooses its own lengths. Drop n_steps "
                "or use trajectory='static'."
            )
    return trajectory


def _check_options(buffer_size, target_accept, save_to, surrogate_transitions) -> None:
    if not isinstance(buffer_size, int | np.integer) or buffer_size < 64:
        raise ValueError(f"buffer_size must be an integer >= 64, got {buffer_size!r}.")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must lie in (0, 1), got {target_accept!r}.")
    if (
        not isinstance(surrogate_transitions, int | np.integer)
        or isinstance(surrogate_transitions, bool)
        or surrogate_transitions < 1
    ):
        raise ValueError(
            f"surrogate_transitions must be a positive integer, got {surrogate_transitions!r}."
        )
    if save_to is not None and not isinstance(save_to, str | os.PathLike):
        raise TypeError(f"save_to must be a path, got {type(save_to).__name__}.")


def _start_from(given: TrainedSurrogate, dim: int, kwargs: dict) -> dict:
    """NUTS options that start the adaptation where the given surrogate's run ended."""
    kwargs = dict(kwargs)
    if "scaling" not in kwargs and "potential" not in kwargs:
        kwargs["potential"] = QuadPotentialDiagAdapt(dim, given.center, given.inverse_mass, 10)
    kwargs.setdefault("step_scale", given.step_size * dim**0.25)
    return kwargs


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
