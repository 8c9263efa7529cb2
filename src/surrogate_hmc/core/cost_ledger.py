"""What a chain has spent: exact evaluations (counts and seconds) and the time of its iterations."""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MAX_FAILURE_SHARE",
    "MIN_SETTLED_ITERATIONS",
    "MIN_SPEEDUP_PER_DRAW",
    "MIN_TREE_STEPS",
    "RECENT_ITERATIONS",
    "SURROGATE_CALL_SECONDS",
    "SURROGATE_SETUP_SECONDS",
    "CostLedger",
    "CostVerdict",
    "FailureBooks",
    "fit_quality",
    "judge_cost",
    "keep_books",
]

RECENT_ITERATIONS = 50
"""Iterations per phase whose wall time is remembered to compare the phases' costs."""


def _recent() -> deque[float]:
    return deque(maxlen=RECENT_ITERATIONS)


@dataclass
class CostLedger:
    """One chain's costs, kept by the one place that evaluates the exact model.

    ``n_grad``/``grad_seconds`` count exact log-density-and-gradient evaluations, ``n_logp``/
    ``logp_seconds`` exact log-density-only ones. :meth:`start_iteration` and
    :meth:`iteration_counts` give the evaluations of one iteration (the ``n_exact_grad`` and
    ``n_exact_logp`` sample stats).

    Examples
    --------
    >>> ledger = CostLedger()
    >>> ledger.start_iteration()
    >>> ledger.add_grad(0.002)
    >>> ledger.add_logp(0.001)
    >>> ledger.iteration_counts()
    (1, 1)
    >>> ledger.end_iteration(phase_code=0, seconds=0.02)
    >>> ledger.end_iteration(phase_code=1, seconds=0.004)
    >>> round(ledger.speedup_per_iteration(), 6)
    5.0
    """

    n_grad: int = 0
    n_logp: int = 0
    grad_seconds: float = 0.0
    logp_seconds: float = 0.0
    _iteration_start: tuple[int, int] = (0, 0)
    _seconds_by_phase: dict[int, deque[float]] = field(
        default_factory=lambda: {0: _recent(), 1: _recent()}
    )

    def add_grad(self, seconds: float) -> None:
        """Count one exact log-density-and-gradient evaluation."""
        self.n_grad += 1
        self.grad_seconds += seconds

    def add_logp(self, seconds: float) -> None:
        """Count one exact log-density evaluation."""
        self.n_logp += 1
        self.logp_seconds += seconds

    def start_iteration(self) -> None:
        """Mark the start of an iteration, for :meth:`iteration_counts`."""
        self._iteration_start = (self.n_grad, self.n_logp)

    def iteration_counts(self) -> tuple[int, int]:
        """Exact ``(logp and gradient, logp only)`` evaluations since :meth:`start_iteration`."""
        grads, logps = self._iteration_start
        return self.n_grad - grads, self.n_logp - logps

    def end_iteration(self, phase_code: int, seconds: float) -> None:
        """Remember a tuning iteration's wall time under its phase (0 exact, 1 surrogate)."""
        self._seconds_by_phase[phase_code].append(seconds)

    def forget_iterations(self, phase_code: int) -> None:
        """Forget a phase's recent iteration times (they no longer describe its cost)."""
        self._seconds_by_phase[phase_code].clear()

    def recent_iterations(self, phase_code: int) -> int:
        """How many recent iteration times of a phase are remembered."""
        return len(self._seconds_by_phase[phase_code])

    def median_iteration_seconds(self, phase_code: int) -> float:
        """Median wall time of the recent iterations of a phase (``nan`` if none)."""
        recent = self._seconds_by_phase[phase_code]
        return float(np.median(recent)) if recent else float("nan")

    def speedup_per_iteration(self) -> float:
        """Exact iteration time over surrogate iteration time (``nan`` until both were seen)."""
        return self.median_iteration_seconds(0) / self.median_iteration_seconds(1)

    def milliseconds_per_grad(self) -> float:
        """Mean wall time of one exact log-density-and-gradient evaluation."""
        return 1e3 * self.grad_seconds / max(self.n_grad, 1)

    def milliseconds_per_logp(self) -> float:
        """Mean wall time of one exact log-density evaluation."""
        return 1e3 * self.logp_seconds / max(self.n_logp, 1)


