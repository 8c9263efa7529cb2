"""A chain's trainings and cost-gate decision as fixed-size stats, to travel in the trace.

PyMC keeps what a step method reports per iteration (its sample stats) and nothing else, and
with ``cores > 1`` the chains run in other processes. So each iteration reports its chain's
decisions so far. PyMC's default trace keeps scalar stats only, so the records travel packed
into fixed-size bytes: ``training_history`` holds a row of :data:`RECORD_FIELDS` per training
(float32, the latest :data:`MAX_RECORDS`) and ``cost_gate`` the :data:`GATE_FIELDS` (float64);
``n_trainings`` and ``gate_decision`` are plain numbers to read at a glance.
:func:`decode_history` turns the last draw's stats back into the lifecycle's records.
"""

import enum
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from surrogate_hmc.core.cost_ledger import CostVerdict, FailureBooks
from surrogate_hmc.core.lifecycle import LifecycleState, PilotRecord, TrainingRecord

__all__ = [
    "GATE_FIELDS",
    "GATE_WORDS",
    "HISTORY_STATS",
    "MAX_RECORDS",
    "RECORD_FIELDS",
    "ChainHistory",
    "GateDecision",
    "decode_history",
    "encode_history",
    "encode_records",
]

MAX_RECORDS = 12
"""Trainings a trace keeps per chain, the latest (the default schedules train at most 11)."""
RECORD_FIELDS = (
    "iteration", "n_points", "validation_error", "max_validation_error", "seconds", "given",
    "refit", "piloted", "acceptance", "required", "second_stage_acceptance", "switched",
    "spread", "tail_gap", "min_spread", "max_tail_gap", "pilot_seconds", "pilot_iterations",
)  # fmt: skip
"""The columns of the ``training_history`` stat (``nan``: ``None``, or no pilot)."""
GATE_FIELDS = (
    "decision", "exact_iteration", "surrogate_iteration", "remaining", "saving", "settled",
    "logp_measured", "run_iterations", "spent", "attempt", "iterations", "books_saving",
    "quality", "cap",
)  # fmt: skip
"""The entries of the ``cost_gate`` stat: the :class:`GateDecision`, the gate's
:class:`~surrogate_hmc.core.cost_ledger.CostVerdict` (seconds) and its books on failures
(:class:`~surrogate_hmc.core.cost_ledger.FailureBooks`; ``nan`` until a failure was counted)."""
RECORD_DTYPE, GATE_DTYPE = np.dtype("<f4"), np.dtype("<f8")
RECORD_BYTES = MAX_RECORDS * len(RECORD_FIELDS) * RECORD_DTYPE.itemsize
GATE_BYTES = len(GATE_FIELDS) * GATE_DTYPE.itemsize
HISTORY_STATS: dict[str, tuple[Any, list[int]]] = {
    "n_trainings": (np.int64, []),
    "gate_decision": (np.int64, []),
    "training_history": (np.dtype(f"S{RECORD_BYTES}"), []),
    "cost_gate": (np.dtype(f"S{GATE_BYTES}"), []),
}
"""The sample stats that carry a chain's decisions (PyMC's ``stats_dtypes_shapes``)."""


def _unpack(raw: bytes, dtype: np.dtype, size: int) -> np.ndarray:
    # NumPy's fixed-size bytes drop trailing zero bytes: put them back.
    return np.frombuffer(bytes(raw).ljust(size, b"\0"), dtype=dtype).astype(float)


class GateDecision(enum.IntEnum):
    """What the cost gate decided for a chain (the ``cost_gate`` stat's first entry)."""

    NOT_ASKED = 0
    """No verdict (yet): ``cost_gate=False``, a given surrogate, or before the first training."""
    LEARN = 1
    """A surrogate can pay off: the chain trains one."""
    STAY_NUTS = 2
    """A surrogate cannot pay off in this run: the chain stays plain NUTS."""
    GAVE_UP = 3
    """Failed trainings and pilots cost more than another attempt could win back."""


