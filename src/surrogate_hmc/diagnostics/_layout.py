"""Which axes each panel is drawn on: the user's, or a new figure laid out for the panels."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["PANELS", "checked_panels", "make_axes"]

PANELS = ("phases", "loss", "error", "evaluations", "time")
"""The panels of ``plot_diagnostics``, in their default order."""


def checked_panels(panels: str | Sequence[str]) -> tuple[str, ...]:
    """The panels asked for, as a tuple of distinct names of :data:`PANELS`.

    Examples
    --------
    >>> checked_panels("loss")
    ('loss',)
    >>> checked_panels(["loss", "phase"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: panels must be distinct names among (...), got ('loss', 'phase') ('phase' unknown).
    """
    panels = (panels,) if isinstance(panels, str) else tuple(panels)
    unknown = [p for p in panels if p not in PANELS]
    if not panels or unknown or len(set(panels)) != len(panels):
        raise ValueError(
            f"panels must be distinct names among {PANELS}, got {panels!r}"
            + (f" ({', '.join(map(repr, unknown))} unknown)." if unknown else ".")
        )
    return panels


def make_axes(
    panels: tuple[str, ...], ax: Any, figsize: tuple[float, float] | None, n_chains: int
) -> list["Axes"]:
    """One axes per panel: those of ``ax``, or of a new figure with two panels a row."""
    if ax is not None:
        from matplotlib.axes import Axes

        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != len(panels) or not all(isinstance(a, Axes) for a in axes):
            raise ValueError(
                f"ax must hold one matplotlib Axes per panel ({len(panels)}: {panels}), "
                f"got {len(axes)} object(s)."
            )
        return axes
    import matplotlib.pyplot as plt

    mosaic = _mosaic(panels)
    # The timeline's row grows with the chains, up to the height of the others.
    heights = [min(1.0, 0.4 + 0.15 * n_chains) if row[0] == "phases" else 1.0 for row in mosaic]
    if figsize is None:
        figsize = (11.0, 0.6 + 3.0 * sum(heights))
    _, by_name = plt.subplot_mosaic(
        cast(Any, mosaic), figsize=figsize, layout="constrained", height_ratios=heights
    )
    over_iterations = [by_name[p] for p in panels if p != "loss"]
    for other in over_iterations[1:]:
        other.sharex(over_iterations[0])
    return [by_name[p] for p in panels]


def _mosaic(panels: tuple[str, ...]) -> list[list[str]]:
    """Two panels a row in the given order; the phase timeline takes a whole row.

    Examples
    --------
    >>> _mosaic(("loss", "phases", "error", "time", "evaluations"))
    [['loss', 'loss'], ['phases', 'phases'], ['error', 'time'], ['evaluations', 'evaluations']]
    """
    mosaic: list[list[str]] = []
    pending: list[str] = []
    for name in panels:
        if name == "phases":
            mosaic += [pending * 2] if pending else []
            mosaic.append([name, name])
            pending = []
        else:
            pending.append(name)
            if len(pending) == 2:
                mosaic.append(pending)
                pending = []
    return mosaic + ([pending * 2] if pending else [])
