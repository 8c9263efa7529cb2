"""The lifecycle on its own, with plain numbers: what it decides, and when."""

import numpy as np
import pytest

from surrogate_hmc.core.cost_ledger import judge_cost
from surrogate_hmc.core.lifecycle import (
    RECENT_EXACT_ITERATIONS,
    Action,
    IterationStats,
    Lifecycle,
    Phase,
    TrainingRecord,
)
from surrogate_hmc.core.schedule import Schedule, SwitchTest

EXACT = IterationStats(acceptance_rate=0.8, n_steps=7, step_size=0.3)
GOOD_PILOT = IterationStats(0.9, 7, 0.3, second_stage_acceptance=0.99)
BAD_PILOT = IterationStats(0.9, 7, 0.3, second_stage_acceptance=0.5)
TEST = SwitchTest(max_validation_error=0.5, pilot_iterations=3)


def lifecycle(start=10, every=10, stop=30, refit=None, **kwargs):
    plan = Schedule(start=start, every=every, stop=stop, refit=refit).plan(tune=100)
    return Lifecycle(plan, TEST, **kwargs)


def record(iteration, error=0.1, **kwargs):
    return TrainingRecord(iteration, 100, error, max_validation_error=0.5, **kwargs)


def piloted(life, state, iteration, spread=1.0, tail_gap=0.1):
    """Start a pilot (after ``START_PILOT``) whose exploration checks pass."""
    state, action = life.explored(state, spread, tail_gap, iteration)
    assert action is Action.NONE
    return state


def run_exact(life, state, iterations):
    actions = {}
    for iteration in iterations:
        state, action = life.update(state, iteration, EXACT)
        if action is not Action.NONE:
            actions[iteration] = action
    return state, actions


def test_trains_on_schedule_and_collects_from_collect_from():
    life = lifecycle()
    state, actions = run_exact(life, life.init(), range(10))
    assert state.phase is Phase.EXACT and not actions
    assert not life.collects(state, 4) and life.collects(state, life.plan.collect_from)
    state, action = life.update(state, 10, EXACT)
    assert action is Action.TRAIN


def test_a_good_fit_is_piloted_then_switched():
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    state, action = life.trained(state, record(10))
    assert (action, state.phase) == (Action.START_PILOT, Phase.PILOT)
    state = piloted(life, state, 10)
    assert Phase.PILOT.code == 1 and Phase.EXACT.code == 0
    assert not life.collects(state, 11)
    for iteration in (11, 12):
        state, action = life.update(state, iteration, GOOD_PILOT)
        assert action is Action.NONE and state.phase is Phase.PILOT
    state, action = life.update(state, 13, GOOD_PILOT)
    assert (action, state.phase) == (Action.SWITCH, Phase.SURROGATE)
    (trained,) = state.records
    assert trained.switched and trained.outcome == "switched"
    assert trained.pilot.acceptance == pytest.approx(0.9 * 0.99)
    assert trained.pilot.required == pytest.approx(TEST.min_acceptance_ratio * 0.8)
    assert trained.pilot.second_stage_acceptance == pytest.approx(0.99)


def test_a_failed_pilot_reverts_and_the_next_training_comes_on_schedule():
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(11))
    state, _ = life.trained(state, record(10))
    for iteration in (11, 12, 13):
        state, action = life.update(state, iteration, BAD_PILOT)
    assert (action, state.phase) == (Action.REVERT, Phase.EXACT)
    assert state.records[-1].outcome == "failed its pilot"
    state, actions = run_exact(life, state, range(14, 21))
    assert actions == {20: Action.TRAIN}


def test_a_bad_fit_stays_exact_and_the_last_failure_gives_up():
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(11))
    state, action = life.trained(state, record(10, error=0.9))
    assert (action, state.phase) == (Action.NONE, Phase.EXACT)
    assert state.records[-1].outcome == "validation error too large"
    state, _ = run_exact(life, state, range(11, 31))
    state, action = life.trained(state, TrainingRecord(30, 10))  # too few points
    assert state.records[-1].outcome == "too few points to train"
    assert state.phase is Phase.EXACT_ONLY and not life.collects(state, 31)
    state, action = life.final(state)
    assert action is Action.STAY_EXACT and life.never_switched(state)


