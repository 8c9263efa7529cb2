"""Colours, titles, notes and legends shared by the panels."""

from typing import TYPE_CHECKING, Any

import numpy as np

from surrogate_hmc.core.lifecycle import PHASE_NAMES
from surrogate_hmc.diagnostics._trace import TraceStats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "GRAD_COLOR",
    "LOGP_COLOR",
    "OUTCOME_MARKERS",
    "PHASE_COLORS",
    "finite_or_nan",
    "iteration_label",
    "legend",
    "mark_tuning",
    "note",
    "title",
]

_COLOR_OF_PHASE = {"exact": "#9e9e9e", "surrogate": "#1b9e77"}
PHASE_COLORS = {code: _COLOR_OF_PHASE[name] for code, name in PHASE_NAMES.items()}
"""Colour of each value of the ``phase`` stat."""
GRAD_COLOR, LOGP_COLOR = "#d95f02", "#7570b3"
OUTCOME_MARKERS = {
    "switched": ("v", "#1b9e77"),
    "refitted": ("^", "#1b9e77"),
    "refit not kept": ("^", "#d62728"),
    "failed its pilot": ("X", "#d62728"),
    "validation error too large": ("x", "#d62728"),
    "given, switched": ("D", "#1b9e77"),
    "given, failed its pilot": ("D", "#d62728"),
    "given, pilot pending": ("D", "black"),
    "pilot pending": ("d", "black"),
    "too few points to train": ("o", "#9e9e9e"),
}
"""Marker and colour of each ``TrainingRecord.outcome``."""
OTHER_OUTCOME = ("o", "black")


def title(axes: "Axes", text: str) -> None:
    """The panel's title, on the left."""
    axes.set_title(text, loc="left", fontsize="medium")


def note(axes: "Axes", text: str) -> None:
    """A panel with nothing to plot: say why instead."""
    axes.text(
        0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", wrap=True,
        fontsize="small",
    )  # fmt: skip
    axes.set_xticks([])
    axes.set_yticks([])


def legend(axes: "Axes", heading: str | None = None, **kwargs: Any) -> None:
    """A small legend in the upper right corner."""
    kwargs = {"fontsize": "x-small", "title_fontsize": "x-small", "loc": "upper right"} | kwargs
    axes.legend(title=heading, **kwargs)


def mark_tuning(axes: "Axes", stats: TraceStats) -> None:
    """A dashed line at the end of tuning, when the trace kept it."""
    if stats.tuning_kept and stats.n_tune:
        axes.axvline(stats.n_tune - 0.5, color="black", lw=0.8, ls="--")


def iteration_label(stats: TraceStats) -> str:
    """The x-label of the per-iteration panels."""
    if stats.tuning_kept:
        return "iteration (tuning, then draws; dashed: end of tuning)"
    return "draw (tuning discarded)"


def finite_or_nan(values: Any) -> np.ndarray:
    """``values`` as floats, non-finite ones as ``nan`` (not plotted).

    Examples
    --------
    >>> finite_or_nan([1.0, float("-inf")])
    array([ 1., nan])
    """
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)