SURROGATE_CALL_SECONDS = 1e-3
"""A surrogate iteration's own cost besides the exact logp: one compiled NUTS call (about 0.4 to
1 ms on the benchmark machine for networks of the default size, two transitions)."""
SURROGATE_SETUP_SECONDS = 4.0
"""What a chain spends before a surrogate can pay back: its trainings, compilations and pilot
(2 to 4 s per chain on the benchmark machine)."""
MIN_SPEEDUP_PER_DRAW = 2.0
"""A surrogate iteration must be at least this many times cheaper than an exact one."""
MIN_SETTLED_ITERATIONS = 20
"""Exact iterations under NUTS's adapted metric before their median is taken as its cost."""
MIN_TREE_STEPS = 3
"""Leapfrog steps of the cheapest NUTS iteration worth counting on (a tree of depth 2): before
the exact phase has settled, its iteration is costed at this many logp-and-gradient evaluations,
a floor, since early trees are deeper than settled ones."""


@dataclass(frozen=True)
class CostVerdict:
    """Whether a surrogate can pay off in the iterations a chain has left, and the numbers why.

    A verdict on a chain that has not settled (``settled=False``) costs the exact iteration at
    its floor: it can say that a surrogate pays, but not that it does not (:attr:`decided`).

    Examples
    --------
    >>> verdict = judge_cost(exact_iteration=0.0003, logp=0.00001, remaining=1950)
    >>> verdict.pays, round(verdict.speedup, 2), verdict.decided
    (False, 0.3, True)
    >>> judge_cost(exact_iteration=0.05, logp=0.002, remaining=1950).pays
    True
    >>> judge_cost(exact_iteration=0.0003, logp=0.00001, remaining=1950, settled=False).decided
    False
    """

    exact_iteration: float
    """Median wall time of a recent exact NUTS iteration (s)."""
    surrogate_iteration: float
    """Estimated wall time of a surrogate iteration: one exact logp and one compiled call (s)."""
    remaining: int
    """Iterations left in this chain (tuning and draws)."""
    saving: float
    """Seconds a surrogate would save over them, before its setup."""
    settled: bool = True
    """Whether ``exact_iteration`` was measured on the settled exact phase (else: its floor)."""
    logp_measured: bool = True
    """Whether ``surrogate_iteration`` includes a measured exact logp (else: it is a floor)."""
    run_iterations: int | None = None
    """Iterations of the whole chain, tuning and draws (``None``: ``remaining``)."""

    @property
    def plain_run_seconds(self) -> float:
        """What the whole chain would take as plain NUTS, at ``exact_iteration`` each."""
        iterations = self.remaining if self.run_iterations is None else self.run_iterations
        return iterations * self.exact_iteration

    @property
    def speedup(self) -> float:
        """Exact iteration time over the estimated surrogate iteration time."""
        return self.exact_iteration / self.surrogate_iteration

    @property
    def setup_at_risk(self) -> bool:
        """Whether a failed first attempt (its setup) would cost more than failures may.

        Failures may cost :data:`MAX_FAILURE_SHARE` of a plain NUTS run; a run so short that
        one training and pilot take more is not worth the risk.
        """
        return SURROGATE_SETUP_SECONDS > MAX_FAILURE_SHARE * self.plain_run_seconds

    @property
    def pays(self) -> bool:
        """Clearly faster per draw, saving more than its setup costs, and a failure affordable."""
        return (
            self.speedup >= MIN_SPEEDUP_PER_DRAW
            and self.saving > SURROGATE_SETUP_SECONDS
            and not self.setup_at_risk
        )

    @property
    def decided(self) -> bool:
        """Whether the verdict is final: a surrogate pays, or the costs were settled ones."""
        return self.pays or self.settled


