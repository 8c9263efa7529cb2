"""``plot_diagnostics``: what ``SurrogateHMC`` (or ``ACE``) did on each chain, in one figure."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from surrogate_hmc.step_methods import ACE, SurrogateHMC

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PANELS", "plot_diagnostics"]

PANELS = ("phases", "loss", "error", "evaluations", "time")
"""The panels of :func:`plot_diagnostics`, in their default order."""

_REQUIRED = ("phase", "n_exact_grad", "n_exact_logp", "perf_counter_diff")
_PHASE_COLORS = {0: "#9e9e9e", 1: "#1b9e77"}
_PHASE_NAMES = {0: "exact", 1: "surrogate"}
_GRAD_COLOR, _LOGP_COLOR = "#d95f02", "#7570b3"


@dataclass(frozen=True)
class _Stats:
    """The stats of the selected chains, tuning (when kept) and draws joined on one axis."""

    labels: list[Any]  # chain coordinate values of the selected chains
    last: Any  # label of the trace's last chain (sampled last with cores=1), None if not selected
    n_tune: int  # tuning iterations at the start of each row (0 when they were discarded)
    tuning_kept: bool
    arrays: dict[str, np.ndarray]  # name -> (selected chain, iteration)

    @property
    def iterations(self) -> np.ndarray:
        return np.arange(self.arrays["phase"].shape[1])


def plot_diagnostics(
    trace,
    step: SurrogateHMC | ACE | None = None,
    *,
    chains: int | Sequence[int] | None = None,
    panels: Sequence[str] = PANELS,
    ax: "Axes | Sequence[Axes] | None" = None,
    figsize: tuple[float, float] | None = None,
) -> "Figure":
    """Plot what the surrogate did: phases, trainings, its error at the proposals, and costs.

    One panel each, for a trace of :class:`~surrogate_hmc.SurrogateHMC` (or
    :class:`~surrogate_hmc.ACE`), read from its sample stats:

    - ``"phases"``: exact (grey) and surrogate (green) iterations of every chain. Tuning is
      shown when the trace kept it (``pm.sample(..., discard_tuned_samples=False)``); with
      ``step``, the trainings are marked on the last chain (the chain whose history ``step``
      holds) by whether the surrogate switched after them.
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
    stats = _read_stats(trace, chains)
    panels = _checked_panels(panels)
    if step is not None and not isinstance(step, SurrogateHMC | ACE):
        raise TypeError(
            "step must be the shmc.SurrogateHMC or shmc.ACE that sampled the trace, got "
            f"{type(step).__name__}."
        )
    history = step.training_history if isinstance(step, SurrogateHMC) else []
    _check_history(history, stats)
    axes = _axes(panels, ax, figsize, n_chains=len(stats.labels))
    draw = {
        "phases": lambda a: _plot_phases(a, stats, history),
        "loss": lambda a: _plot_loss(a, step, history, stats),
        "error": lambda a: _plot_error(a, stats, step),
        "evaluations": lambda a: _plot_evaluations(a, stats),
        "time": lambda a: _plot_time(a, stats, history),
    }
    for name, axes_ in zip(panels, axes, strict=True):
        draw[name](axes_)
    figure: Any = axes[0].figure
    return figure.figure  # the root figure (a Figure's .figure is itself; a SubFigure's its root)


# -- reading the trace ---------------------------------------------------------------------------


def _is_trace(trace) -> bool:
    """An ``xarray.DataTree`` (PyMC 6) or an ArviZ 0.x ``InferenceData`` (PyMC 5)."""
    try:
        from xarray import DataTree

        if isinstance(trace, DataTree):
            return True
    except ImportError:  # pragma: no cover - xarray < 2024.10, only with PyMC 5
        pass
    # Not imported: ArviZ 1.x warns on any mention of InferenceData, which it no longer has.
    cls = type(trace)
    return cls.__name__ == "InferenceData" and cls.__module__.startswith("arviz.")


