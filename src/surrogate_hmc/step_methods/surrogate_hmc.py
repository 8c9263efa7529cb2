"""``SurrogateHMC``: a PyMC step method that learns a neural surrogate online and stays exact."""

import os
import time
import warnings
from functools import partial
from typing import Any, ClassVar, Literal

import jax
import numpy as np
from pymc.blocking import RaveledVars, StatsType
from pymc.model import modelcontext
from pymc.step_methods.hmc.nuts import NUTS

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.compiled import draw_seed
from surrogate_hmc.core.cost_ledger import (
    MIN_SETTLED_ITERATIONS,
    MIN_TREE_STEPS,
    CostVerdict,
    judge_cost,
)
from surrogate_hmc.core.exploration import (
    EXPLORATION_DRAWS,
    RECENT_DRAWS,
    spread_ratio,
    tail_gap,
)
from surrogate_hmc.core.fitting import fit_surrogate, within_reach
from surrogate_hmc.core.history import HISTORY_STATS, encode_history
from surrogate_hmc.core.lifecycle import (
    Action,
    IterationStats,
    Lifecycle,
    TrainingRecord,
)
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.reuse import given_pilot_at
from surrogate_hmc.core.schedule import Schedule, SwitchTest
from surrogate_hmc.core.surrogate import SurrogateKind
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.training import TrainingConfig
from surrogate_hmc.core.transition import HMCState
from surrogate_hmc.core.validation import check_bool, check_instance, check_options
from surrogate_hmc.step_methods import messages, options
from surrogate_hmc.step_methods.chain import (
    DEFAULT_DRAWS,
    DEFAULT_TUNE,
    ChainState,
    Learned,
    SurrogateHMCState,
    kernel_start,
)
from surrogate_hmc.step_methods.exact_model import ExactModel, ExactRecord
from surrogate_hmc.step_methods.kernel import (
    STATS,
    KernelSettings,
    SurrogateKernel,
    dual_averaging_options,
    exact_nuts_stats,
)
from surrogate_hmc.step_methods.messages import SurrogateCostWarning, SurrogateWarning
from surrogate_hmc.step_methods.model_functions import (
    ExactPriors,
    exact_priors,
    prior_is_separable,
)
from surrogate_hmc.step_methods.processes import INTERRUPTS, refuse_fork_after_jax
from surrogate_hmc.step_methods.progress import PhaseProgressBar
from surrogate_hmc.step_methods.pymc_internals import (
    extra_variable_names,
    metric_estimate,
    run_length_from_pymc5_caller,
)

__all__ = ["SurrogateCostWarning", "SurrogateHMC", "SurrogateWarning"]


JITTER_TRIES = 11
"""Jittered starts tried before a chain starts unjittered (PyMC's ``jitter_max_retries + 1``)."""
COST_GATE_LOGP_CALLS = 5
"""Exact logp evaluations the cost gate times (the exact phase evaluates logp with gradient)."""
LEARN_GRADIENT_ABOVE = 0.1
"""|log ratio| (nats) at a proposal above which its exact gradient is learned before the refit."""


