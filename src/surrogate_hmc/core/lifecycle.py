"""A chain's life: exact phase, trainings, pilot, surrogate phase; what happens next, and why.

The lifecycle knows nothing of PyMC or of networks. Like BlackJAX's adaptation it is a pure
``init`` / ``update`` / ``final`` triple over an immutable :class:`LifecycleState`: the sampler
reports each tuning iteration's :class:`IterationStats` and each training's
:class:`TrainingRecord`, and the lifecycle answers with the :class:`Action` to take. The
:class:`~surrogate_hmc.core.schedule.Schedule` says *when* something may happen, the
:class:`~surrogate_hmc.core.schedule.SwitchTest` *whether* a surrogate is trusted; the
lifecycle holds the two together.

::

    EXACT --TRAIN, passed--> PILOT --passed--> SURROGATE --(REFIT)--> SURROGATE --final--> draws
      ^                        |
      +-------failed-----------+      EXACT --nothing left to try--> EXACT_ONLY --final--> draws
                                      EXACT --ASSESS_COST, cannot pay--> EXACT_ONLY (STAY_NUTS)
                                      EXACT --failed, ASSESS_COST, books say no--> EXACT_ONLY
                                                                                   (GIVE_UP)
"""

import enum
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from surrogate_hmc.core.cost_ledger import CostVerdict, FailureBooks, fit_quality, keep_books
from surrogate_hmc.core.schedule import SchedulePlan, SwitchTest

__all__ = [
    "PHASE_NAMES",
    "RECENT_EXACT_ITERATIONS",
    "Action",
    "IterationStats",
    "Lifecycle",
    "LifecycleState",
    "Phase",
    "PilotRecord",
    "TrainingRecord",
]

RECENT_EXACT_ITERATIONS = 50
"""Exact iterations remembered for the pilot's reference acceptance and the surrogate's start."""


class Phase(enum.Enum):
    """Where a chain is in its life.

    The ``phase`` sample stat is :attr:`code`: 0 while exact NUTS makes the draws (``EXACT``,
    ``EXACT_ONLY``), 1 while the surrogate kernel does (``PILOT``, ``SURROGATE``).
    """

    EXACT = "exact"
    """Exact NUTS; exact evaluations are collected and the surrogate is trained on schedule."""
    PILOT = "pilot"
    """A trained surrogate's kernel on trial, at the exact phase's step size."""
    SURROGATE = "surrogate"
    """The surrogate kernel: adapting during tuning, frozen for the draws."""
    EXACT_ONLY = "exact only"
    """Exact NUTS with nothing left to try (or nothing worth it): nothing collected or trained."""

    @property
    def code(self) -> int:
        """The ``phase`` sample stat: 1 when the surrogate kernel moves the chain, else 0."""
        return int(self in (Phase.PILOT, Phase.SURROGATE))


PHASE_NAMES = {0: "exact", 1: "surrogate"}
"""The values of the ``phase`` sample stat and what they mean."""


class Action(enum.Enum):
    """What the sampler must do now, as decided by :class:`Lifecycle`."""

    NONE = "none"
    ASSESS_COST = "assess cost"
    """Judge whether a surrogate can pay off; report with :meth:`Lifecycle.assessed`."""
    STAY_NUTS = "stay nuts"
    """A surrogate cannot pay off: stop collecting, continue as plain NUTS, and say so."""
    GIVE_UP = "give up"
    """Failed trainings and pilots cost more than another attempt could win back: stop
    collecting, continue as plain NUTS, and say so (see :attr:`LifecycleState.books`)."""
    TRAIN = "train"
    """Fit a new surrogate on the collected evaluations; report with :meth:`Lifecycle.trained`."""
    REFIT = "refit"
    """Fit the surrogate in use again, on all it was shown; report with ``trained``."""
    USE_GIVEN = "use given"
    """Build the surrogate given by the user; report with ``trained`` (a ``given`` record)."""
    START_PILOT = "start pilot"
    """Start the surrogate kernel on trial (step size and lengths from the exact phase)."""
    ADOPT = "adopt"
    """A refit passed: the kernel continues with the new network."""
    SWITCH = "switch"
    """The pilot passed: the surrogate kernel now adapts its own step size."""
    REVERT = "revert"
    """The pilot failed: drop the surrogate, back to exact NUTS."""
    FREEZE = "freeze"
    """End of tuning with a surrogate: the kernel is frozen for the draws."""
    STAY_EXACT = "stay exact"
    """End of tuning without a surrogate: the draws come from exact NUTS."""