def test_nothing_planned_is_exact_only_from_the_start():
    life = Lifecycle(Schedule().plan(tune=100), TEST)
    assert not life.plan.training_iterations
    state = life.init()
    assert state.phase is Phase.EXACT_ONLY
    state, action = life.final(state)
    assert action is Action.STAY_EXACT and not life.never_switched(state)


def test_a_given_surrogate_is_piloted_at_its_iteration_before_any_training():
    life = lifecycle(given_at=10, target_accept=0.7)
    state, action = life.update(life.init(), 10, EXACT)
    assert action is Action.USE_GIVEN
    state, action = life.trained(state, TrainingRecord(10, 0, given=True))
    assert action is Action.START_PILOT
    assert state.records[-1].outcome == "given, pilot pending"


def test_refit_adopts_only_a_passing_fit_and_online_learning_stops_at_it():
    life = lifecycle(refit=50)
    state, _ = run_exact(life, life.init(), range(11))
    state, _ = life.trained(state, record(10))
    state = piloted(life, state, 10)
    for iteration in (11, 12, 13):
        state, _ = life.update(state, iteration, GOOD_PILOT)
    assert life.learns_online(state, 49) and not life.learns_online(state, 50)
    state, action = life.update(state, 50, GOOD_PILOT)
    assert action is Action.REFIT
    _, action = life.trained(state, record(50, refit=True))
    assert action is Action.ADOPT
    state, action = life.trained(state, record(50, error=0.9, refit=True))
    assert action is Action.NONE and state.phase is Phase.SURROGATE
    assert state.records[-1].outcome == "refit not kept"
    state, action = life.final(state)
    assert action is Action.FREEZE and not life.never_switched(state)


def test_an_unfinished_pilot_is_judged_at_the_end_of_tuning():
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(11))
    state, _ = life.trained(state, record(10))
    state = piloted(life, state, 10)
    state, _ = life.update(state, 11, GOOD_PILOT)
    state, action = life.final(state)
    assert action is Action.FREEZE and state.records[-1].switched


def test_a_pilot_with_no_iteration_fails():
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(11))
    state, _ = life.trained(state, record(10))
    state, action = life.final(state)
    assert action is Action.STAY_EXACT and not state.records[-1].switched


def test_the_pilot_compares_with_the_recent_exact_acceptance_only():
    life = lifecycle(start=80, every=10, stop=80)
    state = life.init()
    for iteration in range(80):
        accept = 0.1 if iteration < 80 - RECENT_EXACT_ITERATIONS else 0.9
        state, _ = life.update(state, iteration, EXACT._replace(acceptance_rate=accept))
    assert len(state.recent_exact) == RECENT_EXACT_ITERATIONS
    state, action = life.update(state, 80, EXACT._replace(acceptance_rate=0.9))
    state, _ = life.trained(state, record(80))
    static_pilot = IterationStats(0.5, 7, 0.3)  # static trajectories: no second stage
    for iteration in (81, 82, 83):
        state, action = life.update(state, iteration, static_pilot)
    # 0.5 < 0.6 * 0.9: judged against the last 50 exact iterations, not the first ones.
    assert action is Action.REVERT
    assert state.records[-1].pilot.second_stage_acceptance is None
    assert np.isclose(state.records[-1].pilot.required, 0.6 * 0.9)


# -- the cost gate --------------------------------------------------------------------------

PAYS = judge_cost(exact_iteration=0.05, logp=0.002, remaining=1950)
DOES_NOT_PAY = judge_cost(exact_iteration=3e-4, logp=1e-5, remaining=1950)
NOT_SETTLED = judge_cost(exact_iteration=3e-4, logp=1e-5, remaining=1950, settled=False)


