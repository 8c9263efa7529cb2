"""The engine's progress bar: iterations of all chains, the phase, and divergences so far."""

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["RunProgress"]


class RunProgress:
    """A progress bar over the iterations every chain makes (tuning and draws).

    Parameters
    ----------
    total
        Iterations per chain, tuning and draws.
    chains
        Chains sampled together.
    enabled
        ``False`` draws nothing.

    Examples
    --------
    >>> with RunProgress(total=100, chains=4, enabled=False) as progress:
    ...     progress.advance(10, "exact", divergences=0)
    >>> progress.completed
    10
    """

    def __init__(self, total: int, chains: int, *, enabled: bool) -> None:
        self.completed = 0
        self._bar = Progress(
            TextColumn("{task.fields[phase]:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"x {chains} chains"),
            TextColumn("Div {task.fields[divergences]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(),
            disable=not enabled,
        )
        self._task = self._bar.add_task("", total=total, phase="exact", divergences=0)

    def __enter__(self) -> "RunProgress":
        self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def advance(self, iterations: int, phase: str, *, divergences: int) -> None:
        """``iterations`` more of every chain, in ``phase``, with ``divergences`` in all so far."""
        self.completed += iterations
        self._bar.update(self._task, advance=iterations, phase=phase, divergences=divergences)

    def show(self, phase: str) -> None:
        """Say what the run is doing between iterations (``training``, ``pilot``)."""
        self._bar.update(self._task, phase=phase)
