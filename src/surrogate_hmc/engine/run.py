"""One run of the engine: exact chains until the surrogate can take over, then the surrogate.

1. nutpie samples every chain with its low-rank metric (:mod:`surrogate_hmc.engine.exact`);
2. when each chain has made ``first_training`` iterations and nutpie's measured cost says a
   surrogate could pay, nutpie is paused and **one** log-density surrogate is trained on the
   pooled draws of all chains (log-density and gradient at each);
3. a pilot runs the surrogate kernel of every chain for a few iterations; when its exact
   correction accepts, its draws spread as the exact ones do, its tails do not fall too fast and
   it is measured cheaper than nutpie, nutpie is stopped and the compiled surrogate kernel
   (:mod:`surrogate_hmc.engine.kernel`) finishes the tuning and makes the draws;
4. otherwise nutpie resumes and the surrogate is retrained on twice the draws, until tuning has
   too little left; then nutpie finishes the run, which is then nutpie's, exactly.

Both paths target the exact posterior with a kernel frozen for the draws.
"""

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from surrogate_hmc.core.buffer import TrainingBuffer
from surrogate_hmc.core.costs import MAX_FAILURE_SHARE, CostVerdict, judge_cost
from surrogate_hmc.core.exploration import RECENT_DRAWS, spread_ratio, tail_gap
from surrogate_hmc.core.fitting import fit_surrogate
from surrogate_hmc.core.lifecycle import PilotRecord, TrainingRecord
from surrogate_hmc.core.metric import regularized_covariance
from surrogate_hmc.core.network import NetworkConfig
from surrogate_hmc.core.schedule import SwitchTest
from surrogate_hmc.core.training import TrainingConfig
from surrogate_hmc.core.validation import check_bool, check_instance, check_int, check_real
from surrogate_hmc.engine import kernel
from surrogate_hmc.engine.exact import ExactRows, ExactSampler, nutpie_draws
from surrogate_hmc.engine.target import Target

__all__ = ["EngineConfig", "EngineResult", "RunReport", "run"]

