"""What a chain has spent: exact evaluations (counts and seconds) and the time of its iterations."""

from collections import deque
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "MIN_SETTLED_ITERATIONS",
    "MIN_SPEEDUP_PER_DRAW",
    "MIN_TREE_STEPS",
    "RECENT_ITERATIONS",
    "SURROGATE_CALL_SECONDS",
    "SURROGATE_SETUP_SECONDS",
    "CostLedger",
    "CostVerdict",
    "judge_cost",
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

    @property
    def speedup(self) -> float:
        """Exact iteration time over the estimated surrogate iteration time."""
        return self.exact_iteration / self.surrogate_iteration

    @property
    def pays(self) -> bool:
        """Clearly faster per draw, and saving more than its setup costs."""
        return self.speedup >= MIN_SPEEDUP_PER_DRAW and self.saving > SURROGATE_SETUP_SECONDS

    @property
    def decided(self) -> bool:
        """Whether the verdict is final: a surrogate pays, or the costs were settled ones."""
        return self.pays or self.settled


def judge_cost(
    *, exact_iteration: float, logp: float | None, remaining: int, settled: bool = True
) -> CostVerdict:
    """Judge a surrogate from the exact iteration and logp times (seconds).

    ``exact_iteration`` is the median of settled exact iterations, or (``settled=False``) the
    floor of an exact iteration's cost. ``logp=None``: not measured, counted as free, so the
    verdict is the most favourable one (a surrogate that does not pay then never does).
    """
    surrogate_iteration = (logp or 0.0) + SURROGATE_CALL_SECONDS
    saving = remaining * (exact_iteration - surrogate_iteration)
    return CostVerdict(
        exact_iteration, surrogate_iteration, remaining, saving, settled, logp is not None
    )