def judge_cost(
    *,
    exact_iteration: float,
    logp: float | None,
    remaining: int,
    settled: bool = True,
    run_iterations: int | None = None,
) -> CostVerdict:
    """Judge a surrogate from the exact iteration and logp times (seconds).

    ``exact_iteration`` is the median of settled exact iterations, or (``settled=False``) the
    floor of an exact iteration's cost. ``logp=None``: not measured, counted as free, so the
    verdict is the most favourable one (a surrogate that does not pay then never does).
    ``run_iterations`` (tuning and draws) prices a plain NUTS run for :func:`keep_books`.
    """
    surrogate_iteration = (logp or 0.0) + SURROGATE_CALL_SECONDS
    saving = remaining * (exact_iteration - surrogate_iteration)
    return CostVerdict(
        exact_iteration, surrogate_iteration, remaining, saving, settled, logp is not None,
        run_iterations,
    )  # fmt: skip


MAX_FAILURE_SHARE = 0.25
"""Failed trainings and pilots may cost at most this share of a plain NUTS run, so that a run
whose surrogate never passes costs at most about 1.3 times plain NUTS. The first attempt is
held to it too: the gate lets a surrogate train only if one failed attempt
(:data:`SURROGATE_SETUP_SECONDS`) fits in this share."""


def fit_quality(validation_error: float | None, max_validation_error: float) -> float:
    """The share of a surrogate's saving that a failed fit still lets one hope for.

    ``min(1, max_validation_error / validation_error)``: 1 for a fit that passed (its pilot
    failed) or that nothing judged (``None``: too few points), about 0.7 for a held-out error of
    0.7 against 0.5, near 0 for one far above the threshold; 0 for a non-finite error.

    Examples
    --------
    >>> fit_quality(0.7, 0.5), fit_quality(0.3, 0.5), fit_quality(None, 0.5)
    (0.7142857142857143, 1.0, 1.0)
    """
    if validation_error is None or validation_error <= max_validation_error:
        return 1.0
    if not np.isfinite(validation_error):
        return 0.0
    return max_validation_error / validation_error


@dataclass(frozen=True)
class FailureBooks:
    """What a chain's failed trainings and pilots cost, against what a surrogate could still win.

    Another attempt is worth it while the seconds lost to failures plus its own expected cost
    stay below what a surrogate could still win, and below the cap
    (:data:`MAX_FAILURE_SHARE` of a plain NUTS run):
    ``spent + attempt < quality * iterations * saving`` and ``spent + attempt <= cap``.

    Examples
    --------
    >>> verdict = judge_cost(
    ...     exact_iteration=0.02, logp=0.002, remaining=1000, run_iterations=2000
    ... )
    >>> books = keep_books(verdict, spent=3.0, attempt=3.0, quality=0.7, wait=80)
    >>> round(books.winnable, 2), books.cap, books.worth_another
    (10.95, 10.0, True)
    >>> keep_books(verdict, spent=6.0, attempt=4.5, quality=0.7, wait=80).worth_another
    False
    """

    spent: float
    """Seconds lost to the failed trainings and pilots so far."""
    attempt: float
    """Expected seconds of another attempt: what the last failed one cost."""
    iterations: int
    """Iterations a surrogate would still run if the next attempt passed."""
    saving: float
    """Seconds a surrogate iteration saves over an exact one."""
    quality: float
    """The share of the saving the last fit still allows (:func:`fit_quality`)."""
    cap: float
    """The most failures may cost: :data:`MAX_FAILURE_SHARE` of a plain NUTS run (s)."""

    @property
    def winnable(self) -> float:
        """Seconds a surrogate could still win, scaled by the last fit's quality."""
        return self.quality * self.iterations * max(self.saving, 0.0)

    @property
    def worth_another(self) -> bool:
        """Whether another attempt can still be won back, within the cap."""
        cost = self.spent + self.attempt
        return cost < self.winnable and cost <= self.cap


def keep_books(
    verdict: CostVerdict, *, spent: float, attempt: float, quality: float, wait: int
) -> FailureBooks:
    """The books after a failure, on a fresh cost verdict (seconds; see :class:`FailureBooks`).

    ``wait`` is the iterations before a surrogate could take over: to the next training, then
    its pilot. A surrogate would run the ``verdict.remaining - wait`` iterations after them.
    """
    return FailureBooks(
        spent=spent,
        attempt=attempt,
        iterations=max(verdict.remaining - wait, 0),
        saving=verdict.exact_iteration - verdict.surrogate_iteration,
        quality=quality,
        cap=MAX_FAILURE_SHARE * verdict.plain_run_seconds,
    )
