"""One run of the engine: exact NUTS on every chain until one surrogate can take over.

1. When one exact log-density and gradient is so cheap that no surrogate could pay for its
   setup, nutpie makes the whole run (:mod:`surrogate_hmc.engine.exact`).
2. Otherwise exact NUTS runs every chain in one compiled program, with one batched exact
   log-density and gradient per leapfrog step, adapting each chain's step size and a metric
   pooled over all chains; every exact evaluation is kept.
3. After ``first_training`` iterations, if the measured cost still says a surrogate can pay,
   **one** log-density surrogate is trained on the pooled exact evaluations of all chains
   (every leapfrog point, recorded by a host callback), and a pilot runs
   the delayed-acceptance kernel (:mod:`surrogate_hmc.engine.kernel`) on every chain. When its
   exact correction accepts, its draws spread as the exact ones do, its tails do not fall too
   fast and it is measured cheaper, it finishes the tuning and makes the draws.
4. Otherwise exact NUTS goes on, and the surrogate is retrained after twice the iterations, until
   tuning has too little left; exact NUTS then makes the draws.

Every path targets the exact posterior with a kernel frozen for the draws.
"""

import collections
import dataclasses
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.cost_ledger import MAX_FAILURE_SHARE, CostVerdict, judge_cost
from surrogate_hmc.core.exploration import RECENT_DRAWS, spread_ratio, tail_gap
from surrogate_hmc.core.fitting import fit_surrogate
from surrogate_hmc.core.history import HISTORY_STATS, encode_records
from surrogate_hmc.core.lifecycle import PilotRecord, TrainingRecord
from surrogate_hmc.core.metric import regularized_covariance
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.reuse import given_pilot_at
from surrogate_hmc.core.schedule import SwitchTest
from surrogate_hmc.core.trained import TrainedSurrogate
from surrogate_hmc.core.training import TrainingConfig
from surrogate_hmc.core.validation import check_bool, check_instance, check_int, check_real
from surrogate_hmc.engine import kernel
from surrogate_hmc.engine.exact import nutpie_run
from surrogate_hmc.engine.progress import RunProgress
from surrogate_hmc.engine.rehearsal import Rehearsal
from surrogate_hmc.engine.target import Target

__all__ = ["EngineConfig", "EngineResult", "RunReport", "check_given", "run", "with_history"]

CHUNK = 10
"""Iterations per compiled call: the grain of the metric windows, the progress and Ctrl-C."""
MIN_SURROGATE_TUNING = 50
"""Tuning iterations the surrogate kernel needs after its pilot to adapt its step size."""
MIN_MEASURED_SPEEDUP = 1.25
"""After the pilot, a surrogate iteration divided by its second-stage acceptance must be this
many times cheaper than an exact iteration, as measured, for the surrogate to take over."""
BUFFER_CAPACITY = 4096
"""Most pooled exact evaluations a training sees (the most recent; every leapfrog point)."""
MAX_TRAININGS = 3
"""Trainings before the run settles for exact NUTS."""
SETUP_SECONDS = 15.0
"""What a first surrogate costs before it can pay back: its training (~4 s) and the
compilation of the surrogate kernel (~10 s) on the benchmark machine, with a cold cache."""
EXPECTED_TREE_STEPS = 5
"""Leapfrog steps of a typical exact iteration under an adapted metric (nutpie's low-rank
takes 4 to 7 on the benchmark models): how the engine prices a run before it has made one."""
LOGP_SHARE_OF_GRADIENT = 3.0
"""A log-density and gradient costs at most this many log-densities (reverse mode): before the
log-density alone is timed, the first cost check prices it at this share, the most favourable
to a surrogate."""
MAX_TRANSITIONS = 8
"""Most surrogate NUTS transitions between two exact corrections that the engine chooses."""
MIN_SECOND_STAGE_FOR_MORE = 0.9
"""Mean second-stage acceptance below which the draws make one surrogate transition each."""
DENSE_MAX_DIM = 64
"""Largest dimension whose exact phase uses a dense metric (BlackJAX factors it every
transition, at a cost cubic in the dimension)."""
INITIAL_STEP_SIZE = 0.1
"""Every chain's first step size, before dual averaging adapts it."""
FIRST_WINDOW = 10
"""Iterations before the first metric update (a multiple of :data:`CHUNK`; pooled over chains)."""


class Evaluations(NamedTuple):
    """Exact evaluations: positions ``(n, dim)``, log-densities ``(n,)``, gradients ``(n, dim)``."""

    positions: np.ndarray
    logps: np.ndarray
    gradients: np.ndarray


class _Recorder:
    """The most recent exact evaluations of exact NUTS, every leapfrog point of every chain.

    Fed from the host callback of :func:`kernel.recording`, in an order JAX does not promise;
    :meth:`settle`, after each compiled call, puts that call's evaluations in an order of
    their own (by position), so that the training data, and so the run, depend on the seed
    alone. Holds the most recent ``capacity`` evaluations.
    """

    def __init__(self, capacity: int) -> None:
        self.rows: collections.deque = collections.deque(maxlen=capacity)
        self.pending: list = []
        self.collecting = True

    def add(self, position: np.ndarray, value: np.ndarray, gradient: np.ndarray) -> None:
        if self.collecting:
            self.pending.append((np.asarray(position), float(value), np.asarray(gradient)))

    def settle(self) -> None:
        """File the evaluations of the last compiled call, ordered by position."""
        jax.effects_barrier()
        pending, self.pending = self.pending, []
        if pending:
            order = np.lexsort(np.stack([row[0] for row in pending]).T[::-1])
            self.rows.extend(pending[i] for i in order)

    def evaluations(self) -> Evaluations:
        positions, logps, gradients = zip(*self.rows, strict=True)
        return Evaluations(np.stack(positions), np.array(logps), np.stack(gradients))


