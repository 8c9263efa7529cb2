"""The progress bar's own columns: each chain's phase, divergences, step size, exact gradients.

PyMC's bar shares the terminal's width among its columns by ratio (PyMC 6) or shrinks the widest
ones when the terminal is too narrow (PyMC 5), and cuts whatever then does not fit with "…".
Ours have short headers and values, a fixed minimum width and no share of the rest, and are
never wrapped: on an 80-column terminal they stay whole, and leave PyMC's own columns as much
room as they can.
"""

from rich.progress import TextColumn
from rich.table import Column

__all__ = ["PHASE_LABELS", "PhaseProgressBar"]

PHASE_LABELS = {0: "exact", 1: "surr"}
"""What the progress bar shows for each value of the ``phase`` sample stat (1: the surrogate)."""

# (field, header, format, minimum width: the longest header or value expected)
_COLUMNS = (
    ("phase", "Phase", "", 5),
    ("divergences", "Div", "", 3),
    ("step_size", "Step", ":.3g", 5),
    ("n_exact_grad", "Grads", "", 5),
)


class PhaseProgressBar:
    """Adds the columns of ``SurrogateHMC`` and ``ACE`` to PyMC's progress bar.

    PyMC reads ``_progressbar_config`` and ``_make_progressbar_update_functions`` from a step
    method's class; the values come from the stats of each iteration. The columns: ``Phase``
    (``exact`` or ``surr``, the surrogate), ``Div`` (divergences so far), ``Step`` (step size)
    and ``Grads`` (exact gradient evaluations in the last iteration).

    Examples
    --------
    >>> (update,) = PhaseProgressBar._make_progressbar_update_functions()
    >>> update({"phase": 1, "divergences": 0, "step_size": 0.5, "n_exact_grad": 0})["phase"]
    'surr'
    >>> columns, _ = PhaseProgressBar._progressbar_config()
    >>> [column.get_table_column().header for column in columns]
    ['Phase', 'Div', 'Step', 'Grads']
    """

    @staticmethod
    def _progressbar_config(n_chains=1):
        columns = [
            TextColumn(
                f"{{task.fields[{field}]{spec}}}",
                table_column=Column(header, no_wrap=True, min_width=width),
            )
            for field, header, spec, width in _COLUMNS
        ]
        stats = {
            "phase": [PHASE_LABELS[0]] * n_chains,
            "divergences": [0] * n_chains,
            "step_size": [0.0] * n_chains,
            "n_exact_grad": [0] * n_chains,
        }
        return columns, stats

    @staticmethod
    def _make_progressbar_update_functions():
        def update_stats(stats):
            return {
                "phase": PHASE_LABELS[int(stats["phase"])],
                "divergences": stats["divergences"],
                "step_size": stats["step_size"],
                "n_exact_grad": stats["n_exact_grad"],
                "failing": stats["divergences"] > 0,
            }

        return (update_stats,)