class SurrogateHMC(PhaseProgressBar, NUTS):
    r"""Exact HMC/NUTS that learns a neural surrogate of the model during tuning.

    The chain starts with PyMC's NUTS (step size and diagonal mass matrix adapted) and keeps every
    exact evaluation (position, log-density, gradient), at every leapfrog point. At the
    iterations of ``schedule`` an Equinox network is fitted to the expensive part of the model,
    the log-likelihood, while priors and transform Jacobians stay exact; when it passes
    ``switch_test`` the chain moves to trajectories on the surrogate, each one jitted JAX call,
    corrected with the exact log-density at the proposal: one exact log-density evaluation, no
    gradient, per draw. The kernel (network, step size, mass matrix, trajectory lengths) is frozen
    after tuning, so the draws target the exact posterior.

    ``surrogate="logp"`` (the default) learns the log-likelihood from values and gradients, as
    a Gaussian base plus a bounded network residual on whitened inputs; NUTS runs on it with a
    dense mass matrix, and a delayed-acceptance step,
    ``min(1, exp([logp(q') - logp(q)] - [s(q') - s(q)]))``, corrects its output.
    ``surrogate="gradient"`` (NNgHMC) learns the gradient and runs static HMC trajectories on
    it, accepted with the exact Hamiltonian at both ends.

    Just before the first training a cost gate judges, from the measured exact iteration and
    logp times, whether a surrogate can pay off in the iterations left; if not, the chain
    continues as plain NUTS and a :class:`SurrogateCostWarning` says so (``cost_gate=False``
    learns one anyway). After each failed training or pilot it keeps its books: when the time
    lost to failures plus another attempt can no longer be won back, or would pass a quarter of
    a plain NUTS run, the chain gives up the same way.

    Parameters
    ----------
    vars : list, optional
        Continuous variables to sample; all continuous free variables by default.
    surrogate : {"logp", "gradient"}, TrainedSurrogate or path, default "logp"
        What the network learns, or a surrogate trained by an earlier run of the same model
        (a :class:`TrainedSurrogate` or the path it was saved to). A given surrogate is piloted
        after ``min(50, max(30, tune // 4))`` exact iterations (30: what the exploration check
        compares it with), skipping the training; if it fails
        the pilot, a new one is trained as usual (with this run's ``network`` and
        ``exact_prior``). Its step size and mass matrix start the adaptation unless
        ``scaling``, ``potential`` or ``step_scale`` are given.
    trajectory : {"static", "nuts"}, optional
        Surrogate trajectories: NUTS on the surrogate log-density (the default for
        ``surrogate="logp"``; a gradient surrogate cannot build trees) or static-length HMC
        (the default for ``"gradient"``).
    surrogate_transitions : int, default 1
        NUTS transitions on the surrogate per exact correction (``trajectory="nuts"``), in one
        compiled call (powers of NUTS are reversible too). Keep it odd: with the dense metric
        NUTS's draws are antithetic, and two transitions cancel each other out.
    n_steps : int, optional
        Leapfrog steps per static trajectory. By default each length is drawn from those NUTS
        used in the last exact iterations (empirical HMC), whatever the state.
    schedule : Schedule, optional
        Tuning iterations at which the network is trained (defaults derive from ``tune``).
    switch_test : SwitchTest, optional
        What the surrogate must show before it takes over.
    network : NetworkConfig, optional
        Network architecture (default: 2 hidden layers of 128 SiLU units).
    training : TrainingConfig, optional
        Optimizer, held-out split and early stopping.
    buffer_size : int, default 16384
        Most recent exact evaluations kept for training (at most 64 per iteration, evenly
        spaced along its trajectory).
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
    cost_gate : bool, default True
        Stay plain NUTS when a surrogate cannot pay off in this run (judged just before the
        first training), or when failed trainings and pilots have cost more than another
        attempt could win back (judged after each failure). Both rest on measured times, so
        the same ``random_seed`` can give other draws on another machine. ``False`` learns a
        surrogate whatever it costs, however many trainings fail: to save it with ``save_to``
        and reuse it across many runs, or in tests.
    jitter : bool, default True
        Start each chain from its initial point plus U(-1, 1) noise in the sampled
        (transformed) space, drawn again until the log-density is finite, as ``pm.sample``
        starts its own NUTS (``init="jitter+adapt_diag"``); PyMC skips this jitter when it is
        given a step. ``False`` starts every chain at the initial point.
    **kwargs
        Passed to :class:`pymc.NUTS` (for example ``max_treedepth``, ``Emax``, ``scaling``).

    Notes
    -----
    Per-draw sample stats: ``phase`` (0 exact, 1 surrogate), ``acceptance_rate``, ``diverging``,
    ``energy``, ``energy_error``, ``step_size``, ``n_steps``, ``tree_depth``, ``model_logp``,
    ``second_stage_acceptance`` (the exact correction's acceptance after NUTS on the
    surrogate), ``surrogate_error`` (the log of the correction's Metropolis ratio at the
    proposal: 0 for a perfect surrogate; see "How it works" in the docs), and the cost counters
    ``n_exact_grad`` and ``n_exact_logp``: exact evaluations spent in the iteration.

    Each chain's decisions so far travel with every draw, so they survive ``cores>1``:
    ``n_trainings``, ``gate_decision`` (0 not asked, 1 learn, 2 stay NUTS, 3 gave up after
    failures), and packed into bytes ``training_history`` (per training: rows trained on,
    held-out error, pilot outcome; the latest 12) and ``cost_gate`` (what the cost gate
    measured). :func:`shmc.decisions <surrogate_hmc.decisions>` reads them back, and
    :func:`~surrogate_hmc.plot_diagnostics` draws them.

    When the exact model is so cheap that a surrogate draw is not clearly cheaper than an exact
    NUTS iteration, a :class:`SurrogateCostWarning` says so once, with the measured costs.
    The cost gate decides from times measured as the chain runs, so the same ``random_seed``
    can take the other path on a faster, slower or busier machine; its warning and the
    ``cost_gate`` stat say so, and ``cost_gate=False`` makes the draws a function of the seed
    alone.

    JAX objects are built lazily inside each chain's process, so ``cores>1`` works with Linux's
    default ``fork``. If your own code runs JAX before ``pm.sample``, pass
    ``mp_ctx="forkserver"``; a chain forked after JAX ran stops with a clear error before its
    first iteration. ``forkserver`` starts the workers by importing your script, so in a script
    the sampling must sit under ``if __name__ == "__main__":``.

    Examples
    --------
    >>> import pymc as pm
    >>> import surrogate_hmc as shmc
    >>> with pm.Model():
    ...     x = pm.Normal("x", shape=2)
    ...     step = shmc.SurrogateHMC(schedule=shmc.Schedule(start=50, every=50), cost_gate=False)
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
    stats_dtypes_shapes: ClassVar[dict[str, tuple[Any, list | None]]] = STATS | HISTORY_STATS

    def __init__(
        self,
        vars=None,
        *,
        surrogate: Literal["gradient", "logp"] | TrainedSurrogate | str | os.PathLike = "logp",
        trajectory: Literal["static", "nuts"] | None = None,
        surrogate_transitions: int = 1,
        n_steps: int | None = None,
        schedule: Schedule | None = None,
        switch_test: SwitchTest | None = None,
        network: NetworkConfig | None = None,
        training: TrainingConfig | None = None,
        buffer_size: int = 16384,
        exact_prior: bool = True,
        save_to: str | os.PathLike | None = None,
        target_accept: float = 0.8,
        cost_gate: bool = True,
        jitter: bool = True,
        model=None,
        initial_point=None,
        **kwargs,
    ) -> None:
        own = options.keyword_names(SurrogateHMC.__init__) - {"self"}
        check_options("SurrogateHMC", kwargs, own | options.nuts_options())
        model = modelcontext(model)
        self._given = options.given_surrogate(surrogate)
        self.surrogate_kind: SurrogateKind = (
            self._given.kind if self._given is not None else options.check_kind(str(surrogate))
        )
        self.trajectory = options.resolve_trajectory(self.surrogate_kind, trajectory, n_steps)
        options.check_numbers(buffer_size, target_accept, surrogate_transitions)
        options.check_save_to(save_to)
        self.schedule = check_instance("schedule", schedule, Schedule)
        self.switch_test = check_instance("switch_test", switch_test, SwitchTest)
        self.network = check_instance("network", network, NetworkConfig)
        self.training = check_instance("training", training, TrainingConfig)
        self.buffer_size = int(buffer_size)
        self.exact_prior = bool(exact_prior)
        self.cost_gate = check_bool("cost_gate", cost_gate)
        self.jitter = check_bool("jitter", jitter)
        self.save_to = save_to
        value_vars = options.continuous_value_vars(model, vars)
        if initial_point is None:
            initial_point = model.initial_point()
        self._variables = [(v.name, np.shape(initial_point[v.name])) for v in value_vars]
        self._dim = sum(int(np.prod(shape, dtype=int)) for _, shape in self._variables)
        if self._given is not None:
            options.check_given(self._given, self._variables, prior_is_separable(model, value_vars))
            kwargs = options.start_from_given(self._given, self._dim, kwargs)
        super().__init__(
            value_vars, target_accept=target_accept, model=model, initial_point=initial_point,
            **kwargs,
        )  # fmt: skip
        self._kernel = SurrogateKernel(
            KernelSettings(
                self.trajectory, self.target_accept, self.max_treedepth, self.Emax,
                int(surrogate_transitions), n_steps, dual_averaging_options(kwargs),
            )
        )  # fmt: skip
        self._exact = ExactModel(
            model, value_vars, initial_point, self.integrator,
            extra_variable_names(self),
        )  # fmt: skip
        self._pymc_model = model
        self._prior: ExactPriors | None = None
        self._cost_warned = self._gave_up_warned = False
        self._start_chain(tune=None, warn=False)

    # -- chains ---------------------------------------------------------------------------------

    @property
    def chain(self) -> ChainState:
        """The state of the chain being sampled (PyMC copies it through ``sampling_state``)."""
        return self._chain

    @chain.setter
    def chain(self, chain: ChainState) -> None:
        self._chain = chain
        self._exact.record = chain.exact
        self._lifecycle = self._plan_life(chain.tune)

    def _start_chain(self, tune: int | None, draws: int | None = None, warn: bool = True) -> None:
        tune = DEFAULT_TUNE if tune is None else tune
        draws = DEFAULT_DRAWS if draws is None else draws
        life = self._plan_life(tune).init()
        self.chain = ChainState(
            life, ExactRecord(TrainingBuffer(self.buffer_size, self._dim)), tune, draws,
            metric_at_start=metric_estimate(self.potential),
        )  # fmt: skip
        if warn and self._given is None and not self._lifecycle.plan.training_iterations:
            warnings.warn(messages.too_short(tune, self.schedule), SurrogateWarning, stacklevel=3)

    def _plan_life(self, tune: int) -> Lifecycle:
        return Lifecycle(
            self.schedule.plan(tune, self.surrogate_kind),
            self.switch_test,
            given_at=None if self._given is None else given_pilot_at(tune),
            target_accept=self.target_accept,
            cost_gate=self.cost_gate,
        )

    def setup_chain(self, rng, tune: int, draws: int) -> None:
        """Start a chain (PyMC 6): fresh per-chain state, schedule derived from ``tune``."""
        super().setup_chain(rng, tune, draws)
        INTERRUPTS.watch()
        INTERRUPTS.forget()
        self._start_chain(tune, draws)

    def set_rng(self, rng) -> None:
        """Start a chain (PyMC 5): fresh per-chain state, ``tune`` read from ``pm.sample``."""
        super().set_rng(rng)
        INTERRUPTS.watch()
        INTERRUPTS.forget()
        self._start_chain(*(run_length_from_pymc5_caller() or (None, None)))

    def reset_tuning(self, start=None) -> None:
        """Restart tuning from scratch (PyMC calls this as each chain starts)."""
        super().reset_tuning(start)
        self._start_chain(self.chain.tune, self.chain.draws, warn=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_prior"] = None  # JAX functions: rebuilt in each chain's process
        return state

    # -- one iteration --------------------------------------------------------------------------

    def step(self, point):
        """One iteration; first takes in what other step methods of a compound step changed."""
        if self._exact.set_extra_values(point):
            self.chain.last_exact = None
            if self.chain.kernel is not None:
                self.chain.kernel.current = None
        return super().step(point)

    def astep(self, q0: RaveledVars) -> tuple[RaveledVars, StatsType]:
        """Exact NUTS or the surrogate kernel, then the lifecycle decides what comes next."""
        INTERRUPTS.raise_missed()
        perf_start, process_start = time.perf_counter(), time.process_time()
        chain, iteration = self.chain, self.iter_count
        phase = chain.life.phase
        chain.exact.collecting = bool(self.tune) and (
            self._lifecycle.collects(chain.life, iteration)
            or self._lifecycle.learns_online(chain.life, iteration)
        )
        chain.exact.ledger.start_iteration()
        if not chain.started:
            refuse_fork_after_jax("SurrogateHMC")
            chain.started = True
            q0 = self._jittered(q0) if self.jitter else q0
        q, stats = self._kernel_step(q0) if phase.code else self._exact_step(q0)
        chain.exact.flush()
        n_grad, n_logp = chain.exact.ledger.iteration_counts()
        seconds = time.perf_counter() - perf_start
        stats |= {
            "n_exact_grad": n_grad,
            "n_exact_logp": n_logp,
            "perf_counter_diff": seconds,
            "process_time_diff": time.process_time() - process_start,
            "perf_counter_start": perf_start,
        }
        if self.tune:
            chain.exact.ledger.end_iteration(phase.code, seconds)
            unsettled = not phase.code and chain.settled_at is None
            if unsettled and chain.notice_metric(metric_estimate(self.potential), iteration):
                chain.exact.ledger.forget_iterations(0)
            life_stats = IterationStats(
                stats["acceptance_rate"], stats["n_steps"], stats["step_size"],
                stats["second_stage_acceptance"], seconds,
            )  # fmt: skip
            chain.life, action = self._lifecycle.update(chain.life, iteration, life_stats)
            while action is not Action.NONE:
                action = self._act(action, iteration)
        return q, [stats | self._history_stats()]

    def _history_stats(self) -> dict[str, Any]:
        """The chain's trainings and cost-gate decision so far, as sample stats."""
        life, cached = self.chain.life, self.chain.history_stats
        key = (life.records, life.cost, life.books)
        if cached is None or any(a is not b for a, b in zip(cached[0], key, strict=True)):
            cached = key, encode_history(life)
            self.chain.history_stats = cached
        return cached[1]

    def _jittered(self, q0: RaveledVars) -> RaveledVars:
        """``q0`` plus U(-1, 1) noise where the log-density is finite (else ``q0``)."""
        for _ in range(JITTER_TRIES):
            noise = self.rng.uniform(-1.0, 1.0, size=q0.data.shape)
            q = (q0.data + noise).astype(q0.data.dtype)
            if np.isfinite(self._exact.logp_and_gradient(q)[0]):
                return RaveledVars(q, q0.point_map_info)
        return q0

    def _exact_step(self, q0: RaveledVars) -> tuple[RaveledVars, dict[str, Any]]:
        q, (nuts,) = super().astep(q0)
        self.chain.last_exact = HMCState(q.data.copy(), float(nuts["model_logp"]))
        self.chain.recent_draws.append(self.chain.last_exact.position)
        return q, exact_nuts_stats(nuts, self.divergences)

    def _kernel_step(self, q0: RaveledVars) -> tuple[RaveledVars, dict[str, Any]]:
        chain = self.chain
        assert chain.kernel is not None, "the surrogate phases start with a kernel"
        chain.kernel, position, stats = self._kernel.step(
            chain.kernel, self.rng, q0.data, self.potential, exact_logp=self._exact.logp,
            tune=bool(self.tune), iteration=self.iter_count, on_proposal=self._learn_gradient,
        )  # fmt: skip
        self.iter_count += 1
        return RaveledVars(position, q0.point_map_info), stats

    def _learn_gradient(self, proposal: np.ndarray, info) -> None:
        """Where the surrogate was off, before the refit, the exact gradient is worth its cost."""
        if (
            self.chain.exact.collecting
            and np.isfinite(info.log_ratio)
            and abs(info.log_ratio) > LEARN_GRADIENT_ABOVE
        ):
            self._exact.logp_and_gradient(proposal)

    # -- what the lifecycle decided -------------------------------------------------------------

    def _act(self, action: Action, iteration: int) -> Action:
        chain = self.chain
        if action in (Action.TRAIN, Action.REFIT, Action.USE_GIVEN):
            record = self._fit(action, iteration)
            chain.life, next_action = self._lifecycle.trained(chain.life, record)
            if next_action is Action.NONE:
                chain.candidate = None
            return next_action
        if action is Action.ASSESS_COST:
            chain.life, next_action = self._lifecycle.assessed(
                chain.life, self._judge_cost(), iteration
            )
            return next_action
        if action is Action.STAY_NUTS:
            chain.exact.collecting = False
            assert chain.life.cost is not None
            if not self._cost_warned:
                self._cost_warned = True
                message = messages.cannot_pay(chain.life.cost, chain.exact.ledger)
                warnings.warn(message, SurrogateCostWarning, stacklevel=5)
            return Action.NONE
        if action is Action.GIVE_UP:
            chain.exact.collecting = False
            assert chain.life.books is not None
            if not self._gave_up_warned:
                self._gave_up_warned = True
                message = messages.gave_up(
                    chain.life.books, chain.life.records, self.switch_test.max_validation_error
                )
                warnings.warn(message, SurrogateCostWarning, stacklevel=5)
            return Action.NONE
        if action is Action.START_PILOT:
            assert chain.candidate is not None and chain.last_exact is not None
            started = time.perf_counter()
            chain.in_use = chain.candidate
            chain.kernel = self._kernel.start(
                chain.in_use.surrogate,
                adapting_step_size=False,
                **kernel_start(chain.life.recent_exact, self._given),
            )
            chain.kernel.current = chain.last_exact
            spread, gap = self._spread(), self._tail_gap()
            chain.life = self._lifecycle.pilot_started(chain.life, time.perf_counter() - started)
            chain.life, next_action = self._lifecycle.explored(chain.life, spread, gap, iteration)
            chain.candidate = None
            return next_action
        elif action is Action.SWITCH:
            assert chain.kernel is not None
            chain.kernel.adapting_step_size = True
            self._kernel.adapt_metric(chain.kernel, iteration, chain.tune)
        elif action is Action.ADOPT:
            assert chain.kernel is not None and chain.candidate is not None
            chain.in_use = chain.candidate
            chain.kernel.surrogate = chain.in_use.surrogate
            current = chain.kernel.current
            if current is not None:  # the exact log-density is known; the surrogate's is not
                chain.kernel.current = HMCState(current.position, current.logdensity)
        elif action is Action.REVERT:
            chain.kernel = chain.in_use = None
            if chain.life.records[-1].given:
                warnings.warn(
                    messages.given_failed_pilot(chain.life.records[-1]),
                    SurrogateWarning,
                    stacklevel=5,
                )
        chain.candidate = None
        return Action.NONE

    def _spread(self) -> float | None:
        """The exploration check: the surrogate's own draws against the recent exact ones.

        ``None`` when the chain has too few recent exact draws to judge (the pilot fails).
        """
        chain = self.chain
        assert chain.kernel is not None and chain.last_exact is not None
        if len(chain.recent_draws) < RECENT_DRAWS:
            return None
        draws = self._kernel.explore(
            chain.kernel, self.rng, chain.last_exact.position, self.potential, EXPLORATION_DRAWS
        )
        return spread_ratio(draws, np.array(chain.recent_draws))

    def _tail_gap(self) -> float | None:
        """The tail check of the surrogate on trial, against the exact evaluations kept."""
        kernel, buffer = self.chain.kernel, self.chain.exact.buffer
        assert kernel is not None
        if not np.isfinite(self.switch_test.max_tail_gap) or not len(buffer):
            return None
        positions, logps, gradients = buffer.positions(), buffer.logps(), buffer.gradients()
        keep = within_reach(logps, self._dim)
        return tail_gap(kernel.surrogate, positions[keep], gradients[keep])

    def _judge_cost(self) -> CostVerdict:
        """Measure an exact logp (a few times) and judge a surrogate for what the chain has left.

        Asked before the first training, and after each failed training or pilot (for the
        lifecycle's books on failures).

        The logp is not measured (nor compiled) when a surrogate could not pay off even if it
        cost nothing.

        An exact iteration costs the median of those run under NUTS's adapted metric; before
        there are enough of them, its floor of ``MIN_TREE_STEPS`` logp-and-gradient evaluations.
        """
        chain, position = self.chain, self.chain.last_exact
        assert position is not None, "the cost gate follows exact iterations"
        ledger = chain.exact.ledger
        settled = (
            chain.settled_at is not None and ledger.recent_iterations(0) >= MIN_SETTLED_ITERATIONS
        )
        if settled:
            exact_iteration = ledger.median_iteration_seconds(0)
        else:
            exact_iteration = MIN_TREE_STEPS * ledger.milliseconds_per_grad() / 1e3
        remaining = chain.tune - self.iter_count + chain.draws
        judge = partial(
            judge_cost, exact_iteration=exact_iteration, remaining=remaining, settled=settled,
            run_iterations=chain.tune + chain.draws,
        )  # fmt: skip
        free_logp = judge(logp=None)
        if not free_logp.pays:  # not even with an exact logp that cost nothing
            return free_logp
        self._exact.logp(position.position)  # the first call may compile the function
        n_logp, logp_seconds = ledger.n_logp, ledger.logp_seconds
        for _ in range(COST_GATE_LOGP_CALLS):
            self._exact.logp(position.position)
        logp = (ledger.logp_seconds - logp_seconds) / (ledger.n_logp - n_logp)
        return judge(logp=logp)

    def _fit(self, action: Action, iteration: int) -> TrainingRecord:
        chain = self.chain
        if action is Action.USE_GIVEN:
            assert self._given is not None
            prior = self._priors().given
            given = self._given.build(None if prior is None else prior.logdensity)
            chain.candidate = Learned(given, self._given.network)
            return TrainingRecord(iteration, n_points=0, given=True)
        refit, prior = action is Action.REFIT, self._priors().trained
        in_use = chain.in_use if refit else None
        # A log-density network continues its training on the same targets (a given one may
        # have learned with or without the exact prior); any other is fitted anew.
        start_from = None
        if in_use is not None and in_use.surrogate.has_logdensity:
            same_targets = (in_use.surrogate.exact_logdensity is None) == (prior is None)
            start_from = in_use if same_targets else None
        network = self.network if start_from is None else start_from.network
        surrogate, record = fit_surrogate(
            chain.exact.buffer, kind=self.surrogate_kind, prior=prior,
            network=network, training=self.training, key=jax.random.key(draw_seed(self.rng)),
            iteration=iteration, max_validation_error=self.switch_test.max_validation_error,
            refit=refit, start_from=None if start_from is None else start_from.surrogate,
        )  # fmt: skip
        if surrogate is not None:
            chain.candidate = Learned(surrogate, network)
        return record

    def _priors(self) -> ExactPriors:
        if self._prior is None:  # JAX functions, built in the chain's process
            given = self._given is not None and self._given.exact_prior
            self._prior = exact_priors(
                self._pymc_model, self.vars, self._variables, self.exact_prior, given
            )
        return self._prior

    # -- end of tuning --------------------------------------------------------------------------

    def stop_tuning(self) -> None:
        """Freeze the kernel for the draws; say so when the surrogate was never good enough."""
        chain = self.chain
        chain.life, action = self._lifecycle.final(chain.life)
        chain.exact.collecting = False
        if action is Action.FREEZE:
            too_cheap = messages.too_cheap(chain.exact.ledger, chain.life.records)
            if too_cheap and not self._cost_warned:
                self._cost_warned = True
                warnings.warn(too_cheap, SurrogateCostWarning, stacklevel=2)
            if self.save_to is not None:
                self._save(self.save_to)
        else:
            chain.kernel = chain.in_use = None
            if self._lifecycle.never_switched(chain.life):
                test = self.switch_test
                message = messages.never_switched(chain.life.records, test.max_validation_error)
                warnings.warn(message, SurrogateWarning, stacklevel=2)
        super().stop_tuning()

    def _save(self, path: str | os.PathLike) -> None:
        trained = self.trained_surrogate
        assert trained is not None, "a frozen surrogate kernel has a surrogate"
        try:
            trained.save(path)
        except OSError as error:
            warnings.warn(messages.not_saved(path, error), SurrogateWarning, stacklevel=3)

    # -- what a chain leaves behind -------------------------------------------------------------

    @property
    def training_history(self) -> tuple[TrainingRecord, ...]:
        """Each training of the chain last sampled in this process, oldest first.

        One :class:`~surrogate_hmc.core.TrainingRecord` each; empty with ``cores>1``, where the
        chains run in other processes.
        """
        return self.chain.life.records

    @property
    def trained_surrogate(self) -> TrainedSurrogate | None:
        """The surrogate of the chain last sampled in this process, ready to save or reuse.

        ``None`` when that chain is not using a surrogate. With ``cores>1`` the chains run in
        other processes: use ``save_to`` instead.
        """
        kernel = self.chain.kernel
        if kernel is None:
            return None
        inverse_mass = self._kernel.inverse_mass(kernel, self.potential)
        return self.chain.trained_surrogate(self._variables, inverse_mass)
