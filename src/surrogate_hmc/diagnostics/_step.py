"""What the figure reads from the step that sampled the trace, found by duck typing."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from surrogate_hmc.core.lifecycle import TrainingRecord

__all__ = ["StepView", "read_step"]


@dataclass(frozen=True)
class StepView:
    """The trainings of the step's last chain and, for ``ACE``, its cost estimator.

    Examples
    --------
    >>> view = read_step(None)
    >>> view.given, view.history, view.is_ace
    (False, (), False)
    """

    given: bool
    """Whether a step was passed at all."""
    history: tuple[TrainingRecord, ...] = ()
    estimator: Any = None
    """The ``CostEstimator`` of an ``ACE`` step (``None`` for ``SurrogateHMC``)."""

    @property
    def is_ace(self) -> bool:
        """Whether the step is an ``ACE`` step, which has no exact model."""
        return self.estimator is not None


def read_step(step: Any) -> StepView:
    """Read a ``SurrogateHMC`` or ``ACE`` step: anything with a ``training_history``.

    A step with an ``estimator`` attribute is taken for ``ACE``.

    Raises
    ------
    TypeError
        If ``step`` has no ``training_history`` of ``TrainingRecord``.

    Examples
    --------
    >>> class Step:
    ...     training_history = (TrainingRecord(iteration=50, n_points=10),)
    >>> read_step(Step()).history[0].outcome
    'too few points to train'
    >>> read_step(object())
    Traceback (most recent call last):
    ...
    TypeError: step must be the shmc.SurrogateHMC or shmc.ACE that sampled the trace, got object.
    """
    if step is None:
        return StepView(given=False)
    history = getattr(step, "training_history", None)
    if not isinstance(history, Sequence) or isinstance(history, str):
        raise TypeError(
            "step must be the shmc.SurrogateHMC or shmc.ACE that sampled the trace, got "
            f"{type(step).__name__}."
        )
    strangers = sorted({type(r).__name__ for r in history if not isinstance(r, TrainingRecord)})
    if strangers:
        raise TypeError(
            f"step.training_history must hold TrainingRecord objects, got {', '.join(strangers)}: "
            "pass the shmc.SurrogateHMC or shmc.ACE that sampled the trace."
        )
    return StepView(given=True, history=tuple(history), estimator=getattr(step, "estimator", None))