GATE_WORDS = {
    GateDecision.NOT_ASKED: "the cost gate was not asked",
    GateDecision.LEARN: "the cost gate let it learn a surrogate",
    GateDecision.STAY_NUTS: "the cost gate kept it plain NUTS",
    GateDecision.GAVE_UP: "the cost gate stopped its trainings after failures",
}
"""The cost gate's decisions in words."""


class ChainHistory(NamedTuple):
    """One chain's decisions, as read back from its trace.

    Examples
    --------
    >>> from surrogate_hmc.core.lifecycle import Phase
    >>> record = TrainingRecord(50, n_points=400, validation_error=0.1, max_validation_error=0.5)
    >>> state = LifecycleState(Phase.EXACT, records=(record,))
    >>> history = decode_history(encode_history(state))
    >>> history.decision, history.records[0].n_points, history.records[0].outcome
    (<GateDecision.NOT_ASKED: 0>, 400, 'pilot pending')
    """

    records: tuple[TrainingRecord, ...]
    """Its trainings, oldest first (the latest :data:`MAX_RECORDS` of ``n_trainings``)."""
    n_trainings: int
    decision: GateDecision
    cost: CostVerdict | None
    """The gate's verdict (``None``: it was not asked)."""
    books: FailureBooks | None
    """The gate's books on failed trainings and pilots (``None``: none were kept)."""

    @property
    def switched_at(self) -> int | None:
        """Tuning iteration after which the training the chain switched to ran (``None``)."""
        return next((r.iteration for r in self.records if r.switched), None)

    def describe(self) -> str:
        """The gate's decision and each training, a line each.

        Examples
        --------
        >>> from surrogate_hmc.core.cost_ledger import judge_cost
        >>> cost = judge_cost(exact_iteration=0.0004, logp=0.00002, remaining=1950)
        >>> print(ChainHistory((), 0, GateDecision.STAY_NUTS, cost, None).describe())
        the cost gate kept it plain NUTS
          exact iteration 0.40 ms, surrogate iteration about 1.02 ms: 0.4x
        """
        lines = [GATE_WORDS[self.decision]]
        if self.cost is not None:
            cost = self.cost
            lines.append(
                f"  exact iteration {1e3 * cost.exact_iteration:.2f} ms, surrogate iteration "
                f"about {1e3 * cost.surrogate_iteration:.2f} ms: {cost.speedup:.1f}x"
            )
        if self.books is not None and self.decision is GateDecision.GAVE_UP:
            books = self.books
            lines.append(
                f"  failures cost {books.spent:.1f} s; another attempt {books.attempt:.1f} s "
                f"against {books.winnable:.1f} s still winnable (cap {books.cap:.1f} s)"
            )
        if self.n_trainings > len(self.records):
            lines.append(f"  ({self.n_trainings - len(self.records)} earlier training(s) not kept)")
        for record in self.records:
            error = "-" if record.validation_error is None else f"{record.validation_error:.3g}"
            if record.given:
                line = f"given surrogate, piloted after iteration {record.iteration}: "
            else:
                what = "refit" if record.refit else "training"
                line = (
                    f"{what} after iteration {record.iteration}: {record.n_points} rows, "
                    f"held-out error {error}, "
                )
            line += record.outcome.removeprefix("given, ")
            if record.pilot is not None and not record.switched:
                line += f" ({record.pilot.reason})"
            lines.append(line)
        return "\n".join(lines)


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def gate_decision(cost: CostVerdict | None, books: FailureBooks | None) -> GateDecision:
    """The gate's decision from its verdict and books."""
    if books is not None and not books.worth_another:
        return GateDecision.GAVE_UP
    if cost is None:
        return GateDecision.NOT_ASKED
    return GateDecision.LEARN if cost.pays else GateDecision.STAY_NUTS


def _record_row(record: TrainingRecord) -> list[float]:
    pilot = record.pilot
    pilot_values: list[float | None] = [np.nan] * 10
    if pilot is not None:
        pilot_values = [
            pilot.acceptance, pilot.required, pilot.second_stage_acceptance, pilot.switched,
            pilot.spread, pilot.tail_gap, pilot.min_spread, pilot.max_tail_gap, pilot.seconds,
            pilot.iterations,
        ]  # fmt: skip
    values = [
        record.iteration, record.n_points, record.validation_error, record.max_validation_error,
        record.seconds, record.given, record.refit, pilot is not None, *pilot_values,
    ]  # fmt: skip
    return [_number(v) for v in values]