def test_the_cost_gate_is_asked_at_the_first_training_then_keeps_books_after_a_failure():
    life = lifecycle(cost_gate=True)
    state, actions = run_exact(life, life.init(), range(10))
    assert not actions and state.cost is None
    state, action = life.update(state, 10, EXACT)
    assert action is Action.ASSESS_COST and state.phase is Phase.EXACT
    state, action = life.assessed(state, PAYS, 10)
    assert action is Action.TRAIN and state.cost is PAYS and state.phase is Phase.EXACT
    state, action = life.trained(state, record(10, error=0.9))  # a failed fit
    assert action is Action.NONE and state.books_due and life.collects(state, 11)
    state, action = life.update(state, 11, EXACT)
    assert action is Action.ASSESS_COST, "the books are kept the iteration after a failure"
    state, action = life.assessed(state, PAYS, 11)
    assert action is Action.NONE and state.books.worth_another and not state.books_due
    assert state.cost is PAYS, "the gate's first verdict stays"
    state, actions = run_exact(life, state, range(12, 21))
    assert actions == {20: Action.TRAIN}, "the next training comes on schedule, unasked"


def test_a_surrogate_that_cannot_pay_leaves_plain_nuts():
    life = lifecycle(cost_gate=True)
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    assert action is Action.ASSESS_COST
    state, action = life.assessed(state, DOES_NOT_PAY, 10)
    assert (action, state.phase) == (Action.STAY_NUTS, Phase.EXACT_ONLY)
    assert state.cost is DOES_NOT_PAY and not state.records
    assert not life.collects(state, 11) and not life.learns_online(state, 11)
    state, actions = run_exact(life, state, range(11, 100))
    assert not actions, "nothing trains after the gate said no"
    state, action = life.final(state)
    assert action is Action.STAY_EXACT
    assert not life.never_switched(state), "the gate's decision was said when it was taken"


def test_without_the_cost_gate_the_first_training_comes_straight():
    life = lifecycle()
    assert not life.cost_gate
    state, actions = run_exact(life, life.init(), range(11))
    assert actions == {10: Action.TRAIN} and state.cost is None


def test_a_given_surrogate_is_not_gated_nor_the_trainings_after_it():
    life = lifecycle(given_at=5, cost_gate=True)
    state, actions = run_exact(life, life.init(), range(6))
    assert actions == {5: Action.USE_GIVEN}
    state, action = life.trained(state, TrainingRecord(5, 0, given=True))
    for iteration in (6, 7, 8):
        state, action = life.update(state, iteration, BAD_PILOT)
    assert (action, state.phase) == (Action.REVERT, Phase.EXACT)
    state, actions = run_exact(life, state, range(9, 11))
    assert actions == {10: Action.TRAIN} and state.cost is None


def test_an_unsettled_no_waits_for_the_next_training_and_is_final_at_the_last():
    life = lifecycle(cost_gate=True)
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    state, action = life.assessed(state, NOT_SETTLED, 10)
    assert action is Action.NONE and state.phase is Phase.EXACT and state.cost is None
    assert life.collects(state, 11), "the chain keeps collecting while the gate waits"
    state, actions = run_exact(life, state, range(11, 21))
    assert actions == {20: Action.ASSESS_COST}, "asked again at the next training"
    last = max(life.plan.training_iterations)
    state, _ = run_exact(life, state, range(21, last))
    state, action = life.update(state, last, EXACT)
    assert action is Action.ASSESS_COST
    state, action = life.assessed(state, NOT_SETTLED, last)
    assert (action, state.phase) == (Action.STAY_NUTS, Phase.EXACT_ONLY)
    assert state.cost is NOT_SETTLED


@pytest.mark.parametrize(
    ("spread", "tail_gap", "failure"),
    [
        (0.5, 0.1, None),
        (0.5, None, None),  # the tail check turned off
        (None, 0.1, "too few recent draws"),  # a pilot that cannot be judged cannot pass
        (0.05, 0.1, "spreads over 0.05"),
        (0.5, 4.0, "falls 4 nats below its tangent"),
    ],
)
def test_the_exploration_checks_can_fail_a_pilot_before_it_runs(spread, tail_gap, failure):
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    state, action = life.trained(state, record(10))
    assert action is Action.START_PILOT
    state, action = life.explored(state, spread, tail_gap, 10)
    if failure is None:
        assert action is Action.NONE and state.phase is Phase.PILOT
        for iteration in range(11, 11 + TEST.pilot_iterations):
            state, action = life.update(state, iteration, GOOD_PILOT)
        assert action is Action.SWITCH and state.records[-1].pilot.reason == "passed"
    else:
        # Ended at once: not a single pilot iteration is spent on it.
        assert action is Action.REVERT and state.phase is Phase.EXACT
        pilot = state.records[-1].pilot
        assert pilot.iterations == 0 and not pilot.switched and failure in pilot.reason
    pilot = state.records[-1].pilot
    assert (pilot.spread, pilot.tail_gap) == (spread, tail_gap) and state.spread is None