class IterationStats(NamedTuple):
    """What the lifecycle reads from one tuning iteration."""

    acceptance_rate: float
    n_steps: int
    step_size: float
    second_stage_acceptance: float = float("nan")
    seconds: float = 0.0
    """Wall time of the iteration (a pilot's count against the gain if it fails)."""


@dataclass(frozen=True)
class PilotRecord:
    """The outcome of a pilot: its acceptance against what was required.

    ``acceptance`` is the mean acceptance of the pilot's transitions (for NUTS on the surrogate,
    tree acceptance times second-stage acceptance), ``required`` the share of the exact phase's
    acceptance the :class:`~surrogate_hmc.core.schedule.SwitchTest` asks for, and
    ``second_stage_acceptance`` the mean acceptance of the exact correction (``None`` for
    static trajectories, which have none), ``spread`` and ``tail_gap`` the exploration
    checks' results. A pilot whose exploration checks fail ends before its first iteration.

    Examples
    --------
    >>> PilotRecord(0.9, 0.5, 0.95, switched=False, spread=0.8, tail_gap=4.2).reason
    'the surrogate falls 4.2 nats below its tangent just beyond the data (at most 1 allowed)'
    """

    acceptance: float
    required: float
    second_stage_acceptance: float | None
    switched: bool
    spread: float | None = None
    """The exploration check: the surrogate's draws' smallest variance ratio to the exact
    draws' (see :func:`~surrogate_hmc.core.exploration.spread_ratio`; ``None``: too few exact
    draws to compare with)."""
    tail_gap: float | None = None
    """The tail check: how many nats faster than its tangent the surrogate falls just beyond
    the data (see :func:`~surrogate_hmc.core.exploration.tail_gap`; ``None``: not run)."""
    min_spread: float = 0.1
    max_tail_gap: float = 1.0
    seconds: float = 0.0
    """Wall time of the pilot: its start (kernel, exploration check) and its iterations."""
    iterations: int = 0
    """Pilot iterations run."""

    @property
    def explored(self) -> bool:
        """Whether the exploration checks passed (the pilot's iterations then ran)."""
        return self.exploration_failure is None

    @property
    def exploration_failure(self) -> str | None:
        """Why the exploration checks failed (``None``: they passed or were turned off)."""
        if self.min_spread > 0 and self.spread is None:
            return "the exact chain has too few recent draws to compare the surrogate with"
        if self.min_spread > 0 and self.spread is not None and self.spread < self.min_spread:
            return (
                f"the surrogate alone spreads over {self.spread:.2g} of the exact draws' variance "
                f"in some coordinate (at least {self.min_spread:g} needed)"
            )
        if self.tail_gap is not None and self.tail_gap > self.max_tail_gap:
            return (
                f"the surrogate falls {self.tail_gap:.2g} nats below its tangent just beyond "
                f"the data (at most {self.max_tail_gap:g} allowed)"
            )
        return None

    @property
    def reason(self) -> str:
        """What decided the pilot, in words."""
        failure = self.exploration_failure
        if failure is not None:
            return failure
        if self.switched:
            return "passed"
        second = self.second_stage_acceptance
        return f"acceptance {self.acceptance:.2f} (needed {self.required:.2f})" + (
            f", second-stage acceptance {second:.2f}" if second is not None else ""
        )

    def __repr__(self) -> str:
        """One line: whether it switched, and the numbers that decided it.

        Examples
        --------
        >>> passed = PilotRecord(0.86, 0.5, 0.98, True, spread=0.9, iterations=30, seconds=1.2)
        >>> passed  # doctest: +NORMALIZE_WHITESPACE
        PilotRecord(switched=True, acceptance=0.86, required=0.5, second_stage_acceptance=0.98,
                    spread=0.9, iterations=30, seconds=1.2)
        >>> failed = PilotRecord(0.0, 0.0, None, switched=False, spread=0.02)
        >>> failed  # doctest: +NORMALIZE_WHITESPACE
        PilotRecord(switched=False, reason="the surrogate alone spreads over 0.02 of the exact
                    draws' variance in some coordinate (at least 0.1 needed)", spread=0.02,
                    iterations=0, seconds=0)
        """
        fields = [f"switched={self.switched}"]
        if self.explored:
            fields += [f"acceptance={self.acceptance:.3g}", f"required={self.required:.3g}"]
            if self.second_stage_acceptance is not None:
                fields.append(f"second_stage_acceptance={self.second_stage_acceptance:.3g}")
        else:
            fields.append(f"reason={self.reason!r}")
        fields += [
            f"{name}={value:.3g}"
            for name, value in (("spread", self.spread), ("tail_gap", self.tail_gap))
            if value is not None
        ]
        fields += [f"iterations={self.iterations}", f"seconds={self.seconds:.3g}"]
        return f"PilotRecord({', '.join(fields)})"


