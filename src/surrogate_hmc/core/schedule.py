"""When to train the surrogate and when to trust it."""

from dataclasses import dataclass
from typing import NamedTuple

from surrogate_hmc.core.validation import check_int, check_real

__all__ = ["Schedule", "SchedulePlan", "SwitchTest"]


class SchedulePlan(NamedTuple):
    """A :class:`Schedule` resolved for a number of tuning iterations."""

    collect_from: int
    training_iterations: tuple[int, ...]
    refit_iteration: int | None = None


def _given_or(value: int | None, default: int) -> int:
    return default if value is None else value


@dataclass(frozen=True)
class Schedule:
    """Tuning iterations at which exact evaluations are kept and the surrogate is (re)trained.

    Exact evaluations are kept from iteration ``collect_from`` on: the chain's first iterations
    travel from the initial point to the posterior, where the surrogate is never needed, and
    their huge gradients would swamp the training. The network is trained at iteration
    ``start``, then every ``every`` iterations while it has not passed the
    :class:`SwitchTest`, and never after ``stop``. ``None`` derives a value from
    the number of tuning iterations and the kind of surrogate, ``stop = tune // 2`` and:

    - a gradient surrogate: ``start = max(150, tune // 5)`` (after PyMC's first mass-matrix
      window, so the exact phase has settled), ``every = max(50, tune // 10)``,
      ``collect_from = min(50, start // 2)``;
    - a log-density surrogate learns ``dim + 1`` numbers from each evaluation (value and
      gradient), so it trains early and often: ``start = every = max(50, tune // 20)``,
      ``collect_from = min(15, start // 3)``. A failed pilot costs little, and the surrogate
      phase keeps adapting the step size and mass matrix.

    A surrogate in use at iteration ``refit`` is fitted again, on all it has been shown: the
    exact phase's evaluations plus what the surrogate phase learned, the exact log-density of
    every proposal and, with NUTS on the surrogate, the exact gradient where the surrogate was
    off by more than 0.1 nats (regions the exact phase never reached, such as the tails). Its
    default is ``3 * tune // 10`` for a log-density surrogate, none for a gradient surrogate;
    ``refit=0`` turns it off.

    Examples
    --------
    >>> Schedule().plan(tune=1000)
    SchedulePlan(collect_from=50, training_iterations=(200, 300, 400, 500), refit_iteration=None)
    >>> Schedule().plan(tune=1000, surrogate="logp").training_iterations[:3]
    (50, 100, 150)
    >>> Schedule().plan(tune=1000, surrogate="logp").refit_iteration
    300
    >>> Schedule(start=50, every=50, stop=150).plan(tune=1000).training_iterations
    (50, 100, 150)
    """

    collect_from: int | None = None
    start: int | None = None
    every: int | None = None
    stop: int | None = None
    refit: int | None = None

    def __post_init__(self) -> None:
        minimums = {"collect_from": 0, "start": 1, "every": 1, "stop": 1, "refit": 0}
        for name, minimum in minimums.items():
            value = check_int(
                f"Schedule.{name}", getattr(self, name), minimum=minimum, optional=True
            )
            object.__setattr__(self, name, value)
        if self.start is not None and self.stop is not None and self.stop < self.start:
            raise ValueError(f"Schedule.stop ({self.stop}) is before start ({self.start}).")
        if (
            self.collect_from is not None
            and self.start is not None
            and self.collect_from >= self.start
        ):
            raise ValueError(
                f"Schedule.collect_from ({self.collect_from}) must come before "
                f"start ({self.start})."
            )

    def plan(self, tune: int, surrogate: str = "gradient") -> SchedulePlan:
        """Resolve the defaults for ``tune`` iterations (counted from 0 at the first one).

        ``surrogate`` is ``"gradient"`` or ``"logp"``; only ``"logp"`` refits by default.
        """
        if surrogate == "logp":
            start = _given_or(self.start, max(50, tune // 20))
            every = _given_or(self.every, max(50, tune // 20))
            collect_from = _given_or(self.collect_from, min(15, start // 3))
        else:
            start = _given_or(self.start, max(150, tune // 5))
            every = _given_or(self.every, max(50, tune // 10))
            collect_from = _given_or(self.collect_from, min(50, start // 2))
        stop = _given_or(self.stop, tune // 2)
        refit = _given_or(self.refit, 3 * tune // 10 if surrogate == "logp" else 0)
        return SchedulePlan(
            collect_from,
            tuple(range(start, min(stop, tune - 1) + 1, every)),
            refit if 0 < refit < tune else None,
        )


@dataclass(frozen=True)
class SwitchTest:
    """What the surrogate must show before it takes over.

    Parameters
    ----------
    max_validation_error
        Largest held-out error of the network (in standardized units, about ``sqrt(1 - R^2)``);
        ``inf`` lets any network go on to the pilot.
    pilot_iterations
        Surrogate iterations run as a pilot after a training that passed the first test.
    min_acceptance_ratio
        The pilot's mean acceptance (for NUTS on the surrogate: tree acceptance times
        second-stage acceptance) must reach this fraction of the exact phase's recent mean
        acceptance; otherwise the sampler goes back to exact steps and retrains later.
    min_second_stage
        For NUTS on the surrogate, the pilot's mean second-stage acceptance must also reach
        this: the exact correction rejecting more often means a surrogate that is wrong
        somewhere the chain goes, and a chain that sticks there.
    min_spread
        For NUTS on a log-density surrogate: the surrogate alone (no exact correction), run
        from the chain's position as the pilot starts, must spread over at least this share of
        the variance of the exact chain's recent draws in every coordinate
        (:func:`~surrogate_hmc.core.exploration.spread_ratio`). Below it the surrogate would
        confine the chain, or the exact chain has not settled yet; with fewer than 30 recent
        exact draws to compare with the pilot fails too. 0 turns the check off.
    max_tail_gap
        How many nats faster than the exact log-density's tangent the surrogate may fall half a
        posterior scale beyond its training data, in the median over the outermost points
        (:func:`~surrogate_hmc.core.exploration.tail_gap`; a Gaussian posterior gives a fraction
        of a nat). Above it the surrogate puts far too little mass where the exact chain has
        not been yet, as along a curved posterior's arms, where its trajectories would never
        go; the chain stays exact. ``inf`` turns the check off.

    Examples
    --------
    >>> SwitchTest(pilot_iterations=10).min_acceptance_ratio
    0.6
    """

    max_validation_error: float = 0.5
    pilot_iterations: int = 30
    min_acceptance_ratio: float = 0.6
    min_second_stage: float = 0.8
    min_spread: float = 0.1
    max_tail_gap: float = 1.0

    def __post_init__(self) -> None:
        checked = {
            "max_validation_error": check_real(
                "SwitchTest.max_validation_error",
                self.max_validation_error,
                low=0.0,
                open_low=True,
                finite=False,
            ),
            "pilot_iterations": check_int("SwitchTest.pilot_iterations", self.pilot_iterations),
            "max_tail_gap": check_real(
                "SwitchTest.max_tail_gap", self.max_tail_gap, low=0.0, open_low=True, finite=False
            ),
            **{
                name: check_real(f"SwitchTest.{name}", getattr(self, name), low=0.0, high=1.0)
                for name in ("min_acceptance_ratio", "min_second_stage", "min_spread")
            },
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)