def test_a_pilot_never_explored_cannot_switch():
    """Negative control of the check above: skipping it is not a way to pass."""
    life = lifecycle()
    state, _ = run_exact(life, life.init(), range(11))
    state, _ = life.trained(state, record(10))
    for iteration in range(11, 11 + TEST.pilot_iterations):
        state, action = life.update(state, iteration, GOOD_PILOT)
    assert action is Action.REVERT and "too few recent draws" in state.records[-1].pilot.reason


# -- the cost gate's books on failed trainings ------------------------------------------------

RUN = 2000  # tune=100 (the lifecycle's plan) plus 1900 draws
EXACT_SECONDS, LOGP_SECONDS = 0.02, 0.002  # a plain NUTS run: 40 s; the cap: 10 s


def verdict_at(iteration):
    """What the front-end measures after ``iteration``: the same costs, fewer iterations left."""
    return judge_cost(
        exact_iteration=EXACT_SECONDS, logp=LOGP_SECONDS, remaining=RUN - iteration - 1,
        run_iterations=RUN,
    )  # fmt: skip


def run_failing(life, errors, seconds=3.0):
    """Run the exact phase over tuning; the n-th training has held-out error ``errors[n]``.

    Returns the state and the actions that were not NONE (ASSESS_COST answered at once).
    """
    state, actions, errors = life.init(), {}, iter(errors)
    for iteration in range(100):
        stats = GOOD_PILOT if state.phase is Phase.PILOT else EXACT
        state, action = life.update(state, iteration, stats._replace(seconds=0.001))
        while action is not Action.NONE:
            actions.setdefault(iteration, []).append(action)
            if action is Action.ASSESS_COST:
                state, action = life.assessed(state, verdict_at(iteration), iteration)
            elif action is Action.TRAIN:
                trained = record(iteration, error=next(errors), seconds=seconds)
                state, action = life.trained(state, trained)
            elif action is Action.START_PILOT:
                state, action = life.explored(state, 1.0, 0.1, iteration)
            else:
                break
    return state, actions


def trainings(actions):
    return [iteration for iteration, done in actions.items() if Action.TRAIN in done]


def test_failed_trainings_stop_at_the_cap():
    """3 s per failed fit, held-out error 0.6 (quality 0.83, plenty left to win): after the
    third failure a fourth attempt would go past a quarter of the 40 s plain NUTS run."""
    life = lifecycle(stop=90, cost_gate=True)
    assert len(life.plan.training_iterations) == 9
    state, actions = run_failing(life, errors=[0.6] * 9)
    assert trainings(actions) == [10, 20, 30]
    assert actions[31] == [Action.ASSESS_COST, Action.GIVE_UP]
    assert state.phase is Phase.EXACT_ONLY and not life.collects(state, 32)
    books = state.books
    assert books.spent == pytest.approx(9.0) and books.attempt == pytest.approx(3.0)
    assert books.cap == pytest.approx(0.25 * RUN * EXACT_SECONDS)
    assert books.quality == pytest.approx(0.5 / 0.6)
    assert books.winnable > books.spent + books.attempt > books.cap
    state, action = life.final(state)
    assert action is Action.STAY_EXACT
    assert not life.never_switched(state), "giving up was said when it happened"


def test_a_fit_far_from_passing_stops_after_one_failure():
    """Held-out error 5 against 0.5: a tenth of the saving is left to hope for, 3.4 s."""
    life = lifecycle(stop=90, cost_gate=True)
    state, actions = run_failing(life, errors=[5.0] * 9)
    assert trainings(actions) == [10] and actions[11] == [Action.ASSESS_COST, Action.GIVE_UP]
    books = state.books
    assert books.quality == pytest.approx(0.1)
    # 1988 iterations left, less 9 to the next training and 3 of pilot; 17 ms saved each
    assert books.iterations == 1976
    assert books.winnable == pytest.approx(0.1 * 1976 * (EXACT_SECONDS - LOGP_SECONDS - 1e-3))
    assert books.winnable < books.spent + books.attempt <= books.cap