def _group(trace, name: str):
    try:
        return trace[name]
    except KeyError:
        return None


def _read_stats(trace, chains) -> _Stats:
    if not _is_trace(trace):
        raise TypeError(
            "trace must be what pm.sample returned (an arviz.InferenceData on PyMC 5, an "
            f"xarray.DataTree on PyMC 6), got {type(trace).__name__}."
        )
    draws = _group(trace, "sample_stats")
    if draws is None:
        raise ValueError("The trace has no sample_stats group: pass what pm.sample returned.")
    missing = [name for name in _REQUIRED if name not in draws]
    if missing:
        raise ValueError(
            f"The trace has no sample stats {', '.join(missing)}: it was not sampled by "
            "shmc.SurrogateHMC or shmc.ACE (a plain NUTS or nutpie trace has none of them)."
        )
    labels = np.asarray(draws["chain"]).tolist()
    positions = _chain_positions(labels, chains)
    tuning = _group(trace, "warmup_sample_stats")
    tuning_kept = tuning is not None and all(name in tuning for name in _REQUIRED)
    names = [*_REQUIRED, *(n for n in ("surrogate_error",) if n in draws)]
    arrays = {}
    for name in names:
        values = np.asarray(draws[name])
        if tuning_kept and name in tuning:
            values = np.concatenate([np.asarray(tuning[name]), values], axis=1)
        arrays[name] = values[positions]
    n_tune = int(np.asarray(tuning["phase"]).shape[1]) if tuning_kept else 0
    return _Stats(
        labels=[labels[i] for i in positions],
        last=labels[-1] if len(labels) - 1 in positions else None,
        n_tune=n_tune,
        tuning_kept=tuning_kept,
        arrays=arrays,
    )


def _chain_positions(labels: list, chains) -> list[int]:
    if chains is None:
        return list(range(len(labels)))
    wanted = [chains] if np.ndim(chains) == 0 else list(chains)
    unknown = [c for c in wanted if c not in labels]
    if not wanted or unknown:
        raise ValueError(f"chains must be among the trace's chains {labels}, got {chains!r}.")
    return [labels.index(c) for c in dict.fromkeys(wanted)]