@dataclass(frozen=True)
class TrainingRecord:
    """One training of a chain (or its use of a given surrogate), as the lifecycle saw it.

    Examples
    --------
    >>> record = TrainingRecord(iteration=50, n_points=10)
    >>> record.outcome
    'too few points to train'
    """

    iteration: int
    """Tuning iteration after which it ran."""
    n_points: int
    """Exact evaluations trained on (0 for a given surrogate)."""
    validation_error: float | None = None
    """Held-out error (``None``: nothing was trained)."""
    max_validation_error: float = float("inf")
    """The switch test's threshold for ``validation_error``."""
    train_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    validation_losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps_per_loss: int = 1
    """Optimizer steps between two points of the loss curves."""
    seconds: float = 0.0
    """Wall time of the training."""
    given: bool = False
    """A surrogate given to the sampler, not trained here."""
    refit: bool = False
    """A refit of the surrogate in use."""
    pilot: PilotRecord | None = None
    """Its pilot, once one has run."""

    @property
    def passed_validation(self) -> bool:
        """Whether it may be piloted (or, for a refit, adopted)."""
        if self.given:
            return True
        return self.validation_error is not None and (
            self.validation_error <= self.max_validation_error
        )

    @property
    def switched(self) -> bool:
        """Whether its pilot passed and the chain switched to it."""
        return self.pilot is not None and self.pilot.switched

    @property
    def outcome(self) -> str:
        """A few words on what came of it (the diagnostics plot's legend)."""
        if self.refit:
            return "refitted" if self.passed_validation else "refit not kept"
        if self.given:
            if self.pilot is None:
                return "given, pilot pending"
            return "given, switched" if self.pilot.switched else "given, failed its pilot"
        if self.pilot is not None:
            return "switched" if self.pilot.switched else "failed its pilot"
        if self.validation_error is None:
            return "too few points to train"
        if not self.passed_validation:
            return "validation error too large"
        return "pilot pending"

    def __repr__(self) -> str:
        """One line, with the loss curves' lengths (not their values) and the outcome.

        A given surrogate's record says so: it was piloted, not trained.

        Examples
        --------
        >>> losses = np.ones(20)
        >>> record = TrainingRecord(100, 3200, 0.0312, 0.5, losses, losses, seconds=1.4)
        >>> record  # doctest: +NORMALIZE_WHITESPACE
        TrainingRecord(iteration=100, n_points=3200, validation_error=0.0312 (max 0.5),
                       train_losses=<20 values>, validation_losses=<20 values>, seconds=1.4,
                       outcome='pilot pending')
        >>> pilot = PilotRecord(0.9, 0.5, 0.97, switched=True, spread=0.8, iterations=30)
        >>> TrainingRecord(50, n_points=0, given=True, pilot=pilot)
        TrainingRecord(iteration=50, given=True, outcome='given surrogate, piloted: switched')
        """
        outcome = self.outcome
        if self.pilot is not None and not self.pilot.switched:
            outcome += f": {self.pilot.reason}"
        if self.given:
            outcome = outcome.removeprefix("given, ")
            piloted = outcome if self.pilot is None else f"piloted: {outcome}"
            given = f"given surrogate, {piloted}"
            return f"TrainingRecord(iteration={self.iteration}, given=True, outcome={given!r})"
        error = "None" if self.validation_error is None else f"{self.validation_error:.3g}"
        if self.validation_error is not None and np.isfinite(self.max_validation_error):
            error += f" (max {self.max_validation_error:.3g})"
        fields = [
            f"iteration={self.iteration}",
            f"n_points={self.n_points}",
            *(["refit=True"] if self.refit else []),
            f"validation_error={error}",
        ]
        for name, losses in (
            ("train_losses", self.train_losses),
            ("validation_losses", self.validation_losses),
        ):
            if len(losses):
                fields.append(f"{name}=<{len(losses)} value{'' if len(losses) == 1 else 's'}>")
        if self.seconds:
            fields.append(f"seconds={self.seconds:.3g}")
        fields.append(f"outcome={outcome!r}")
        return f"TrainingRecord({', '.join(fields)})"