def test_a_fit_that_passes_after_failures_is_not_stopped():
    life = lifecycle(stop=90, cost_gate=True)
    state, actions = run_failing(life, errors=[0.6, 0.6, 0.4])
    assert trainings(actions) == [10, 20, 30]
    assert Action.SWITCH in actions[33] and state.phase is Phase.SURROGATE
    assert state.books.worth_another and state.records[-1].switched
    assert not any(Action.GIVE_UP in done for done in actions.values())


def test_without_the_cost_gate_failures_are_never_counted():
    """The user asked for a surrogate whatever it costs."""
    life = lifecycle(stop=90)
    state, actions = run_failing(life, errors=[5.0] * 9, seconds=100.0)
    assert trainings(actions) == list(life.plan.training_iterations)
    assert not any(Action.ASSESS_COST in done for done in actions.values())
    assert state.books is None and not state.books_due
    state, _ = life.final(state)
    assert life.never_switched(state)


def test_a_failed_pilot_counts_its_time_beyond_exact_iterations():
    """Training 3 s; pilot start 2.5 s and 3 iterations of 50 ms where exact ones take 20 ms:
    3 + 2.5 + 3 * (0.05 - 0.02) = 5.59 s lost, and as much expected for another attempt:
    past the 10 s cap."""
    life = lifecycle(cost_gate=True)
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    state, action = life.assessed(state, verdict_at(10), 10)
    state, action = life.trained(state, record(10, seconds=3.0))
    assert action is Action.START_PILOT
    state = piloted(life, life.pilot_started(state, 2.5), 10)
    for iteration in (11, 12, 13):
        state, action = life.update(state, iteration, BAD_PILOT._replace(seconds=0.05))
    assert action is Action.REVERT and state.books_due
    assert "second-stage acceptance 0.50" in state.records[-1].pilot.reason
    pilot = state.records[-1].pilot
    assert pilot.seconds == pytest.approx(2.65) and pilot.iterations == 3
    assert state.pilot_start_seconds == 0.0
    state, action = life.update(state, 14, EXACT)
    assert action is Action.ASSESS_COST
    state, action = life.assessed(state, verdict_at(14), 14)
    assert (action, state.phase) == (Action.GIVE_UP, Phase.EXACT_ONLY)
    assert state.books.spent == pytest.approx(5.59) and state.books.quality == 1.0


def test_a_pilot_failing_its_exploration_check_counts_its_start():
    """Training 3 s, the kernel's start and exploration check 1 s; no pilot iteration ran."""
    life = lifecycle(cost_gate=True)
    state, _ = run_exact(life, life.init(), range(10))
    state, action = life.update(state, 10, EXACT)
    state, action = life.assessed(state, verdict_at(10), 10)
    state, action = life.trained(state, record(10, seconds=3.0))
    state = life.pilot_started(state, 1.0)
    state, action = life.explored(state, 0.01, None, 10)
    assert action is Action.REVERT and state.books_due
    assert state.records[-1].pilot.iterations == 0
    state, action = life.update(state, 11, EXACT)
    state, action = life.assessed(state, verdict_at(11), 11)
    assert action is Action.NONE and state.books.spent == pytest.approx(4.0)
    assert state.books.worth_another, "8 s of 10 s: one more attempt"


def test_no_books_after_the_last_training_nor_after_a_given_surrogate():
    life = lifecycle(start=10, every=10, stop=10, cost_gate=True)
    state, actions = run_failing(life, errors=[0.9])
    assert trainings(actions) == [10] and state.phase is Phase.EXACT_ONLY
    assert state.books is None and not state.books_due
    life = lifecycle(given_at=5, cost_gate=True)
    state, _ = run_exact(life, life.init(), range(6))
    state, action = life.trained(state, TrainingRecord(5, 0, given=True))
    for iteration in (6, 7, 8):
        state, action = life.update(state, iteration, BAD_PILOT)
    assert action is Action.REVERT and not state.books_due