class ExactRows(NamedTuple):
    """The exact draws so far, pooled over chains, ordered by iteration, then chain.

    ``last`` holds each chain's latest position (``(chains, dim)``) and ``step_size`` its
    latest step size. The surrogate is trained on every exact evaluation instead
    (:class:`Evaluations`).
    """

    positions: np.ndarray
    gradients: np.ndarray
    chain: np.ndarray
    iteration: np.ndarray
    last: np.ndarray
    step_size: np.ndarray


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs; validated on construction.

    Parameters
    ----------
    draws, tune, chains
        Draws kept per chain, tuning iterations per chain, and chains.
    target_accept
        Target of the step-size adaptation (of exact NUTS, of nutpie, and of the surrogate
        kernel on the surrogate tree's acceptance).
    max_tree_depth
        Most NUTS doublings per iteration.
    network, training, switch
        The surrogate's network, its training, and what it must show in its pilot.
    first_training
        Iterations each chain makes with exact NUTS before the first training (``None``: a
        twentieth of ``tune``, between 50 and 100). The surrogate learns from every exact
        evaluation of all chains, every leapfrog point, not only the draws.
    cost_gate
        Leave a model too cheap for a surrogate to nutpie, train only when the measured exact
        iteration says a surrogate can pay, and switch only when the pilot measures it
        cheaper; ``False`` always trains, and switches on the pilot's other tests alone.
    surrogate_transitions
        NUTS transitions on the surrogate between two exact corrections in the draws
        (``None``: chosen from the surrogate kernel's tuning, from 1 to
        :data:`MAX_TRANSITIONS`, see :func:`transitions_per_correction`; always 1 with
        ``cost_gate=False``, so that the draws depend on the seed alone).
    progressbar
        Show progress.

    Examples
    --------
    >>> EngineConfig(draws=1000, tune=1000).first_training_at
    50
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.8
    max_tree_depth: int = 10
    network: NetworkConfig = field(default_factory=NetworkConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    switch: SwitchTest = field(default_factory=SwitchTest)
    first_training: int | None = None
    cost_gate: bool = True
    surrogate_transitions: int | None = None
    progressbar: bool = True

    def __post_init__(self) -> None:
        checked = {
            "draws": check_int("draws", self.draws),
            "tune": check_int("tune", self.tune, minimum=0),
            "chains": check_int("chains", self.chains),
            "target_accept": check_real(
                "target_accept", self.target_accept, low=0.0, high=1.0, open_low=True,
                open_high=True,
            ),
            "max_tree_depth": check_int("max_tree_depth", self.max_tree_depth),
            "network": check_instance("network", self.network, NetworkConfig),
            "training": check_instance("training", self.training, TrainingConfig),
            "switch": check_instance("switch", self.switch, SwitchTest),
            "first_training": check_int(
                "first_training", self.first_training, minimum=10, optional=True
            ),
            "cost_gate": check_bool("cost_gate", self.cost_gate),
            "surrogate_transitions": check_int(
                "surrogate_transitions", self.surrogate_transitions, optional=True
            ),
            "progressbar": check_bool("progressbar", self.progressbar),
        }  # fmt: skip
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def first_training_at(self) -> int:
        """Iterations per chain before the first training."""
        if self.first_training is not None:
            return self.first_training
        return int(np.clip(self.tune // 20, 50, 100))

    @property
    def last_training_at(self) -> int:
        """The latest iteration a training may follow and still leave the surrogate its tuning."""
        return self.tune - self.switch.pilot_iterations - MIN_SURROGATE_TUNING


@dataclass
class RunReport:
    """What the run decided and where its time went.

    ``decision`` is one of ``"switched"``, ``"stayed exact: surrogate would not pay"``,
    ``"stayed exact: no surrogate passed"``, ``"stayed exact: run too short"``.
    """

    decision: str = "stayed exact: run too short"
    trainings: list[TrainingRecord] = field(default_factory=list)
    switched_at: int | None = None
    """Iteration of the chains at which the surrogate took over."""
    surrogate_transitions: int | None = None
    """Surrogate NUTS transitions per exact correction once the surrogate took over."""
    exact_gradients: int = 0
    """Exact log-density-and-gradient evaluations of all chains (exact NUTS's or nutpie's)."""
    exact_logps: int = 0
    """Exact log-density evaluations of the surrogate kernel, all chains."""
    cost: CostVerdict | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the ``exact``, ``training``, ``pilot`` and ``surrogate`` phases, and
    ``compilation``: the wait, after the exact phase, for the surrogate's programs compiled
    while it ran (:class:`~surrogate_hmc.engine.rehearsal.Rehearsal`)."""
    interrupted: bool = False


class EngineResult(NamedTuple):
    """Draws ``(chains, draws, dim)`` of the flat position, per-draw stats and the report.

    ``surrogate`` is the surrogate that made the draws, with its kernel's tuned settings, as
    data that :meth:`~surrogate_hmc.TrainedSurrogate.save` writes (``None``: exact draws).
    When nutpie made the run from a model compiled its own way, ``positions`` is ``None`` and
    ``trace`` is nutpie's output, which holds the draws.
    """

    positions: np.ndarray | None
    stats: dict[str, np.ndarray]
    report: RunReport
    surrogate: TrainedSurrogate | None
    trace: Any = None


class _Handover(NamedTuple):
    """What the surrogate kernel takes over with."""

    surrogate: Any
    """The surrogate module (``.logdensity``)."""
    network: NetworkConfig
    """Its network's architecture (to save it)."""
    pilot: "_Pilot"
    inverse_mass: jax.Array


class _Pilot(NamedTuple):
    state: kernel.TuningState
    record: PilotRecord
    seconds_per_iteration: float
    second_stage: float


def _covariance(rows: ExactRows) -> np.ndarray:
    """A dense inverse metric from the recent half of the pooled exact draws."""
    recent = rows.positions[len(rows.positions) // 2 :]
    diagonal = np.diag(np.var(recent, axis=0) + 1e-10)
    return regularized_covariance(recent, diagonal)


def _recent_draws(rows: ExactRows, chains: int) -> np.ndarray:
    """The last :data:`RECENT_DRAWS` draws of every chain, pooled."""
    recent = [rows.positions[rows.chain == c][-RECENT_DRAWS:] for c in range(chains)]
    return np.concatenate(recent)


def _train(evaluations: Evaluations, config: EngineConfig, key: jax.Array, iteration: int):
    buffer = TrainingBuffer(BUFFER_CAPACITY, evaluations.positions.shape[1])
    for position, logp, gradient in zip(*evaluations, strict=True):
        buffer.add(position, logp, gradient)
    return fit_surrogate(
        buffer,
        kind="logp",
        prior=None,
        network=config.network,
        training=config.training,
        key=key,
        iteration=iteration,
        max_validation_error=config.switch.max_validation_error,
    )


def _pilot(key, surrogate, exact, rows: ExactRows, inverse_mass, config: EngineConfig) -> _Pilot:
    """Run every chain's surrogate kernel from its last exact draw; judge it, and time it."""
    start = time.perf_counter()
    chains = kernel.init(jnp.asarray(rows.last), surrogate.logdensity, exact)
    state = kernel.start_tuning(chains, jnp.asarray(rows.step_size), config.target_accept)
    chunks = max(2, -(-config.switch.pilot_iterations // CHUNK))
    positions, second_stage, accept, chunk_seconds = [], [], [], []
    for chunk_key in jax.random.split(key, chunks):
        tic = time.perf_counter()
        state, chunk, _, info = kernel.run_chunk(
            chunk_key, state, surrogate.logdensity, exact, inverse_mass, jnp.bool_(True), CHUNK,
            config.target_accept, config.max_tree_depth, jnp.int32(1),
        )  # fmt: skip
        jax.block_until_ready(state)
        chunk_seconds.append(time.perf_counter() - tic)
        positions.append(np.asarray(chunk).reshape(-1, chunk.shape[-1]))
        second_stage.append(np.asarray(info.second_stage_acceptance))
        accept.append(np.asarray(info.acceptance_rate * info.second_stage_acceptance))
    seconds_per_iteration = float(np.median(chunk_seconds[1:])) / CHUNK
    second = float(np.mean(second_stage))
    acceptance = float(np.mean(accept))
    required = config.switch.min_acceptance_ratio * config.target_accept
    record = PilotRecord(
        acceptance,
        required,
        second,
        switched=False,
        spread=spread_ratio(np.concatenate(positions), _recent_draws(rows, len(rows.last))),
        tail_gap=tail_gap(surrogate, rows.positions, rows.gradients),
        min_spread=config.switch.min_spread,
        max_tail_gap=config.switch.max_tail_gap,
        seconds=time.perf_counter() - start,
        iterations=chunks * CHUNK,
    )
    passed = record.explored and acceptance >= required and second >= config.switch.min_second_stage
    record = dataclasses.replace(record, switched=passed)
    return _Pilot(state, record, seconds_per_iteration, second)


def _seconds(batched, positions: np.ndarray | jax.Array) -> float:
    """Wall time of a compiled function of every chain's position (median of 5, warm)."""
    jax.block_until_ready(batched(positions))
    times = []
    for _ in range(5):
        tic = time.perf_counter()
        jax.block_until_ready(batched(positions))
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def _affordable(verdict: CostVerdict) -> bool:
    """A surrogate pays, saves more than its setup, and a failed setup fits in the cap."""
    return (
        verdict.pays
        and verdict.saving > SETUP_SECONDS
        and SETUP_SECONDS <= MAX_FAILURE_SHARE * verdict.plain_run_seconds
    )


def lag_one_autocorrelation(draws: np.ndarray) -> float:
    """The largest lag-1 autocorrelation over coordinates of draws ``(steps, chains, dim)``.

    Pooled over chains, each chain centred on its own mean: the slowest coordinate's, which
    decides the smallest effective sample size.
    """
    centred = draws - draws.mean(axis=0)
    covariance = np.mean(centred[1:] * centred[:-1], axis=(0, 1))
    variance = np.mean(centred**2, axis=(0, 1))
    usable = variance > 0
    if not np.any(usable):
        return 0.0
    return float(np.max(covariance[usable] / variance[usable]))


def transitions_per_correction(
    autocorrelation: float, iteration_seconds: float, logp_seconds: float
) -> int:
    """Surrogate transitions per exact correction that give the most effective draws a second.

    ``autocorrelation`` is the lag-1 autocorrelation of draws made with one transition,
    ``iteration_seconds`` the time of such an iteration (its exact log-density included) and
    ``logp_seconds`` of one exact log-density, all of every chain. With ``k`` transitions the
    draws' lag-1 autocorrelation is about ``rho**k``, so an AR(1) chain's effective draws per
    draw are ``(1 - rho**k) / (1 + rho**k)``, for ``logp + k * (iteration - logp)`` seconds.
    NUTS under a dense metric is antithetic on a near-Gaussian posterior (``rho < 0``): one
    transition is best, and two would undo each other. Where the draws are positively
    correlated (a curved posterior) and the exact log-density dominates, more pay.

    Examples
    --------
    >>> [transitions_per_correction(rho, 0.011, 0.010) for rho in (-0.3, 0.0, 0.6)]
    [1, 1, 5]
    >>> transitions_per_correction(0.6, 0.004, 0.001)
    2
    """
    surrogate_seconds = iteration_seconds - logp_seconds
    if surrogate_seconds <= 0:  # the timing cannot tell: the cheapest choice
        return 1
    transitions = np.arange(1, MAX_TRANSITIONS + 1)
    correlation = float(np.clip(autocorrelation, -0.99, 0.99)) ** transitions
    effective_per_draw = (1 - correlation) / (1 + correlation)
    seconds = logp_seconds + transitions * surrogate_seconds
    return int(transitions[np.argmax(effective_per_draw / seconds)])


def _transitions(draws, second_stage, iteration_seconds, logp_seconds, config) -> int:
    """The surrogate transitions per exact correction for the draws.

    One when the cost gate is off (the draws then depend on the seed alone, not on timing)
    or when the correction rejects more than :data:`MIN_SECOND_STAGE_FOR_MORE` of the time:
    rejections repeat draws whatever the transitions, and a longer move is rejected more.
    Otherwise :func:`transitions_per_correction`.
    """
    if not config.cost_gate or np.mean(second_stage) < MIN_SECOND_STAGE_FOR_MORE:
        return 1
    return transitions_per_correction(
        lag_one_autocorrelation(draws), iteration_seconds, logp_seconds
    )


def _window_ends(tune: int) -> list[int]:
    """Iterations after which the metric is re-estimated: 10, 20, 40, 80, ...

    Each window is as long as all before it, while tuning has at least
    :data:`MIN_SURROGATE_TUNING` iterations left to adapt the step size to the new metric.
    """
    ends, end = [], FIRST_WINDOW
    while end <= tune - MIN_SURROGATE_TUNING:
        ends.append(end)
        end *= 2
    return ends


def _exact_metric(positions: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """The exact phase's inverse metric from a window's pooled draws and gradients ``(n, dim)``.

    Diagonal while the draws are few: ``sqrt(var(x) / var(grad))``, nutpie's estimate, which
    is right for a Gaussian and holds up while the chains are still in their transient. Dense
    once there are four draws per dimension: their covariance, shrunk toward that diagonal
    (:func:`~surrogate_hmc.core.metric.regularized_covariance`, a third toward it at four).
    Up to :data:`DENSE_MAX_DIM` dimensions the diagonal is given as a dense matrix too, so
    that the exact kernel is compiled once; above, the metric stays diagonal.
    """
    n, dim = positions.shape
    spread = np.var(positions, axis=0)
    steepness = np.var(gradients, axis=0)
    usable = (spread > 0) & (steepness > 0)
    diagonal = np.where(usable, np.sqrt(spread / np.where(usable, steepness, 1.0)), 1.0)
    if dim > DENSE_MAX_DIM:
        return diagonal
    if n < 4 * dim:
        return np.diag(diagonal)
    return regularized_covariance(positions, np.diag(diagonal))


def _initial_metric(gradients: np.ndarray) -> jax.Array:
    """The exact phase's first inverse metric, from the gradients ``(chains, dim)`` at the starts.

    ``1 / |gradient|`` per coordinate (its mean over chains), nutpie's first guess: a
    coordinate whose log-density changes fast is given a small scale. Coordinates with a zero
    or non-finite gradient get 1. In the form all the later metrics take (dense up to
    :data:`DENSE_MAX_DIM` dimensions).

    Examples
    --------
    >>> _initial_metric(np.array([[4.0, 0.0], [0.0, 0.0]])).tolist()
    [[0.5, 0.0], [0.0, 1.0]]
    """
    steepness = np.mean(np.abs(gradients), axis=0)
    usable = np.isfinite(steepness) & (steepness > 0)
    diagonal = np.clip(np.where(usable, 1.0 / np.where(usable, steepness, 1.0), 1.0), 1e-8, 1e8)
    return jnp.asarray(np.diag(diagonal) if diagonal.size <= DENSE_MAX_DIM else diagonal)


class _ExactChains:
    """Exact NUTS on every chain, tuning in windows, keeping every exact evaluation for training.

    Its draws (kept exact) evaluate the recording log-density too, so that tuning and draws
    share one compiled program; their evaluations are not kept.
    """

    def __init__(
        self, exact, starts: np.ndarray, config: EngineConfig, progress: RunProgress,
        in_turn: bool = False, alone: Callable[[], bool] = lambda: True,
    ) -> None:  # fmt: skip
        self.exact = exact
        self.in_turn = in_turn
        self.alone = alone
        self.config = config
        self.progress = progress
        self.divergences = 0
        self.recorder = _Recorder(2 * BUFFER_CAPACITY)  # a position can be evaluated twice
        self.recorded = kernel.recording(exact, self.recorder.add)
        chains = kernel.init_nuts(jnp.asarray(starts), self.recorded)
        self.recorder.settle()
        self.state = kernel.start_tuning(
            chains, jnp.full(len(starts), INITIAL_STEP_SIZE), config.target_accept
        )
        self.inverse_mass = _initial_metric(np.asarray(chains.logdensity_grad))
        self.positions: list[np.ndarray] = []
        self.gradients: list[np.ndarray] = []
        self.seconds: list[float] = []
        self.timed_alone: list[bool] = []
        self.gradient_evaluations = len(starts)
        self.iteration = 0
        self.window_start = 0
        self.window_ends = _window_ends(config.tune)

    def tune(self, key: jax.Array) -> None:
        """:data:`CHUNK` tuning iterations of every chain; the metric moves at window ends."""
        alone, tic = self.alone(), time.perf_counter()
        self.state, positions, gradients, info = kernel.run_chunk(
            key, self.state, None, self.recorded, self.inverse_mass, jnp.bool_(True), CHUNK,
            self.config.target_accept, self.config.max_tree_depth, jnp.int32(1), self.in_turn,
        )  # fmt: skip
        self.recorder.settle()
        self.positions.append(np.asarray(positions))
        self.gradients.append(np.asarray(gradients))
        self.seconds.append(time.perf_counter() - tic)
        self.timed_alone.append(alone)
        self.gradient_evaluations += int(np.sum(info.n_steps))
        self.divergences += int(np.sum(info.diverging))
        self.iteration += CHUNK
        self.progress.advance(CHUNK, "exact", divergences=self.divergences)
        if self.iteration in self.window_ends:
            dim = self.inverse_mass.shape[0]
            window = slice(self.window_start, None)
            drawn = np.concatenate(self.positions)[window].reshape(-1, dim)
            slopes = np.concatenate(self.gradients)[window].reshape(-1, dim)
            self.inverse_mass = jnp.asarray(_exact_metric(drawn, slopes))
            self.window_start = self.iteration
            step_size = jnp.exp(self.state.step_size.log_step_size)
            self.state = kernel.start_tuning(
                self.state.chains, step_size, self.config.target_accept
            )

    def seconds_per_iteration(self) -> float:
        """Median wall time of a recent iteration of all chains (compilation left out).

        Chunks timed while nothing else ran (``alone()``: the rehearsal's compilations share
        the machine) are preferred, so that the surrogate is not priced against a slowed
        exact side.
        """
        timed = list(zip(self.seconds[1:], self.timed_alone[1:], strict=True))
        quiet = [seconds for seconds, alone in timed if alone]
        recent = quiet[-5:] or [seconds for seconds, _ in timed][-5:] or self.seconds
        return float(np.median(recent)) / CHUNK

    def rows(self) -> ExactRows:
        """Every exact draw so far, pooled."""
        positions = np.concatenate(self.positions)
        steps, chains, dim = positions.shape
        return ExactRows(
            positions.reshape(-1, dim),
            np.concatenate(self.gradients).reshape(-1, dim),
            np.tile(np.arange(chains), steps),
            np.repeat(np.arange(steps), chains),
            positions[-1],
            np.asarray(jnp.exp(self.state.step_size.log_step_size)),
        )

    def draws(self, key: jax.Array) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
        """The draws of every chain with the tuned kernel, frozen."""
        self.recorder.collecting = False
        keys = jax.random.split(key, -(-self.config.draws // CHUNK))
        return _frozen_draws(
            keys, self.state, None, self.recorded, self.inverse_mass, self.config, self.progress,
            self.divergences, in_turn=self.in_turn,
        )  # fmt: skip


def _frozen_draws(
    keys, state, surrogate, exact, inverse_mass, config, progress, divergences, transitions=1,
    in_turn=False,
):  # fmt: skip
    """Draws ``(chains, draws, dim)`` with a frozen kernel, their stats, and an interruption.

    Ctrl-C during the draws returns the draws made so far (and ``True``).
    """
    positions, infos, seconds = [], [], []
    interrupted = False
    try:
        for chunk_key in keys:
            tic = time.perf_counter()
            state, chunk, _, info = kernel.run_chunk(
                chunk_key, state, surrogate, exact, inverse_mass, jnp.bool_(False), CHUNK,
                config.target_accept, config.max_tree_depth, jnp.int32(transitions), in_turn,
            )  # fmt: skip
            positions.append(np.asarray(chunk))
            seconds.append(np.full(CHUNK, (time.perf_counter() - tic) / CHUNK))
            infos.append(info)
            divergences += int(np.sum(info.diverging))
            progress.advance(CHUNK, "draws", divergences=divergences)
    except KeyboardInterrupt:
        if not infos:
            raise
        interrupted = True
        warnings.warn("Sampling was interrupted: the draws made so far are returned.",
                      stacklevel=3)  # fmt: skip
    draws = np.swapaxes(np.concatenate(positions), 0, 1)[:, : config.draws]
    info = jax.tree.map(lambda *parts: np.concatenate(parts), *infos)
    stats = _draw_stats(info, surrogate is not None)
    stats["perf_counter_diff"] = np.tile(np.concatenate(seconds), (draws.shape[0], 1))
    return draws, {name: value[:, : config.draws] for name, value in stats.items()}, interrupted


def _draw_stats(info: kernel.DAInfo, surrogate: bool) -> dict[str, np.ndarray]:
    """Per-draw stats ``(chains, draws)`` from the kernel's ``(draws, chains)`` info.

    ``perf_counter_diff``, added by the caller, is the wall time of an iteration of all
    chains together (they run as one program).
    """
    as_numpy = {name: np.asarray(value).T for name, value in info._asdict().items()}
    n_steps = as_numpy["n_steps"].astype(np.int64)
    ones = np.ones(n_steps.shape, dtype=np.int64)
    return {
        "phase": ones if surrogate else 0 * ones,
        "acceptance_rate": as_numpy["acceptance_rate"],
        "second_stage_acceptance": as_numpy["second_stage_acceptance"],
        "diverging": as_numpy["diverging"].astype(bool),
        "energy": as_numpy["energy"],
        "step_size": as_numpy["step_size"],
        "n_steps": n_steps,
        "tree_depth": as_numpy["tree_depth"].astype(np.int64),
        "reached_max_treedepth": as_numpy["reached_max_treedepth"].astype(bool),
        "model_logp": as_numpy["model_logp"],
        "n_exact_grad": 0 * ones if surrogate else n_steps,
        "n_exact_logp": ones if surrogate else 0 * ones,
    }


def with_history(result: EngineResult) -> EngineResult:
    """The result with the run's trainings and cost verdict in every draw's stats.

    The :data:`~surrogate_hmc.core.history.HISTORY_STATS` that ``SurrogateHMC`` writes, the
    same for every chain (they share the trainings), so that :func:`surrogate_hmc.decisions`
    and :func:`surrogate_hmc.plot_diagnostics` read them.
    """
    shape = result.stats["phase"].shape
    encoded = encode_records(result.report.trainings, result.report.cost)
    history = {
        name: np.full(shape, encoded[name], dtype=dtype)
        for name, (dtype, _) in HISTORY_STATS.items()
    }
    return result._replace(stats=result.stats | history)


def run(
    target: Target,
    config: EngineConfig,
    seed: int,
    nutpie_model=None,
    given: TrainedSurrogate | None = None,
) -> EngineResult:
    """Sample ``target`` as ``config`` says; the draws of all chains and what it cost.

    ``nutpie_model`` builds the nutpie model to sample a model too cheap for a surrogate with
    (``None``: nutpie samples the target's JAX log-density). A ``given`` surrogate (saved by
    an earlier run of this target) is piloted after :func:`given_pilot_at` exact iterations,
    without a cost check; if it fails, the run goes on as without it.

    Examples
    --------
    >>> target = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), jnp.zeros(2))
    >>> result = run(target, EngineConfig(draws=100, tune=100, chains=2, progressbar=False), 1)
    >>> result.positions.shape, result.report.decision
    ((2, 100, 2), 'stayed exact: surrogate would not pay')
    """
    if given is not None:
        check_given(given, target)
    rng = np.random.default_rng(seed)
    key = jax.random.key(rng.integers(2**31))
    report = RunReport()
    start = time.perf_counter()
    value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(target.logdensity)))
    starts = target.initial_positions(config.chains, rng, value_and_grad)
    exact = target.logdensity
    total = config.tune + config.draws
    if config.cost_gate and given is None:
        grad_seconds = _seconds(value_and_grad, starts)
        report.cost = judge_cost(
            exact_iteration=EXPECTED_TREE_STEPS * grad_seconds,
            logp=grad_seconds / LOGP_SHARE_OF_GRADIENT,
            remaining=total - config.first_training_at,
            run_iterations=total,
        )
        if not _affordable(report.cost):
            report.decision = "stayed exact: surrogate would not pay"
            whole = nutpie_run(
                target, starts, tune=config.tune, draws=config.draws,
                seed=int(rng.integers(2**31)), target_accept=config.target_accept,
                max_tree_depth=config.max_tree_depth, progressbar=config.progressbar,
                compiled_model=None if nutpie_model is None else nutpie_model(),
            )  # fmt: skip
            report.exact_gradients = whole.gradients
            report.seconds["exact"] = time.perf_counter() - start
            return with_history(
                EngineResult(whole.positions, whole.stats, report, None, whole.trace)
            )
    logp_seconds = _seconds(jax.jit(jax.vmap(exact)), jnp.asarray(starts))
    rehearsal = None
    if given is None and config.first_training_at <= config.last_training_at:
        rehearsal = Rehearsal(exact, starts, config, BUFFER_CAPACITY, CHUNK)
    interrupted = False
    try:
        with RunProgress(total, config.chains, enabled=config.progressbar) as progress:
            exact_chains = _ExactChains(
                exact, starts, config, progress, in_turn=target.on_host,
                alone=lambda: rehearsal is None or rehearsal.done,
            )  # fmt: skip
            switch = _Switch(target.variables, start, logp_seconds, rehearsal)
            return with_history(_run_in_jax(key, exact_chains, config, report, switch, given))
    except KeyboardInterrupt:
        interrupted = True  # stop at once: the rehearsal finishes on its own
        raise
    finally:
        if rehearsal is not None and not interrupted:
            rehearsal.wait()  # not left compiling beside what runs next


def check_given(given: TrainedSurrogate, target: Target) -> None:
    """Refuse a given surrogate the engine cannot use on ``target``, saying why."""
    if given.kind != "logp" or given.exact_prior:
        learned = "a gradient" if given.kind != "logp" else "a log-likelihood without its prior"
        raise ValueError(
            f"shmc.sample reuses log-density surrogates saved by shmc.sample; this one learned "
            f"{learned} (saved by SurrogateHMC). Pass it to pm.sample(step=shmc.SurrogateHMC("
            "surrogate=...)), or let shmc.sample train its own."
        )
    given.check_variables(target.variables)


class _Switch(NamedTuple):
    """What the switch to a surrogate needs from the run: to save, to time, to count."""

    variables: tuple
    start: float
    """When the run started (``time.perf_counter``)."""
    logp_seconds: float
    """One exact log-density of every chain."""
    rehearsal: Rehearsal | None
    """The surrogate's programs, compiling while the exact phase runs."""


def _run_in_jax(key, exact_chains, config, report, switch: _Switch, given):
    """Exact NUTS on every chain until one surrogate takes over, or to the end."""
    total = config.tune + config.draws
    training_at = config.first_training_at
    given_at = None
    if given is not None:
        given_at = CHUNK * -(-given_pilot_at(config.tune) // CHUNK)
        if given_at > config.last_training_at:
            warnings.warn(
                f"tune={config.tune} is too short to pilot the given surrogate (after "
                f"{given_at} exact iterations, a {config.switch.pilot_iterations}-iteration "
                f"pilot and {MIN_SURROGATE_TUNING} of its own tuning): it is not used. Give "
                f"tune >= {given_at + config.switch.pilot_iterations + MIN_SURROGATE_TUNING}.",
                stacklevel=4,
            )
            given_at = None
    tuning_keys = iter(jax.random.split(jax.random.fold_in(key, 0), total))
    while exact_chains.iteration < config.tune:
        exact_chains.tune(next(tuning_keys))
        if exact_chains.iteration == given_at:
            handover = _try_given(jax.random.fold_in(key, 3), exact_chains, report, config, given)
            if handover is not None:
                return _switch(key, handover, exact_chains, report, config, switch)
        ready = (
            exact_chains.iteration >= training_at
            and exact_chains.iteration <= config.last_training_at
            and sum(not record.given for record in report.trainings) < MAX_TRAININGS
            and (given_at is None or exact_chains.iteration >= given_at)
        )
        if not ready:
            continue
        training_at *= 2
        if config.cost_gate:
            report.cost = judge_cost(
                exact_iteration=exact_chains.seconds_per_iteration(),
                logp=switch.logp_seconds,
                remaining=total - exact_chains.iteration,
                run_iterations=total,
            )
            if not _affordable(report.cost):
                report.decision = "stayed exact: surrogate would not pay"
                training_at = config.tune + 1
                continue
        _await(switch.rehearsal, report, exact_chains.progress)
        handover = _try_surrogate(
            jax.random.fold_in(key, exact_chains.iteration), exact_chains, report, config
        )
        if handover is not None:
            return _switch(key, handover, exact_chains, report, config, switch)
    report.seconds["exact"] = time.perf_counter() - switch.start - sum(report.seconds.values())
    tic = time.perf_counter()
    positions, stats, report.interrupted = exact_chains.draws(jax.random.fold_in(key, 1))
    report.seconds["exact"] += time.perf_counter() - tic
    report.exact_gradients = exact_chains.gradient_evaluations + int(stats["n_steps"].sum())
    return EngineResult(positions, stats, report, None)


def _await(rehearsal: Rehearsal | None, report: RunReport, progress: RunProgress) -> None:
    """Wait for the rehearsal's compilations; the wait is the report's ``compilation``."""
    if rehearsal is None:
        return
    tic = time.perf_counter()
    if not rehearsal.done:
        progress.show("compiling")
    rehearsal.wait()
    report.seconds["compilation"] = report.seconds.get("compilation", 0.0) + (
        time.perf_counter() - tic
    )


def _try_surrogate(key, exact_chains: _ExactChains, report: RunReport, config: EngineConfig):
    """Train one surrogate on every chain's exact evaluations and pilot it.

    Returns what the switch needs, or ``None`` (the training's record says why).
    """
    rows = exact_chains.rows()
    exact_chains.progress.show("training")
    train_key, pilot_key = jax.random.split(key)
    tic = time.perf_counter()
    evaluations = exact_chains.recorder.evaluations()
    surrogate, record = _train(evaluations, config, train_key, exact_chains.iteration)
    report.seconds["training"] = report.seconds.get("training", 0.0) + (time.perf_counter() - tic)
    report.trainings.append(record)
    report.decision = "stayed exact: no surrogate passed"
    if surrogate is None or not record.passed_validation:
        return None
    inverse_mass = jnp.asarray(_covariance(rows))
    pilot = _timed_pilot(pilot_key, surrogate, exact_chains, rows, inverse_mass, config, report)
    cheaper = (
        not config.cost_gate
        or pilot.seconds_per_iteration / max(pilot.second_stage, 0.1) * MIN_MEASURED_SPEEDUP
        < exact_chains.seconds_per_iteration()
    )
    passed = pilot.record.switched
    report.trainings[-1] = dataclasses.replace(
        record, pilot=dataclasses.replace(pilot.record, switched=passed and cheaper)
    )
    if passed and not cheaper:
        report.decision = "stayed exact: surrogate would not pay"
    return _Handover(surrogate, config.network, pilot, inverse_mass) if passed and cheaper else None


def _timed_pilot(key, surrogate, exact_chains, rows, inverse_mass, config, report) -> _Pilot:
    """:func:`_pilot`, shown in the progress and its time added to the report's."""
    exact_chains.progress.show("pilot")
    pilot = _pilot(key, surrogate, exact_chains.exact, rows, inverse_mass, config)
    report.seconds["pilot"] = report.seconds.get("pilot", 0.0) + pilot.record.seconds
    return pilot


def _try_given(key, exact_chains: _ExactChains, report: RunReport, config, given):
    """Pilot a given surrogate with its own metric and step size: a handover, or ``None``.

    Every chain starts from its last exact draw. A given surrogate is not priced: it was
    asked for.
    """
    rows = exact_chains.rows()
    rows = rows._replace(step_size=np.full(len(rows.last), given.step_size))
    mass = given.inverse_mass
    inverse_mass = jnp.asarray(mass if mass.ndim == 2 else np.diag(mass))
    surrogate = given.build()
    pilot = _timed_pilot(key, surrogate, exact_chains, rows, inverse_mass, config, report)
    report.trainings.append(
        TrainingRecord(exact_chains.iteration, n_points=0, given=True, pilot=pilot.record)
    )
    report.decision = "stayed exact: no surrogate passed"
    if not pilot.record.switched:
        return None
    return _Handover(surrogate, given.network, pilot, inverse_mass)


def _switch(
    key, handover: _Handover, exact_chains: _ExactChains, report, config, switch: _Switch
) -> EngineResult:
    """The surrogate kernel finishes the tuning and makes the draws.

    Halfway through its tuning, the dense metric is re-estimated from the surrogate kernel's
    own draws of every chain (exactly corrected, and many more than the exact phase made), and
    the step sizes adapt to it in the second half. The draws make as many surrogate
    transitions per exact correction as the second half's draws and timing say pay
    (:func:`transitions_per_correction`), or ``config.surrogate_transitions``.
    """
    surrogate, network, pilot, inverse_mass = handover
    done = exact_chains.iteration
    report.decision = "switched"
    report.switched_at = done
    report.exact_gradients = exact_chains.gradient_evaluations
    report.seconds["exact"] = time.perf_counter() - switch.start - sum(report.seconds.values())
    tic = time.perf_counter()
    tuning_left = max(config.tune - done - pilot.record.iterations, MIN_SURROGATE_TUNING // 2)
    state = pilot.state
    tuning_key, draws_key = jax.random.split(jax.random.fold_in(key, 2))
    progress = exact_chains.progress
    progress.advance(pilot.record.iterations, "surrogate", divergences=exact_chains.divergences)
    chunks = -(-tuning_left // CHUNK)
    window_end = chunks // 2 if chunks * CHUNK >= 2 * MIN_SURROGATE_TUNING else 0
    one = jnp.int32(1)
    tuning_draws, second_stage, chunk_seconds = [], [], []
    for index, chunk_key in enumerate(jax.random.split(tuning_key, chunks)):
        chunk_tic = time.perf_counter()
        state, chunk, _, info = kernel.run_chunk(
            chunk_key, state, surrogate.logdensity, exact_chains.exact, inverse_mass,
            jnp.bool_(True), CHUNK, config.target_accept, config.max_tree_depth, one,
        )  # fmt: skip
        tuning_draws.append(np.asarray(chunk))
        second_stage.append(np.asarray(info.second_stage_acceptance))
        chunk_seconds.append(time.perf_counter() - chunk_tic)
        progress.advance(CHUNK, "surrogate", divergences=exact_chains.divergences)
        if index + 1 == window_end:
            drawn = np.concatenate(tuning_draws).reshape(-1, inverse_mass.shape[0])
            inverse_mass = jnp.asarray(regularized_covariance(drawn, np.asarray(inverse_mass)))
            step_size = jnp.exp(state.step_size.log_step_size)
            state = kernel.start_tuning(state.chains, step_size, config.target_accept)
    report.surrogate_transitions = config.surrogate_transitions or _transitions(
        np.concatenate(tuning_draws[window_end:]),
        np.concatenate(second_stage[window_end:]),
        float(np.median(chunk_seconds[window_end:])) / CHUNK,
        switch.logp_seconds,
        config,
    )
    keys = jax.random.split(draws_key, -(-config.draws // CHUNK))
    positions, stats, report.interrupted = _frozen_draws(
        keys, state, surrogate.logdensity, exact_chains.exact, inverse_mass, config, progress,
        exact_chains.divergences, report.surrogate_transitions,
    )  # fmt: skip
    report.seconds["surrogate"] = time.perf_counter() - tic
    tuning_iterations = pilot.record.iterations + chunks * CHUNK
    report.exact_logps = int(stats["n_exact_logp"].sum()) + config.chains * tuning_iterations
    tuned = float(np.median(kernel.tuned_step_size(state, config.target_accept)))
    trained = TrainedSurrogate.from_surrogate(
        surrogate, variables=switch.variables, network=network, step_size=tuned,
        inverse_mass=np.asarray(inverse_mass),
    )  # fmt: skip
    return EngineResult(positions, stats, report, trained)