@dataclass(frozen=True)
class LifecycleState:
    """The lifecycle of one chain: its phase, its trainings, and what it remembers."""

    phase: Phase
    records: tuple[TrainingRecord, ...] = ()
    recent_exact: tuple[IterationStats, ...] = ()
    pilot: tuple[IterationStats, ...] = ()
    cost: CostVerdict | None = None
    """The cost gate's verdict, once it was asked."""
    spread: float | None = None
    """The exploration check of the pilot under way, once it was run."""
    tail_gap: float | None = None
    """The tail check of the pilot under way, once it was run."""
    pilot_start_seconds: float = 0.0
    """Wall time of the start of the pilot under way (its kernel, the exploration check)."""
    books_due: bool = False
    """A training or pilot failed after the cost gate let it through: the gate's books are
    kept at the next iteration (``ASSESS_COST``)."""
    books: FailureBooks | None = None
    """The cost gate's books on failed trainings and pilots, as last kept."""


@dataclass(frozen=True)
class Lifecycle:
    """Decides, from the schedule, the switch test and each iteration, what a chain does next.

    Parameters
    ----------
    plan
        The schedule resolved for this chain's tuning length.
    switch_test
        What a surrogate must show before it takes over.
    given_at
        Tuning iteration at which a surrogate given by the user is piloted (``None``: none).
    target_accept
        The exact phase's acceptance when no exact iteration was seen (a given surrogate
        piloted first).
    cost_gate
        Judge, just before the first training, whether a surrogate can pay off in this run
        (``ASSESS_COST``; until the exact phase has settled, only a clear yes is final and
        the question waits for the next training), and after each failed training or pilot
        whether another attempt still can (``ASSESS_COST`` again, then ``GIVE_UP``: see
        :meth:`assessed`). Without it a surrogate is learned whatever it costs, and failures
        are not counted against the gain. A given surrogate is never gated, nor the
        trainings after it: it has no training to pay for.

    Examples
    --------
    >>> from surrogate_hmc.core.schedule import Schedule, SwitchTest
    >>> life = Lifecycle(Schedule(start=2, every=2, stop=2).plan(tune=10), SwitchTest(
    ...     pilot_iterations=1))
    >>> state = life.init()
    >>> for iteration in range(2):
    ...     state, action = life.update(state, iteration, IterationStats(0.8, 7, 0.3))
    >>> state, action = life.update(state, 2, IterationStats(0.8, 7, 0.3))
    >>> action
    <Action.TRAIN: 'train'>
    >>> record = TrainingRecord(2, n_points=100, validation_error=0.1, max_validation_error=0.5)
    >>> state, action = life.trained(state, record)
    >>> action, state.phase
    (<Action.START_PILOT: 'start pilot'>, <Phase.PILOT: 'pilot'>)
    >>> state, action = life.explored(state, spread=0.9, tail_gap=0.2, iteration=2)
    >>> action
    <Action.NONE: 'none'>
    >>> state, action = life.update(state, 3, IterationStats(0.9, 7, 0.3, 0.99))
    >>> action, state.phase
    (<Action.SWITCH: 'switch'>, <Phase.SURROGATE: 'surrogate'>)
    """

    plan: SchedulePlan
    switch_test: SwitchTest
    given_at: int | None = None
    target_accept: float = 0.8
    cost_gate: bool = False

    def init(self) -> LifecycleState:
        """The state of a new chain: exact, or exact only when nothing is planned."""
        nothing_planned = not self.plan.training_iterations and self.given_at is None
        return LifecycleState(Phase.EXACT_ONLY if nothing_planned else Phase.EXACT)

    # -- what the sampler asks during an iteration --------------------------------------------

    def collects(self, state: LifecycleState, iteration: int) -> bool:
        """Whether exact evaluations of the exact phase go to the training buffer."""
        return state.phase is Phase.EXACT and iteration >= self.plan.collect_from

    def learns_online(self, state: LifecycleState, iteration: int) -> bool:
        """Whether the surrogate phase's exact evaluations go to the buffer (until the refit)."""
        refit = self.plan.refit_iteration
        return (
            state.phase in (Phase.PILOT, Phase.SURROGATE)
            and refit is not None
            and iteration < refit
        )

    # -- after an iteration -------------------------------------------------------------------

    def update(
        self, state: LifecycleState, iteration: int, stats: IterationStats
    ) -> tuple[LifecycleState, Action]:
        """Take in one tuning iteration's stats; say what to do before the next one."""
        if state.phase is Phase.PILOT:
            state = replace(state, pilot=(*state.pilot, stats))
            if len(state.pilot) < self.switch_test.pilot_iterations:
                return state, Action.NONE
            return self._end_pilot(state, iteration)
        if state.phase is Phase.SURROGATE:
            return state, Action.REFIT if iteration == self.plan.refit_iteration else Action.NONE
        if state.phase is Phase.EXACT_ONLY:
            return state, Action.NONE
        recent = (*state.recent_exact, stats)[-RECENT_EXACT_ITERATIONS:]
        state = replace(state, recent_exact=recent)
        if state.books_due:
            return state, Action.ASSESS_COST
        if iteration == self.given_at:
            return state, Action.USE_GIVEN
        if iteration in self.plan.training_iterations:
            if self.cost_gate and self.given_at is None and state.cost is None:
                return state, Action.ASSESS_COST
            return state, Action.TRAIN
        return self._give_up_if_done(state, iteration), Action.NONE

    def assessed(
        self, state: LifecycleState, verdict: CostVerdict, iteration: int
    ) -> tuple[LifecycleState, Action]:
        """Take in the cost gate's verdict (after ``ASSESS_COST``): train, wait, or stay NUTS.

        A verdict that is not :attr:`~surrogate_hmc.core.cost_ledger.CostVerdict.decided` (the exact
        phase has not settled and its floor cost does not pay) skips this training; the gate is
        asked again at the next one, or decides against a surrogate when none is left.

        After a failed training or pilot (the iteration after it) the gate keeps its books on
        the fresh ``verdict`` (:func:`~surrogate_hmc.core.cost_ledger.keep_books`): the seconds lost
        to the failures (each training's ``seconds``, and each failed pilot's wall time beyond
        what as many exact iterations take) plus the expected cost of another attempt (what
        the last failure cost) must stay below what a surrogate could still win, the saving
        per iteration over the iterations after the next training and its pilot, scaled by
        the last fit's :func:`~surrogate_hmc.core.cost_ledger.fit_quality`, and below
        :data:`~surrogate_hmc.core.cost_ledger.MAX_FAILURE_SHARE` of a plain NUTS run; otherwise
        ``GIVE_UP``.
        """
        if state.books_due:
            return self._keep_books(state, verdict, iteration)
        if verdict.pays:
            return replace(state, cost=verdict), Action.TRAIN
        if not verdict.decided and any(t > iteration for t in self.plan.training_iterations):
            return state, Action.NONE
        return replace(state, cost=verdict, phase=Phase.EXACT_ONLY), Action.STAY_NUTS

    def explored(
        self,
        state: LifecycleState,
        spread: float | None,
        tail_gap: float | None,
        iteration: int,
    ) -> tuple[LifecycleState, Action]:
        """Take in the pilot's exploration checks (after ``START_PILOT``): go on, or fail now.

        ``spread`` is :func:`~surrogate_hmc.core.exploration.spread_ratio` of the surrogate's
        own draws against the exact chain's recent ones (``None``: too few exact draws to
        judge, which fails too: a pilot cannot pass unchecked); the pilot fails below
        ``SwitchTest.min_spread``. ``tail_gap`` is
        :func:`~surrogate_hmc.core.exploration.tail_gap` (``None``: not run); the pilot fails
        above ``SwitchTest.max_tail_gap``. A failed check ends the pilot before its first
        iteration (``REVERT``).
        """
        state = replace(state, spread=spread, tail_gap=tail_gap)
        if self._pilot_record(state).explored:
            return state, Action.NONE
        return self._end_pilot(state, iteration)

    def trained(
        self, state: LifecycleState, record: TrainingRecord
    ) -> tuple[LifecycleState, Action]:
        """Take in a training's record (after ``TRAIN``, ``REFIT`` or ``USE_GIVEN``)."""
        state = replace(state, records=(*state.records, record))
        if record.refit:
            return state, Action.ADOPT if record.passed_validation else Action.NONE
        if record.passed_validation:
            return replace(state, phase=Phase.PILOT, pilot=()), Action.START_PILOT
        return self._after_failure(state, record.iteration), Action.NONE

    def pilot_started(self, state: LifecycleState, seconds: float) -> LifecycleState:
        """Take in the wall time of starting the pilot (after ``START_PILOT``).

        Its kernel and exploration check count with its iterations should it fail.
        """
        return replace(state, pilot_start_seconds=state.pilot_start_seconds + seconds)

    def final(self, state: LifecycleState) -> tuple[LifecycleState, Action]:
        """End of tuning: judge an unfinished pilot, then freeze or stay exact."""
        if state.phase is Phase.PILOT:
            state, _ = self._end_pilot(state, iteration=None)
        if state.phase is Phase.SURROGATE:
            return state, Action.FREEZE
        return replace(state, phase=Phase.EXACT_ONLY), Action.STAY_EXACT

    def never_switched(self, state: LifecycleState) -> bool:
        """Whether a surrogate was planned (trained or given) but none was ever used.

        Not when the cost gate decided against one, or gave up after failures: that was said
        when it happened.
        """
        planned = bool(self.plan.training_iterations) or self.given_at is not None
        gated = state.cost is not None and not state.cost.pays
        gave_up = state.books is not None and not state.books.worth_another
        return planned and not gated and not gave_up and state.phase is not Phase.SURROGATE

    # -- the rules ----------------------------------------------------------------------------

    def _end_pilot(
        self, state: LifecycleState, iteration: int | None
    ) -> tuple[LifecycleState, Action]:
        test = self.switch_test
        if state.recent_exact:
            exact_acceptance = float(np.mean([s.acceptance_rate for s in state.recent_exact]))
        else:
            exact_acceptance = self.target_accept
        required = test.min_acceptance_ratio * exact_acceptance
        acceptance = np.array([s.acceptance_rate for s in state.pilot], dtype=float)
        second_stage = np.array([s.second_stage_acceptance for s in state.pilot], dtype=float)
        corrected = acceptance * np.where(np.isnan(second_stage), 1.0, second_stage)
        pilot_acceptance = float(np.mean(corrected)) if state.pilot else 0.0
        passed = bool(state.pilot) and pilot_acceptance >= required
        mean_second_stage = None
        if not np.all(np.isnan(second_stage)):
            mean_second_stage = float(np.nanmean(second_stage))
            passed &= mean_second_stage >= test.min_second_stage
        seconds = state.pilot_start_seconds + sum(s.seconds for s in state.pilot)
        pilot = replace(
            self._pilot_record(state), acceptance=pilot_acceptance, required=required,
            second_stage_acceptance=mean_second_stage, seconds=seconds,
            iterations=len(state.pilot),
        )  # fmt: skip
        pilot = replace(pilot, switched=bool(passed) and pilot.explored)
        passed = pilot.switched
        *earlier, last = state.records
        state = replace(
            state, records=(*earlier, replace(last, pilot=pilot)), pilot=(), spread=None,
            tail_gap=None, pilot_start_seconds=0.0,
        )  # fmt: skip
        if passed:
            return replace(state, phase=Phase.SURROGATE), Action.SWITCH
        state = replace(state, phase=Phase.EXACT)
        if iteration is not None:
            state = self._after_failure(state, iteration)
        return state, Action.REVERT

    def _pilot_record(self, state: LifecycleState) -> PilotRecord:
        """The pilot under way's exploration checks, before its acceptance is known."""
        test = self.switch_test
        return PilotRecord(
            0.0, 0.0, None, False, state.spread, state.tail_gap,
            min_spread=test.min_spread, max_tail_gap=test.max_tail_gap,
        )  # fmt: skip

    def _after_failure(self, state: LifecycleState, iteration: int) -> LifecycleState:
        """Stay exact only when nothing is left to try; else, if gated, keep the books next."""
        state = self._give_up_if_done(state, iteration)
        gated = self.cost_gate and self.given_at is None and state.cost is not None
        if state.phase is Phase.EXACT and gated:
            return replace(state, books_due=True)
        return state

    def _keep_books(
        self, state: LifecycleState, verdict: CostVerdict, iteration: int
    ) -> tuple[LifecycleState, Action]:
        """Whether another attempt can be won back; see :meth:`assessed`."""
        failures = [r for r in state.records if not r.refit]
        lost = [_seconds_lost(r, verdict.exact_iteration) for r in failures]
        fits = [r for r in failures if r.validation_error is not None] or failures
        quality = fit_quality(fits[-1].validation_error, fits[-1].max_validation_error)
        next_training = min(t for t in self.plan.training_iterations if t >= iteration)
        wait = next_training - iteration + self.switch_test.pilot_iterations
        books = keep_books(verdict, spent=sum(lost), attempt=lost[-1], quality=quality, wait=wait)
        state = replace(state, books=books, books_due=False)
        if books.worth_another:
            return state, Action.TRAIN if next_training == iteration else Action.NONE
        return replace(state, phase=Phase.EXACT_ONLY), Action.GIVE_UP

    def _give_up_if_done(self, state: LifecycleState, iteration: int) -> LifecycleState:
        later = [t for t in self.plan.training_iterations if t > iteration]
        given_later = self.given_at is not None and self.given_at > iteration
        if state.phase is Phase.EXACT and not later and not given_later:
            return replace(state, phase=Phase.EXACT_ONLY)
        return state


def _seconds_lost(record: TrainingRecord, exact_iteration: float) -> float:
    """What a failed attempt cost: its training, and its pilot beyond exact iterations.

    The pilot's iterations moved the chain as as many exact iterations would have: only what
    they (and the pilot's start) took beyond those is lost.
    """
    pilot = record.pilot
    if pilot is None:
        return record.seconds
    return record.seconds + max(pilot.seconds - pilot.iterations * exact_iteration, 0.0)