def encode_history(state: LifecycleState) -> dict[str, Any]:
    """The :data:`HISTORY_STATS` of a chain's lifecycle state."""
    return encode_records(state.records, state.cost, state.books)


def encode_records(
    all_records: Sequence[TrainingRecord],
    cost: CostVerdict | None,
    books: FailureBooks | None = None,
) -> dict[str, Any]:
    """The :data:`HISTORY_STATS` of trainings and a cost verdict (the last ``MAX_RECORDS``)."""
    records = all_records[-MAX_RECORDS:]
    history = np.full((MAX_RECORDS, len(RECORD_FIELDS)), np.nan, dtype=RECORD_DTYPE)
    if records:
        history[: len(records)] = [_record_row(r) for r in records]
    decision = gate_decision(cost, books)
    gate = np.full(len(GATE_FIELDS), np.nan, dtype=GATE_DTYPE)
    gate[0] = decision
    if cost is not None:
        gate[1:8] = [
            cost.exact_iteration, cost.surrogate_iteration, cost.remaining, cost.saving,
            cost.settled, cost.logp_measured, _number(cost.run_iterations),
        ]  # fmt: skip
    if books is not None:
        gate[8:] = [
            books.spent, books.attempt, books.iterations, books.saving, books.quality, books.cap,
        ]  # fmt: skip
    return {
        "n_trainings": len(all_records),
        "gate_decision": int(decision),
        "training_history": history.tobytes(),
        "cost_gate": gate.tobytes(),
    }


def _decode_record(row: np.ndarray) -> TrainingRecord:
    field = dict(zip(RECORD_FIELDS, row.astype(float).tolist(), strict=True))
    pilot = None
    if field["piloted"] == 1.0:
        pilot = PilotRecord(
            acceptance=field["acceptance"],
            required=field["required"],
            second_stage_acceptance=_optional(field["second_stage_acceptance"]),
            switched=field["switched"] == 1.0,
            spread=_optional(field["spread"]),
            tail_gap=_optional(field["tail_gap"]),
            min_spread=field["min_spread"],
            max_tail_gap=field["max_tail_gap"],
            seconds=field["pilot_seconds"],
            iterations=int(field["pilot_iterations"]),
        )
    return TrainingRecord(
        iteration=int(field["iteration"]),
        n_points=int(field["n_points"]),
        validation_error=_optional(field["validation_error"]),
        max_validation_error=field["max_validation_error"],
        seconds=field["seconds"],
        given=field["given"] == 1.0,
        refit=field["refit"] == 1.0,
        pilot=pilot,
    )


def decode_history(stats: Mapping[str, Any]) -> ChainHistory:
    """A chain's :class:`ChainHistory` from one iteration's :data:`HISTORY_STATS`.

    Loss curves do not travel in the trace: the records read back have none.
    """
    n_trainings = int(stats["n_trainings"])
    history = _unpack(stats["training_history"], RECORD_DTYPE, RECORD_BYTES)
    history = history.reshape(MAX_RECORDS, len(RECORD_FIELDS))
    records = tuple(_decode_record(row) for row in history[: min(n_trainings, MAX_RECORDS)])
    gate = _unpack(stats["cost_gate"], GATE_DTYPE, GATE_BYTES)
    cost = books = None
    if not np.isnan(gate[1]):
        cost = CostVerdict(
            exact_iteration=gate[1], surrogate_iteration=gate[2], remaining=int(gate[3]),
            saving=gate[4], settled=gate[5] == 1.0, logp_measured=gate[6] == 1.0,
            run_iterations=None if np.isnan(gate[7]) else int(gate[7]),
        )  # fmt: skip
    if not np.isnan(gate[8]):
        books = FailureBooks(
            spent=gate[8], attempt=gate[9], iterations=int(gate[10]), saving=gate[11],
            quality=gate[12], cap=gate[13],
        )  # fmt: skip
    return ChainHistory(records, n_trainings, GateDecision(int(gate[0])), cost, books)