CHUNK = 10
"""Surrogate iterations per compiled call: the grain of the progress bar and of Ctrl-C."""
MIN_SURROGATE_TUNING = 50
"""Tuning iterations the surrogate kernel needs after its pilot to adapt its step size."""
MIN_MEASURED_SPEEDUP = 1.25
"""After the pilot, a surrogate iteration divided by its second-stage acceptance must be this
many times cheaper than nutpie's iteration, as measured, for the surrogate to take over."""
BUFFER_CAPACITY = 4096
"""Most pooled exact draws a training sees (the most recent)."""
MAX_TRAININGS = 3
"""Trainings before the run settles for nutpie."""
SETUP_SECONDS = 15.0
"""What a first surrogate costs before it can pay back: its training (~4 s) and the
compilation of the surrogate kernel (~10 s) on the benchmark machine, with a cold cache."""


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs; validated on construction.

    Parameters
    ----------
    draws, tune, chains
        Draws kept per chain, tuning iterations per chain, and chains.
    target_accept
        Target of the step-size adaptation (nutpie's, and the surrogate kernel's on the
        surrogate tree's acceptance).
    max_tree_depth
        Most NUTS doublings per iteration.
    network, training, switch
        The surrogate's network, its training, and what it must show in its pilot.
    first_training
        Iterations each chain makes with nutpie before the first training (``None``: a fifth
        of ``tune``, between 50 and 200).
    cost_gate
        Train only when nutpie's measured cost says a surrogate can pay, and switch only when
        the pilot measures it cheaper; ``False`` trains and switches on the pilot's other
        tests alone.
    progressbar
        Show progress.

    Examples
    --------
    >>> EngineConfig(draws=500, tune=500).first_training_at
    100
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
            "progressbar": check_bool("progressbar", self.progressbar),
        }  # fmt: skip
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def first_training_at(self) -> int:
        """Iterations per chain before the first training."""
        if self.first_training is not None:
            return self.first_training
        return int(np.clip(self.tune // 5, 50, 200))

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
    exact_gradients: int = 0
    """Exact log-density-and-gradient evaluations of all chains (nutpie's)."""
    exact_logps: int = 0
    """Exact log-density evaluations of the surrogate kernel, all chains."""
    cost: CostVerdict | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of the ``exact`` (nutpie), ``training``, ``pilot`` and ``surrogate`` phases."""
    interrupted: bool = False

    def describe(self) -> str:
        """One sentence for a warning or a log."""
        parts = [f"The run {self.decision}"]
        if self.switched_at is not None:
            parts.append(f"at iteration {self.switched_at}")
        parts.append(
            f"after {len(self.trainings)} training(s); {self.exact_gradients} exact gradients, "
            f"{self.exact_logps} exact log-densities."
        )
        return " ".join(parts)


class EngineResult(NamedTuple):
    """Draws ``(chains, draws, dim)`` of the flat position, per-draw stats and the report."""

    positions: np.ndarray
    stats: dict[str, np.ndarray]
    report: RunReport
    surrogate: Any


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


def _train(rows: ExactRows, config: EngineConfig, key: jax.Array, iteration: int):
    buffer = TrainingBuffer(BUFFER_CAPACITY, rows.positions.shape[1])
    for position, logp, gradient in zip(rows.positions, rows.logps, rows.gradients, strict=True):
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
    """Run every chain's surrogate kernel from nutpie's last draws; judge it, and time it."""
    start = time.perf_counter()
    state = kernel.init(jnp.asarray(rows.last), surrogate.logdensity, exact)
    state = kernel.start_tuning(state, jnp.asarray(rows.step_size), config.target_accept)
    chunks = max(2, -(-config.switch.pilot_iterations // CHUNK))
    positions, second_stage, accept, chunk_seconds = [], [], [], []
    for chunk_key in jax.random.split(key, chunks):
        tic = time.perf_counter()
        state, chunk, info = kernel.run_chunk(
            chunk_key, state, surrogate.logdensity, exact, inverse_mass, jnp.bool_(True), CHUNK,
            config.target_accept, config.max_tree_depth,
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


def _surrogate_stats(info: kernel.DAInfo) -> dict[str, np.ndarray]:
    """Per-draw stats ``(chains, draws)`` from the kernel's ``(draws, chains)`` info."""
    as_numpy = {name: np.asarray(value).T for name, value in info._asdict().items()}
    n_steps = as_numpy["n_steps"].astype(np.int64)
    return {
        "phase": np.ones(n_steps.shape, dtype=np.int64),
        "acceptance_rate": as_numpy["acceptance_rate"],
        "second_stage_acceptance": as_numpy["second_stage_acceptance"],
        "diverging": as_numpy["diverging"].astype(bool),
        "energy": as_numpy["energy"],
        "step_size": as_numpy["step_size"],
        "n_steps": n_steps,
        "tree_depth": as_numpy["tree_depth"].astype(np.int64),
        "reached_max_treedepth": as_numpy["reached_max_treedepth"].astype(bool),
        "model_logp": as_numpy["model_logp"],
        "n_exact_grad": np.zeros(n_steps.shape, dtype=np.int64),
        "n_exact_logp": np.ones(n_steps.shape, dtype=np.int64),
    }


def _batched_logp_seconds(exact, positions: np.ndarray) -> float:
    """Wall time of one exact log-density of every chain at once (compiled, median of 5)."""
    batched = jax.jit(jax.vmap(exact))
    jax.block_until_ready(batched(positions))
    times = []
    for _ in range(5):
        tic = time.perf_counter()
        jax.block_until_ready(batched(positions))
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def _gate_says_train(report: RunReport, exact_iteration, logp_seconds, done, config) -> bool:
    """Whether nutpie's measured cost leaves room for a surrogate to pay (sets the verdict)."""
    if not config.cost_gate or exact_iteration is None:
        return True
    total = config.tune + config.draws
    verdict = judge_cost(
        exact_iteration=exact_iteration,
        logp=logp_seconds,
        remaining=total - done,
        run_iterations=total,
    )
    report.cost = verdict
    affordable = SETUP_SECONDS <= MAX_FAILURE_SHARE * verdict.plain_run_seconds
    return verdict.pays and verdict.saving > SETUP_SECONDS and affordable


def run(target: Target, config: EngineConfig, seed: int) -> EngineResult:
    """Sample ``target`` as ``config`` says; the draws of all chains and what it cost.

    Examples
    --------
    >>> target = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), jnp.zeros(2))
    >>> result = run(target, EngineConfig(draws=100, tune=100, chains=2, progressbar=False), 1)
    >>> result.positions.shape, result.report.decision
    ((2, 100, 2), 'stayed exact: run too short')
    """
    rng = np.random.default_rng(seed)
    key = jax.random.key(rng.integers(2**31))
    report = RunReport()
    starts = target.initial_positions(config.chains, rng)
    exact = target.logdensity
    start = time.perf_counter()
    sampler = ExactSampler(
        target,
        starts,
        tune=config.tune,
        draws=config.draws,
        seed=int(rng.integers(2**31)),
        target_accept=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        progressbar=config.progressbar,
    )
    training_at = config.first_training_at
    handover = None
    logp_seconds = _batched_logp_seconds(exact, starts)
    while len(report.trainings) < MAX_TRAININGS and training_at <= config.last_training_at:
        if not sampler.wait_for(training_at):
            break
        exact_iteration = sampler.seconds_per_iteration()
        if not _gate_says_train(report, exact_iteration, logp_seconds, training_at, config):
            report.decision = "stayed exact: surrogate would not pay"
            break
        sampler.pause()
        rows = sampler.rows()
        done = int(rows.iteration.max()) + 1
        if done > config.last_training_at:  # nutpie ran past the last chance while we waited
            if not report.trainings:
                report.decision = "stayed exact: run too short"
            sampler.resume()
            break
        tic = time.perf_counter()
        key, train_key, pilot_key = jax.random.split(key, 3)
        surrogate, record = _train(rows, config, train_key, done)
        report.seconds["training"] = report.seconds.get("training", 0.0) + (
            time.perf_counter() - tic
        )
        report.trainings.append(record)
        report.decision = "stayed exact: no surrogate passed"
        if surrogate is not None and record.passed_validation:
            inverse_mass = jnp.asarray(_covariance(rows))
            pilot = _pilot(pilot_key, surrogate, exact, rows, inverse_mass, config)
            report.seconds["pilot"] = report.seconds.get("pilot", 0.0) + pilot.record.seconds
            cheaper = (
                not config.cost_gate
                or exact_iteration is None
                or pilot.seconds_per_iteration / max(pilot.second_stage, 0.1)
                * MIN_MEASURED_SPEEDUP < exact_iteration
            )  # fmt: skip
            passed = pilot.record.switched
            report.trainings[-1] = dataclasses.replace(
                record, pilot=dataclasses.replace(pilot.record, switched=passed and cheaper)
            )
            if passed and cheaper:
                handover = (surrogate, pilot, inverse_mass, done)
                break
            if passed:
                report.decision = "stayed exact: surrogate would not pay"
                sampler.resume()
                break
        sampler.resume()
        training_at = 2 * training_at
    if handover is None:
        try:
            positions, stats = nutpie_draws(sampler.finish(), config.draws)
        except KeyboardInterrupt:
            report.interrupted = True
            warnings.warn("Sampling was interrupted: the draws made so far are returned.",
                          stacklevel=2)  # fmt: skip
            positions, stats = nutpie_draws(sampler.abort(), config.draws)
        report.exact_gradients = sampler.gradient_evaluations()
        report.seconds["exact"] = time.perf_counter() - start - sum(report.seconds.values())
        return EngineResult(positions, stats, report, None)
    sampler.stop()
    report.exact_gradients = sampler.gradient_evaluations()
    surrogate, pilot, inverse_mass, done = handover
    report.decision = "switched"
    report.switched_at = done
    report.seconds["exact"] = time.perf_counter() - start - sum(report.seconds.values())
    tic = time.perf_counter()
    positions, stats, report.interrupted = _surrogate_phase(
        key, surrogate, exact, pilot, inverse_mass, config, done
    )
    report.seconds["surrogate"] = time.perf_counter() - tic
    report.exact_logps = int(stats["n_exact_logp"].sum()) + config.chains * (
        config.tune - done
    )
    return EngineResult(positions, stats, report, surrogate)


def _surrogate_phase(key, surrogate, exact, pilot: _Pilot, inverse_mass, config, done):
    """Finish tuning with the surrogate kernel, freeze it, and make the draws."""
    tuning_left = max(config.tune - done - pilot.record.iterations, MIN_SURROGATE_TUNING // 2)
    state = pilot.state
    positions, infos = [], []
    interrupted = False
    tuning_key, draws_key = jax.random.split(key)
    try:
        for chunk_key in jax.random.split(tuning_key, -(-tuning_left // CHUNK)):
            state, _, _ = kernel.run_chunk(
                chunk_key, state, surrogate.logdensity, exact, inverse_mass, jnp.bool_(True),
                CHUNK, config.target_accept, config.max_tree_depth,
            )  # fmt: skip
        for chunk_key in jax.random.split(draws_key, -(-config.draws // CHUNK)):
            state, chunk, info = kernel.run_chunk(
                chunk_key, state, surrogate.logdensity, exact, inverse_mass, jnp.bool_(False),
                CHUNK, config.target_accept, config.max_tree_depth,
            )  # fmt: skip
            positions.append(np.asarray(chunk))
            infos.append(info)
    except KeyboardInterrupt:
        if not infos:
            raise
        interrupted = True
        warnings.warn("Sampling was interrupted: the draws made so far are returned.",
                      stacklevel=3)  # fmt: skip
    draws = np.swapaxes(np.concatenate(positions), 0, 1)[:, : config.draws]
    info = jax.tree.map(lambda *parts: np.concatenate(parts), *infos)
    stats = {name: value[:, : config.draws] for name, value in _surrogate_stats(info).items()}
    return draws, stats, interrupted
