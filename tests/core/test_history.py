"""A chain's decisions survive the trip through fixed-size sample stats."""

from dataclasses import replace

import numpy as np
import pytest

from surrogate_hmc.core.cost_ledger import judge_cost, keep_books
from surrogate_hmc.core.history import (
    HISTORY_STATS,
    MAX_RECORDS,
    GateDecision,
    decode_history,
    encode_history,
)
from surrogate_hmc.core.lifecycle import LifecycleState, Phase, PilotRecord, TrainingRecord

VERDICT = judge_cost(exact_iteration=0.02, logp=0.002, remaining=1500, run_iterations=2000)


def trainings() -> tuple[TrainingRecord, ...]:
    failed_pilot = PilotRecord(
        0.41, 0.6, 0.52, switched=False, spread=0.9, tail_gap=None, seconds=1.5, iterations=30
    )
    refused = PilotRecord(0.0, 0.0, None, switched=False, spread=0.8, tail_gap=2.7)
    passed = PilotRecord(0.8, 0.6, 0.97, switched=True, spread=1.1, tail_gap=0.3, iterations=30)
    return (
        TrainingRecord(50, n_points=12),  # too few points: no validation error
        TrainingRecord(100, 800, 0.71, 0.5, seconds=2.0),
        TrainingRecord(150, 1200, 0.3, 0.5, seconds=2.5, pilot=failed_pilot),
        TrainingRecord(200, 1600, 0.25, 0.5, seconds=2.5, pilot=refused),
        TrainingRecord(250, 2000, 0.2, 0.5, seconds=3.0, pilot=passed),
        TrainingRecord(300, 2500, 0.15, 0.5, seconds=1.0, refit=True),
    )


def kept(record: TrainingRecord) -> tuple:
    """What the trace keeps of a record: its numbers as float32, no loss curves."""

    def rounded(value):
        return None if value is None else float(np.float32(value))

    pilot = record.pilot
    if pilot is not None:
        pilot = replace(
            pilot,
            **{
                name: rounded(getattr(pilot, name))
                for name in ("acceptance", "required", "second_stage_acceptance", "spread",
                             "tail_gap", "min_spread", "max_tail_gap", "seconds")
            },
        )  # fmt: skip
    return (
        record.iteration, record.n_points, rounded(record.validation_error),
        rounded(record.max_validation_error), rounded(record.seconds), record.given,
        record.refit, pilot,
    )  # fmt: skip


def test_records_and_gate_come_back_as_they_were():
    books = keep_books(VERDICT, spent=6.0, attempt=2.5, quality=0.7, wait=80)
    state = LifecycleState(Phase.SURROGATE, records=trainings(), cost=VERDICT, books=books)
    stats = encode_history(state)
    for name, (dtype, shape) in HISTORY_STATS.items():
        # As PyMC's trace keeps them: one scalar of the declared dtype per draw.
        column = np.zeros(3, dtype=dtype)
        column[1] = stats[name]
        stats[name] = column[1]
        assert shape == []
    back = decode_history(stats)
    assert [kept(r) for r in back.records] == [kept(r) for r in trainings()]
    assert [r.outcome for r in back.records] == [r.outcome for r in trainings()]
    assert [r.pilot.reason for r in back.records if r.pilot] == [
        r.pilot.reason for r in trainings() if r.pilot
    ]
    assert back.cost == VERDICT and back.books == books
    assert back.decision is GateDecision.LEARN and books.worth_another
    assert back.switched_at == 250
    text = back.describe()
    assert "the cost gate let it learn a surrogate" in text
    assert "training after iteration 200: 1600 rows, held-out error 0.25, failed its pilot" in text
    assert "nats below its tangent" in text


@pytest.mark.parametrize(
    ("cost", "spent", "decision"),
    [
        (None, None, GateDecision.NOT_ASKED),
        (judge_cost(exact_iteration=0.0003, logp=1e-5, remaining=1950), None,
         GateDecision.STAY_NUTS),
        (VERDICT, None, GateDecision.LEARN),
        (VERDICT, 40.0, GateDecision.GAVE_UP),
    ],
)  # fmt: skip
def test_each_gate_decision_is_read_back(cost, spent, decision):
    books = None if spent is None else keep_books(cost, spent=spent, attempt=3, quality=1, wait=50)
    state = LifecycleState(Phase.EXACT_ONLY, cost=cost, books=books)
    back = decode_history(encode_history(state))
    assert back.decision is decision
    assert back.cost == cost and back.books == books
    assert back.records == () and back.switched_at is None


def test_a_long_history_keeps_its_latest_trainings_and_says_so():
    records = tuple(TrainingRecord(10 * i, 100 + i, 0.9, 0.5) for i in range(MAX_RECORDS + 3))
    back = decode_history(encode_history(LifecycleState(Phase.EXACT, records=records)))
    assert back.n_trainings == MAX_RECORDS + 3
    assert [r.iteration for r in back.records] == [r.iteration for r in records[3:]]
    assert "(3 earlier training(s) not kept)" in back.describe()


def test_a_given_surrogate_reads_as_given():
    pilot = PilotRecord(0.9, 0.6, 0.99, switched=True, spread=1.0, iterations=30)
    state = LifecycleState(
        Phase.SURROGATE, records=(TrainingRecord(50, 0, given=True, pilot=pilot),)
    )
    (record,) = decode_history(encode_history(state)).records
    assert record.given and record.switched and record.outcome == "given, switched"
    text = decode_history(encode_history(state)).describe()
    assert "given surrogate, piloted after iteration 50: " in text and "rows" not in text
