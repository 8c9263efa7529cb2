"""The progress bar's own columns: each chain's phase, divergences, step size, exact gradients."""

from rich.progress import TextColumn
from rich.table import Column

from surrogate_hmc.core.lifecycle import PHASE_NAMES

__all__ = ["PhaseProgressBar"]


class PhaseProgressBar:
    """Adds the columns of ``SurrogateHMC`` and ``ACE`` to PyMC's progress bar.

    PyMC reads ``_progressbar_config`` and ``_make_progressbar_update_functions`` from a step
    method's class; the values come from the stats of each iteration.

    Examples
    --------
    >>> (update,) = PhaseProgressBar._make_progressbar_update_functions()
    >>> update({"phase": 1, "divergences": 0, "step_size": 0.5, "n_exact_grad": 0})["phase"]
    'surrogate'
    """

    @staticmethod
    def _progressbar_config(n_chains=1):
        columns = [
            TextColumn("{task.fields[phase]}", table_column=Column("Phase", ratio=1)),
            TextColumn("{task.fields[divergences]}", table_column=Column("Divergences", ratio=1)),
            TextColumn("{task.fields[step_size]:0.3f}", table_column=Column("Step size", ratio=1)),
            TextColumn("{task.fields[n_exact_grad]}", table_column=Column("Grad evals", ratio=1)),
        ]
        stats = {
            "phase": [PHASE_NAMES[0]] * n_chains,
            "divergences": [0] * n_chains,
            "step_size": [0.0] * n_chains,
            "n_exact_grad": [0] * n_chains,
        }
        return columns, stats

    @staticmethod
    def _make_progressbar_update_functions():
        def update_stats(stats):
            return {
                "phase": PHASE_NAMES[int(stats["phase"])],
                "divergences": stats["divergences"],
                "step_size": stats["step_size"],
                "n_exact_grad": stats["n_exact_grad"],
                "failing": stats["divergences"] > 0,
            }

        return (update_stats,)
