"""What ``SurrogateHMC`` (or ``ACE``) did on each chain: ``plot_diagnostics`` and ``decisions``.

Both read the trace's sample stats, where every chain's trainings and cost-gate decision travel
(:mod:`surrogate_hmc.core.history`); the figure's loss curves also need the step's
``training_history`` (``TrainingRecord`` objects of :mod:`surrogate_hmc.core.lifecycle`). The
step methods are not imported: a step is anything with a ``training_history``, and one with an
``estimator`` is ``ACE``.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from surrogate_hmc.core.history import ChainHistory
from surrogate_hmc.diagnostics._layout import PANELS, checked_panels, make_axes
from surrogate_hmc.diagnostics._panels import (
    plot_error,
    plot_evaluations,
    plot_loss,
    plot_phases,
    plot_time,
)
from surrogate_hmc.diagnostics._step import read_step
from surrogate_hmc.diagnostics._trace import (
    check_history,
    checked_group,
    read_histories,
    read_stats,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PANELS", "decisions", "plot_diagnostics"]


def decisions(trace: Any) -> dict[Any, ChainHistory]:
    """What each chain of a ``SurrogateHMC`` trace decided, read from the trace alone.

    Every draw carries its chain's decisions so far (the ``n_trainings``, ``training_history``
    and ``cost_gate`` sample stats), so they survive ``cores>1`` and a saved trace. Each
    :class:`~surrogate_hmc.core.history.ChainHistory` holds the cost gate's decision and
    measured costs, and a :class:`~surrogate_hmc.core.lifecycle.TrainingRecord` per training
    (rows trained on, held-out error, pilot outcome; no loss curves); its ``describe()`` says
    it in words.

    Parameters
    ----------
    trace
        What ``pm.sample`` returned with a ``SurrogateHMC`` step.

    Returns
    -------
    dict
        Chain (coordinate value) -> :class:`~surrogate_hmc.core.history.ChainHistory`.

    Raises
    ------
    TypeError
        If ``trace`` is not what ``pm.sample`` returned.
    ValueError
        If the trace has no such stats (it was not sampled by ``SurrogateHMC``).

    Examples
    --------
    >>> import pymc as pm
    >>> import surrogate_hmc as shmc
    >>> with pm.Model():
    ...     x = pm.Normal("x", shape=2)
    ...     step = shmc.SurrogateHMC(
    ...         schedule=shmc.Schedule(start=50, stop=50), cost_gate=False,
    ...         network=shmc.NetworkConfig(width=16), training=shmc.TrainingConfig(max_steps=300),
    ...     )
    ...     idata = pm.sample(
    ...         step=step, tune=150, draws=50, chains=2, cores=1, progressbar=False,
    ...         compute_convergence_checks=False, random_seed=1,
    ...     )
    >>> history = shmc.decisions(idata)[1]
    >>> history.n_trainings, history.decision.name, history.records[0].iteration
    (1, 'NOT_ASKED', 50)
    """
    checked_group(trace)
    histories = read_histories(trace)
    if not histories:
        raise ValueError(
            "The trace has no training_history sample stats: it was not sampled by "
            "shmc.SurrogateHMC (ACE and plain NUTS have no trainings to record)."
        )
    return histories


def plot_diagnostics(
    trace: Any,
    step: Any = None,
    *,
    chains: int | Sequence[int] | None = None,
    panels: str | Sequence[str] = PANELS,
    ax: "Axes | Sequence[Axes] | None" = None,
    figsize: tuple[float, float] | None = None,
) -> "Figure":
    """Plot what the surrogate did: phases, trainings, its error at the proposals, and costs.

    One panel each, for a trace of :class:`~surrogate_hmc.SurrogateHMC`,
    :func:`~surrogate_hmc.sample` (whose chains share their trainings and run as one program:
    ``perf_counter_diff`` is an iteration of all of them) or :class:`~surrogate_hmc.ACE`, read
    from its sample stats:

    - ``"phases"``: exact (grey) and surrogate (green) iterations of every chain. Tuning is
      shown when the trace kept it (``pm.sample(..., discard_tuned_samples=False)``); with
      ``step``, the trainings are marked on the last chain (the chain whose history ``step``
      holds) by their outcome (switched, failed its pilot, validation error too large, ...).
    - ``"loss"``: training (solid) and validation (dashed) loss of each training in
      ``step.training_history``, and the switch test's threshold; for ``ACE``, the cost
      network's losses. Needs ``step`` and, for ``SurrogateHMC``, ``cores=1``.
    - ``"error"``: the ``surrogate_error`` stat: how far the surrogate was from the exact model
      at each proposal that was checked (0 is perfect; see :class:`~surrogate_hmc.SurrogateHMC`).
    - ``"evaluations"``: exact gradient and log-density evaluations per iteration, with totals
      per phase.
    - ``"time"``: wall time per iteration (``perf_counter_diff``) by phase, training excluded.

    Parameters
    ----------
    trace
        What ``pm.sample`` returned: an ``arviz.InferenceData`` (PyMC 5) or an
        ``xarray.DataTree`` (PyMC 6).
    step
        The ``SurrogateHMC`` or ``ACE`` that sampled ``trace``, for the training history (with
        ``cores=1`` only: with ``cores>1`` the chains run in other processes and the step in
        this one has no history).
    chains
        Chain (coordinate value) or chains to plot; all by default.
    panels
        Which panels, in order: any of ``"phases"``, ``"loss"``, ``"error"``,
        ``"evaluations"`` and ``"time"`` (all by default), or one name.
    ax
        Axes to draw on, one per panel in the order of ``panels`` (a single ``Axes`` for one
        panel). By default a new figure is made.
    figsize
        Size of the new figure in inches (ignored with ``ax``).

    Returns
    -------
    matplotlib.figure.Figure
        The figure the panels are drawn on.

    Raises
    ------
    TypeError
        If ``trace`` is not a ``pm.sample`` result or ``step`` not a ``SurrogateHMC`` or ``ACE``.
    ValueError
        If the trace lacks the stats of these samplers (a plain NUTS trace, say), ``step``
        does not match the trace, or ``chains``, ``panels`` or ``ax`` are not valid.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import pymc as pm
    >>> import surrogate_hmc as shmc
    >>> with pm.Model():
    ...     x = pm.Normal("x", shape=2)
    ...     step = shmc.SurrogateHMC(
    ...         surrogate="logp", schedule=shmc.Schedule(start=50),
    ...         network=shmc.NetworkConfig(width=16), training=shmc.TrainingConfig(max_steps=300),
    ...     )
    ...     idata = pm.sample(
    ...         step=step, tune=150, draws=50, chains=1, discard_tuned_samples=False,
    ...         progressbar=False, compute_convergence_checks=False, random_seed=1,
    ...     )
    >>> fig = shmc.plot_diagnostics(idata, step)
    >>> [axes.get_title(loc="left") for axes in fig.axes]  # doctest: +NORMALIZE_WHITESPACE
    ['Phase per chain', 'Training and validation loss', 'Surrogate vs exact at the proposals',
     'Exact evaluations per iteration', 'Wall time per iteration']
    >>> plt.close(fig)
    """
    stats = read_stats(trace, chains)
    panels = checked_panels(panels)
    view = read_step(step)
    check_history(view.history, stats)
    axes = make_axes(panels, ax, figsize, n_chains=len(stats.labels))
    draw = {
        "phases": lambda a: plot_phases(a, stats, view),
        "loss": lambda a: plot_loss(a, stats, view),
        "error": lambda a: plot_error(a, stats, view),
        "evaluations": lambda a: plot_evaluations(a, stats),
        "time": lambda a: plot_time(a, stats, view),
    }
    for name, axes_ in zip(panels, axes, strict=True):
        draw[name](axes_)
    figure: Any = axes[0].figure
    return figure.figure  # the root figure (a Figure's .figure is itself; a SubFigure's its root)
