"""The surrogate kernel shared by ``SurrogateHMC`` and ``ACE``: one transition on a surrogate.

It owns what both step methods need around the compiled JAX code: the step-size adaptation,
the mass matrix it reads, divergences, and the one table of sample stats. The exact model enters
only as ``exact_logp``, called once per proposal for the correction; ``None`` means the surrogate
*is* the target (ACE's generalized-Bayes posterior).
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pymc.stats.convergence import SamplerWarning, WarningType
from pymc.step_methods.step_sizes import DualAverageAdaptation

from surrogate_hmc.core.compiled import draw_seed, surrogate_nuts, surrogate_trajectory
from surrogate_hmc.core.delayed_acceptance import DAState, delayed_acceptance_transition
from surrogate_hmc.core.metric import MetricAdaptation, laplace_inverse_mass
from surrogate_hmc.core.surrogate import AbstractSurrogate
from surrogate_hmc.core.transition import HMCState, draw_momentum, static_hmc_transition
from surrogate_hmc.step_methods.pymc_internals import inverse_mass_diagonal

__all__ = [
    "STATS",
    "KernelSettings",
    "KernelState",
    "SurrogateKernel",
    "dual_averaging_options",
    "exact_nuts_stats",
]

MAX_TRAJECTORY_STEPS = 1024
"""Longest static trajectory, whatever the drawn length and step size."""

STATS: dict[str, tuple[type, list | None]] = {
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
"""The sample stats of both step methods (see ``SurrogateHMC``'s Notes)."""


def exact_nuts_stats(nuts: dict[str, Any], divergences: int) -> dict[str, Any]:
    """The stats of an iteration of PyMC's NUTS (the exact phase), in the table above."""
    return {
        "phase": 0,
        "acceptance_rate": nuts["mean_tree_accept"],
        "second_stage_acceptance": np.nan,
        "surrogate_error": np.nan,
        "diverging": nuts["diverging"],
        "divergences": divergences,
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


@dataclass(frozen=True)
class KernelSettings:
    """How the surrogate kernel moves: fixed for a run."""

    trajectory: Literal["static", "nuts"]
    target_accept: float = 0.8
    max_treedepth: int = 10
    max_energy_error: float = 1000.0
    n_transitions: int = 1
    n_steps: int | None = None
    dual_averaging: tuple[float, float, float] = (0.05, 0.75, 10)
    """Dual averaging's ``gamma``, ``k`` and ``t0``, as in PyMC's NUTS."""


def dual_averaging_options(kwargs: dict[str, Any]) -> tuple[float, float, float]:
    """``gamma``, ``k`` and ``t0`` from NUTS's keyword arguments, with PyMC's defaults."""
    gamma, k, t0 = KernelSettings.dual_averaging
    return kwargs.get("gamma", gamma), kwargs.get("k", k), kwargs.get("t0", t0)


@dataclass
class KernelState:
    """One chain's surrogate kernel: its surrogate, adaptation and where the chain is."""

    surrogate: AbstractSurrogate
    step_adapt: DualAverageAdaptation
    trajectory_lengths: np.ndarray
    adapting_step_size: bool = True
    current: HMCState | DAState | None = None
    divergences: int = 0
    inverse_mass: np.ndarray | None = None
    """The kernel's own dense metric (``None``: the diagonal of PyMC's adapted potential)."""
    metric: MetricAdaptation | None = None
    """Its windows while it adapts (tuning after the switch, NUTS trajectories)."""


class SurrogateKernel:
    """Transitions on a surrogate, compiled once per surrogate in the chain's process.

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np
    >>> from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt
    >>> from surrogate_hmc.core.surrogate import LogDensitySurrogate
    >>> from surrogate_hmc.core.network import NetworkConfig, Standardization, StandardizedMLP
    >>> import jax
    >>> net = StandardizedMLP(NetworkConfig(width=4).build(2, 1, key=jax.random.key(0)),
    ...     Standardization(np.zeros(2), np.ones(2)), Standardization(np.zeros(1), np.ones(1)),
    ...     np.ones(2))
    >>> surrogate = LogDensitySurrogate(net, lambda q: -0.5 * q @ q)
    >>> kernel = SurrogateKernel(KernelSettings("nuts"))
    >>> state = kernel.start(surrogate, step_size=0.5)
    >>> potential = QuadPotentialDiagAdapt(2, np.zeros(2), np.ones(2), 10)
    >>> state, position, stats = kernel.step(
    ...     state, np.random.default_rng(0), np.zeros(2), potential, exact_logp=None, tune=True,
    ...     iteration=0)
    >>> position.shape, stats["phase"]
    ((2,), 1)
    """

    def __init__(self, settings: KernelSettings) -> None:
        self.settings = settings
        self._compiled: tuple[Any, Any] = (None, None)  # (surrogate, its compiled kernel)

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": self.settings, "_compiled": (None, None)}

    def start(
        self,
        surrogate: AbstractSurrogate,
        *,
        step_size: float,
        trajectory_lengths: np.ndarray | None = None,
        adapting_step_size: bool = True,
        inverse_mass: np.ndarray | None = None,
    ) -> KernelState:
        """A chain's kernel state on ``surrogate``, adapting from ``step_size``.

        A dense ``inverse_mass`` (a given surrogate's) is used as it is; otherwise the kernel
        reads the diagonal of PyMC's potential until :meth:`adapt_metric`.
        """
        lengths = np.ones(1) if trajectory_lengths is None else np.asarray(trajectory_lengths)
        dense = inverse_mass if np.ndim(inverse_mass) == 2 else None
        return KernelState(
            surrogate, self._step_adaptation(step_size), lengths, adapting_step_size,
            inverse_mass=dense,
        )  # fmt: skip

    def _step_adaptation(self, step_size: float) -> DualAverageAdaptation:
        gamma, k, t0 = self.settings.dual_averaging
        return DualAverageAdaptation(step_size, self.settings.target_accept, gamma, k, t0)

    def adapt_metric(self, state: KernelState, iteration: int, tune: int) -> None:
        """From the switch on, a dense metric (NUTS trajectories): Laplace, then draws' windows.

        The Laplace metric is the surrogate's inverse negative Hessian at the chain's position,
        used when it is positive definite; the windows of :class:`MetricAdaptation` replace it
        with the covariance of the surrogate phase's tuning draws. Each new metric restarts the
        step-size adaptation.
        """
        if self.settings.trajectory != "nuts" or not state.surrogate.has_logdensity:
            return
        state.metric = MetricAdaptation.plan(iteration + 1, tune)
        if state.current is not None:
            laplace = laplace_inverse_mass(state.surrogate.logdensity, state.current.position)
            if laplace is not None:
                self._use_metric(state, laplace)

    def _use_metric(self, state: KernelState, inverse_mass: np.ndarray) -> None:
        state.inverse_mass = inverse_mass
        state.step_adapt = self._step_adaptation(len(inverse_mass) ** -0.25)

    def step(
        self,
        state: KernelState,
        rng: np.random.Generator,
        position: np.ndarray,
        potential: Any,
        *,
        exact_logp,
        tune: bool,
        iteration: int,
        on_proposal=None,
    ) -> tuple[KernelState, np.ndarray, dict[str, Any]]:
        """Transition ``iteration`` from ``position``; the mass matrix comes from ``potential``.

        ``exact_logp`` is called at most once, at the proposal (``None``: the surrogate is the
        target, with NUTS only); ``on_proposal(q, info)`` then sees the proposal and the
        transition's info (the online learning of ``SurrogateHMC``).
        """
        step_size = float(state.step_adapt.current(tune))
        inverse_mass = self.inverse_mass(state, potential)
        if self.settings.trajectory == "nuts":
            current, stats = self._nuts(state, rng, position, exact_logp, step_size, inverse_mass,
                                        on_proposal)  # fmt: skip
        else:
            current, stats = self._static(state, rng, position, exact_logp, step_size,
                                          inverse_mass)  # fmt: skip
        state.current = current
        if state.adapting_step_size:
            state.step_adapt.update(stats["acceptance_rate"], tune)
        if tune:
            potential.update(current.position, None, tune)
            if state.metric is not None:
                position = np.asarray(current.position)
                new_metric = state.metric.update(iteration, position, inverse_mass)
                if new_metric is not None:
                    self._use_metric(state, new_metric)
        warning = None
        if stats["diverging"] and not tune:
            state.divergences += 1
            warning = SamplerWarning(
                WarningType.DIVERGENCE,
                "Energy change in surrogate trajectory larger than the maximum energy error.",
                "debug",
                iteration,
            )
        stats |= {
            "phase": 1,
            "divergences": state.divergences,
            "step_size": step_size,
            "step_size_bar": float(state.step_adapt.current(False)),
            "model_logp": current.logdensity,
            "warning": warning,
        }
        return state, np.asarray(current.position), stats

    def explore(
        self,
        state: KernelState,
        rng: np.random.Generator,
        position: np.ndarray,
        potential: Any,
        n_draws: int,
    ) -> np.ndarray:
        """``n_draws`` draws of the surrogate alone, from ``position``; no exact call.

        At the kernel's step size and metric, for the exploration check before a switch: NUTS
        on a log-density surrogate, or (static trajectories) the surrogate's trajectories
        taken as they end, with fresh momenta and no accept step (a gradient surrogate has no
        energy to accept with); a trajectory that ends off the map is not taken.
        """
        step_size = float(state.step_adapt.current(True))
        inverse_mass = self.inverse_mass(state, potential)
        draws = np.empty((n_draws, len(position)))
        if self.settings.trajectory == "nuts":
            nuts = self.compiled(state.surrogate)
            current = nuts.init(position)
            for i in range(n_draws):
                current, info = nuts.step(draw_seed(rng), current, step_size, inverse_mass)
                draws[i] = info.position
            return draws
        trajectory = self.compiled(state.surrogate)
        q = np.asarray(position, dtype=np.float64)
        for i in range(n_draws):
            p = draw_momentum(rng, inverse_mass)
            n_steps = self._static_steps(state, rng, step_size)
            end, _ = trajectory(q, p, np.float64(step_size), inverse_mass, np.int32(n_steps))
            end = np.asarray(end)
            q = end if np.all(np.isfinite(end)) else q
            draws[i] = q
        return draws

    @staticmethod
    def inverse_mass(state: KernelState, potential: Any) -> np.ndarray:
        """The metric the kernel moves with: its own dense one, or PyMC's diagonal."""
        if state.inverse_mass is not None:
            return state.inverse_mass
        return inverse_mass_diagonal(potential)

    def compiled(self, surrogate: AbstractSurrogate):
        """The compiled trajectory or NUTS of ``surrogate``, built once per surrogate."""
        known, compiled = self._compiled
        if known is not surrogate:  # a new fit, or restored from a sampling_state
            settings = self.settings
            if settings.trajectory == "nuts":
                compiled = surrogate_nuts(
                    surrogate.logdensity,
                    max_tree_depth=settings.max_treedepth,
                    max_energy_error=settings.max_energy_error,
                    n_transitions=settings.n_transitions,
                )
            else:
                compiled = surrogate_trajectory(surrogate.force)
            self._compiled = (surrogate, compiled)
        return compiled

    def _nuts(self, state, rng, position, exact_logp, step_size, inverse_mass, on_proposal):
        nuts = self.compiled(state.surrogate)
        current = state.current
        if current is None or not np.array_equal(current.position, position):
            logdensity = None if exact_logp is None else exact_logp(position)
            current = DAState.start(position, logdensity, nuts)
        elif not isinstance(current, DAState):
            current = DAState.start(current.position, current.logdensity, nuts)
        proposals: list[np.ndarray] = []

        def exact_at_proposal(q):
            proposals.append(q)
            return exact_logp(q)

        new, info = delayed_acceptance_transition(
            rng,
            current,
            logdensity_fn=None if exact_logp is None else exact_at_proposal,
            nuts=nuts,
            step_size=step_size,
            inverse_mass=inverse_mass,
            max_tree_depth=self.settings.max_treedepth,
        )
        if on_proposal is not None and proposals:
            on_proposal(proposals[0], info)
        return new, {
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

    def _static_steps(self, state: KernelState, rng: np.random.Generator, step_size: float) -> int:
        """Leapfrog steps of a static trajectory: fixed, or a length NUTS used, drawn."""
        if self.settings.n_steps is not None:
            return self.settings.n_steps
        length = rng.choice(state.trajectory_lengths)
        return int(np.clip(np.ceil(length / step_size), 1, MAX_TRAJECTORY_STEPS))

    def _static(self, state, rng, position, exact_logp, step_size, inverse_mass):
        settings = self.settings
        n_steps = self._static_steps(state, rng, step_size)
        compiled = self.compiled(state.surrogate)
        current = state.current
        if current is None or not np.array_equal(current.position, position):
            current = HMCState(np.asarray(position), exact_logp(position))

        def trajectory(q, p, eps, n):
            q1, p1 = compiled(q, p, np.float64(eps), inverse_mass, np.int32(n))
            return np.asarray(q1), np.asarray(p1)

        new, info = static_hmc_transition(
            rng,
            current,
            logdensity_fn=exact_logp,
            trajectory_fn=trajectory,
            step_size=step_size,
            inverse_mass=inverse_mass,
            n_steps=n_steps,
            max_energy_error=settings.max_energy_error,
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