def _checked_panels(panels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(panels, str):
        panels = (panels,)
    panels = tuple(panels)
    unknown = [p for p in panels if p not in PANELS]
    if not panels or unknown or len(set(panels)) != len(panels):
        raise ValueError(
            f"panels must be distinct names among {PANELS}, got {panels!r}"
            + (f" ({', '.join(map(repr, unknown))} unknown)." if unknown else ".")
        )
    return panels


def _check_history(history: list[dict[str, Any]], stats: _Stats) -> None:
    """Refuse a step whose switches did not happen on the trace's last chain."""
    if not stats.tuning_kept or stats.last is None:
        return
    phase = stats.arrays["phase"][stats.labels.index(stats.last)]
    for record in history:
        after = record["iteration"] + 1
        if "pilot_acceptance" in record and (after >= phase.size or phase[after] != 1):
            raise ValueError(
                f"The step's training history does not match this trace: a pilot started after "
                f"iteration {record['iteration']}, where the last chain was in the exact phase. "
                "Pass the step that sampled this trace (with cores=1), or step=None."
            )


# -- the figure ----------------------------------------------------------------------------------


def _axes(panels: tuple[str, ...], ax, figsize, n_chains: int) -> list["Axes"]:
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

    # Two panels a row in the given order; the phase timeline takes a whole row.
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
    mosaic += [pending * 2] if pending else []
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


def _title(axes: "Axes", text: str) -> None:
    axes.set_title(text, loc="left", fontsize="medium")


def _note(axes: "Axes", text: str) -> None:
    axes.text(
        0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center", wrap=True,
        fontsize="small",
    )  # fmt: skip
    axes.set_xticks([])
    axes.set_yticks([])


def _mark_tuning(axes: "Axes", stats: _Stats) -> None:
    if stats.tuning_kept and stats.n_tune:
        axes.axvline(stats.n_tune - 0.5, color="black", lw=0.8, ls="--")


def _iteration_label(stats: _Stats) -> str:
    if stats.tuning_kept:
        return "iteration (tuning, then draws; dashed: end of tuning)"
    return "draw (tuning discarded)"


def _legend(axes: "Axes", title: str | None = None, **kwargs) -> None:
    kwargs = {"fontsize": "x-small", "title_fontsize": "x-small", "loc": "upper right"} | kwargs
    axes.legend(title=title, **kwargs)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, length, value)`` of each run of equal values."""
    if values.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], values.size]
    return [(int(s), int(e - s), int(values[s])) for s, e in zip(starts, ends, strict=True)]


def _plot_phases(axes: "Axes", stats: _Stats, history: list[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch

    for row, (label, phase) in enumerate(zip(stats.labels, stats.arrays["phase"], strict=True)):
        for value, name in _PHASE_NAMES.items():
            axes.broken_barh(
                [(s - 0.5, n) for s, n, v in _runs(phase) if v == value],
                (row - 0.3, 0.6),
                facecolors=_PHASE_COLORS[value],
                gid=f"phase-{name}-chain-{label}",
            )
    handles: list[Any] = [
        Patch(color=_PHASE_COLORS[value], label=f"{name} phase")
        for value, name in _PHASE_NAMES.items()
    ]
    notes = []
    if not stats.tuning_kept:
        notes.append(
            "Tuning was discarded, so the exact phase and the switch are not shown: sample with "
            "pm.sample(..., discard_tuned_samples=False) to see them."
        )
    if history:
        if not stats.tuning_kept:
            notes.append(f"{len(history)} training(s) ran during tuning.")
        elif stats.last is None:
            notes.append("The trainings are those of the last chain, which is not selected.")
        else:
            handles += _mark_trainings(axes, stats, history)
    _mark_tuning(axes, stats)
    axes.set_yticks(range(len(stats.labels)), [f"chain {c}" for c in stats.labels])
    axes.set_ylim(len(stats.labels) - 0.5, -0.75)
    axes.set_xlabel("\n".join([_iteration_label(stats), *notes]))
    _title(axes, "Phase per chain")
    axes.legend(
        handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(handles),
        fontsize="x-small", frameon=False, handlelength=1.5, columnspacing=1.0, borderaxespad=0.2,
    )  # fmt: skip


def _training_outcome(record: dict[str, Any]) -> str:
    if record.get("refit"):
        return "refitted" if record.get("kept") else "refit not kept"
    if record.get("switched"):
        return "switched"
    if "pilot_acceptance" in record:
        return "failed its pilot"
    if "validation_error" in record:
        return "validation error too large"
    if record.get("given"):
        return "given, pilot pending"
    return "too few points to train"


_OUTCOME_MARKERS = {
    "switched": ("v", "#1b9e77"),
    "refitted": ("^", "#1b9e77"),
    "refit not kept": ("^", "#d62728"),
    "failed its pilot": ("X", "#d62728"),
    "validation error too large": ("x", "#d62728"),
    "given, pilot pending": ("D", "black"),
    "too few points to train": ("o", "#9e9e9e"),
}


def _mark_trainings(axes: "Axes", stats: _Stats, history: list[dict[str, Any]]) -> list[Any]:
    from matplotlib.lines import Line2D

    row = stats.labels.index(stats.last)
    by_outcome: dict[str, list[int]] = {}
    for record in history:
        by_outcome.setdefault(_training_outcome(record), []).append(record["iteration"])
    handles = []
    for outcome, iterations in by_outcome.items():
        marker, color = _OUTCOME_MARKERS[outcome]
        axes.plot(
            iterations,
            np.full(len(iterations), row - 0.5),
            ls="none",
            marker=marker,
            color=color,
            markersize=6,
            gid=f"training-{outcome}",
        )
        handles.append(
            Line2D([], [], ls="none", marker=marker, color=color, label=f"training: {outcome}")
        )
    return handles


def _plot_loss(axes: "Axes", step, history: list[dict[str, Any]], stats: _Stats) -> None:
    _title(axes, "Training and validation loss")
    if step is None:
        _note(
            axes,
            "Pass step= (the shmc.SurrogateHMC that sampled this trace with cores=1) to see "
            "the loss of each training.",
        )
        return
    if isinstance(step, ACE):
        estimator = step.estimator
        if not np.size(estimator.train_losses):
            _note(axes, "This cost estimator kept no loss curves.")
            return
        _loss_curves(axes, estimator.train_losses, estimator.validation_losses, "C0", "training")
        axes.set_xlabel("validation check")
        _title(axes, "Cost network (fitted before sampling): training and validation loss")
        _legend(axes, f"held-out error {estimator.validation_error:.3g}")
        return
    trained = [record for record in history if "train_losses" in record]
    if not trained:
        _note(
            axes,
            "No training recorded in this process. With cores>1 the chains run in other "
            "processes and step.training_history stays empty: sample with cores=1 to see it."
            if not history
            else "The surrogate was given, not trained here: no loss curves.",
        )
        return
    import matplotlib as mpl

    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, len(trained)))
    for color, record in zip(colors, trained, strict=True):
        label = (
            f"iteration {record['iteration']}, {record['n_points']} points, error "
            f"{record['validation_error']:.2g}: {_training_outcome(record)}"
        )
        _loss_curves(
            axes,
            record["train_losses"],
            record["validation_losses"],
            color,
            label,
            step.training.eval_every,
        )
    threshold = step.switch_test.max_validation_error
    axes.axhline(threshold**2, color="black", lw=0.8, ls=":", label="switch test: error")
    axes.set_xlabel("optimizer step")
    chain = "the last chain" if stats.last is None else f"chain {stats.last}"
    _legend(axes, f"{chain}; solid: training, dashed: validation")


def _loss_curves(axes, train, validation, color, label, eval_every: int = 1) -> None:
    train, validation = _finite_or_nan(train), _finite_or_nan(validation)
    steps = eval_every * np.arange(1, train.size + 1)
    axes.plot(steps, train, color=color, label=label, gid="train-loss")
    axes.plot(steps, validation, color=color, ls="--", gid="validation-loss")
    axes.set_yscale("log")
    axes.set_ylabel("loss (error squared)")


def _finite_or_nan(values) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def _plot_error(axes: "Axes", stats: _Stats, step) -> None:
    _title(axes, "Surrogate vs exact at the proposals")
    arrays = stats.arrays
    no_exact = not np.any(arrays["n_exact_grad"]) and not np.any(arrays["n_exact_logp"])
    if isinstance(step, ACE) or (no_exact and np.all(arrays["phase"] == 1)):
        _note(
            axes,
            "ACE has no exact model: the cost network defines the generalized-Bayes posterior, "
            "so there is nothing to compare it with. Its accuracy is the estimator's "
            "held-out error.",
        )
        return
    if "surrogate_error" not in arrays:
        _note(axes, "This trace has no surrogate_error stat (sampled by an older surrogate-hmc).")
        return
    errors = arrays["surrogate_error"]
    if not np.any(np.isfinite(errors)):
        _note(
            axes,
            "No proposal was checked against the exact model: the chains never sampled in the "
            "surrogate phase.",
        )
        return
    for row, label in enumerate(stats.labels):
        axes.plot(
            stats.iterations,
            _finite_or_nan(errors[row]),
            ls="none",
            marker=".",
            markersize=3,
            color=f"C{row % 10}",
            label=f"chain {label}",
            gid=f"surrogate-error-chain-{label}",
        )
    axes.axhline(0.0, color="black", lw=0.8)
    _mark_tuning(axes, stats)
    axes.set_yscale("symlog", linthresh=1e-2)
    bottom, top = axes.get_ylim()
    axes.set_ylim(bottom, max(top, 1.0) * 30)  # room for the legend
    axes.set_ylabel("log ratio exact / surrogate")
    axes.set_xlabel(_iteration_label(stats))
    _legend(axes, _error_summary(errors[:, stats.n_tune :]), ncols=min(len(stats.labels), 4),
            markerscale=3)  # fmt: skip


def _error_summary(errors: np.ndarray) -> str:
    checked = errors[~np.isnan(errors)]
    if not checked.size:
        return "no proposal checked in the draws"
    finite = checked[np.isfinite(checked)]
    median = float(np.median(np.abs(finite))) if finite.size else np.nan
    accepts = float(np.mean(np.exp(np.minimum(checked, 0.0))))
    text = (
        f"draws: {checked.size} proposals checked, median |error| {median:.2g}, "
        f"correction accepts {accepts:.0%}"
    )
    if finite.size < checked.size:
        text += f", {checked.size - finite.size} non-finite (not shown)"
    return text


def _per_phase(values: np.ndarray, phase: np.ndarray) -> str:
    means = [
        f"{values[phase == value].mean():.3g} {name}"
        for value, name in _PHASE_NAMES.items()
        if np.any(phase == value)
    ]
    return f"{int(values.sum()):,} in all; per iteration " + ", ".join(means)


def _plot_evaluations(axes: "Axes", stats: _Stats) -> None:
    arrays, phase = stats.arrays, stats.arrays["phase"]
    for name, color, what in (
        ("n_exact_grad", _GRAD_COLOR, "logp and gradient"),
        ("n_exact_logp", _LOGP_COLOR, "logp only"),
    ):
        for row, label in enumerate(stats.labels):
            axes.plot(
                stats.iterations,
                arrays[name][row],
                ls="none",
                marker=".",
                markersize=3,
                color=color,
                label=f"{what}: {_per_phase(arrays[name], phase)}" if row == 0 else None,
                gid=f"{name}-chain-{label}",
            )
    _mark_tuning(axes, stats)
    axes.set_yscale("symlog", linthresh=1.0)
    top = max(int(arrays["n_exact_grad"].max(initial=1)), 2)
    axes.set_ylim(-0.3, 100.0 * top)  # room for the legend
    axes.set_ylabel("exact evaluations")
    axes.set_xlabel(_iteration_label(stats))
    _title(axes, "Exact evaluations per iteration")
    _legend(axes, markerscale=3)


def _plot_time(axes: "Axes", stats: _Stats, history: list[dict[str, Any]]) -> None:
    seconds, phase = stats.arrays["perf_counter_diff"], stats.arrays["phase"]
    milliseconds = 1e3 * np.where(seconds > 0, seconds, np.nan)
    for value, name in _PHASE_NAMES.items():
        in_phase = (phase == value) & np.isfinite(milliseconds)
        median = f" (median {np.median(milliseconds[in_phase]):.3g} ms)" if in_phase.any() else ""
        for row, label in enumerate(stats.labels):
            axes.plot(
                stats.iterations,
                np.where(phase[row] == value, milliseconds[row], np.nan),
                ls="none",
                marker=".",
                markersize=3,
                color=_PHASE_COLORS[value],
                label=f"{name} phase{median}" if row == 0 else None,
                gid=f"time-{name}-chain-{label}",
            )
    _mark_tuning(axes, stats)
    axes.set_yscale("log")
    bottom, top = axes.get_ylim()
    axes.set_ylim(bottom, top * 30)  # room for the legend
    axes.set_ylabel("ms per iteration")
    axes.set_xlabel(_iteration_label(stats))
    _title(axes, "Wall time per iteration")
    training = sum(record.get("seconds", 0.0) for record in history)
    note = f"trainings took {training:.3g} s more" if training else None
    _legend(axes, note, markerscale=3)
