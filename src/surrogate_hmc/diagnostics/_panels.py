"""The five panels of ``plot_diagnostics``, each drawn on one axes from the trace and the step."""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from surrogate_hmc.core.history import GATE_WORDS
from surrogate_hmc.core.lifecycle import PHASE_NAMES, TrainingRecord
from surrogate_hmc.diagnostics._step import StepView
from surrogate_hmc.diagnostics._style import (
    GRAD_COLOR,
    LOGP_COLOR,
    OTHER_OUTCOME,
    OUTCOME_MARKERS,
    PHASE_COLORS,
    finite_or_nan,
    iteration_label,
    legend,
    mark_tuning,
    note,
    title,
)
from surrogate_hmc.diagnostics._trace import TraceStats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_error", "plot_evaluations", "plot_loss", "plot_phases", "plot_time"]


# -- phases ---------------------------------------------------------------------------------------


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, length, value)`` of each run of equal values.

    Examples
    --------
    >>> _runs(np.array([0, 0, 1, 1, 1, 0]))
    [(0, 2, 0), (2, 3, 1), (5, 1, 0)]
    """
    if values.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:], values.size]
    return [(int(s), int(e - s), int(values[s])) for s, e in zip(starts, ends, strict=True)]


def plot_phases(axes: "Axes", stats: TraceStats, step: StepView) -> None:
    """Exact and surrogate iterations of each chain; the trainings on the last chain."""
    from matplotlib.patches import Patch

    for row, (label, phase) in enumerate(zip(stats.labels, stats.arrays["phase"], strict=True)):
        for code, name in PHASE_NAMES.items():
            axes.broken_barh(
                [(s - 0.5, n) for s, n, v in _runs(phase) if v == code],
                (row - 0.3, 0.6),
                facecolors=PHASE_COLORS[code],
                gid=f"phase-{name}-chain-{label}",
            )
    handles: list[Any] = [
        Patch(color=PHASE_COLORS[code], label=f"{name} phase") for code, name in PHASE_NAMES.items()
    ]
    notes = []
    if not stats.tuning_kept:
        notes.append(
            "Tuning was discarded, so the exact phase and the switch are not shown: sample with "
            "pm.sample(..., discard_tuned_samples=False) to see them."
        )
    histories = _histories(stats, step)
    if any(histories.values()):
        if not stats.tuning_kept:
            counts = ", ".join(f"{len(h)} in chain {c}" for c, h in histories.items())
            notes.append(f"Trainings during tuning: {counts}.")
        else:
            seen: dict[str, Any] = {}
            for label, history in histories.items():
                for handle in _mark_trainings(axes, stats.labels.index(label), history):
                    seen.setdefault(handle.get_label(), handle)
            handles += list(seen.values())
    mark_tuning(axes, stats)
    axes.set_yticks(range(len(stats.labels)), [f"chain {c}" for c in stats.labels])
    axes.set_ylim(len(stats.labels) - 0.5, -0.75)
    axes.set_xlabel("\n".join([iteration_label(stats), *notes]))
    title(axes, "Phase per chain")
    axes.legend(
        handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=len(handles),
        fontsize="x-small", frameon=False, handlelength=1.5, columnspacing=1.0, borderaxespad=0.2,
    )  # fmt: skip


def _mark_trainings(axes: "Axes", row: int, history: Sequence[TrainingRecord]) -> list[Any]:
    """One marker per training above the chain's bar, by outcome; their legend handles."""
    from matplotlib.lines import Line2D

    by_outcome: dict[str, list[int]] = {}
    for record in history:
        by_outcome.setdefault(record.outcome, []).append(record.iteration)
    handles = []
    for outcome, iterations in by_outcome.items():
        marker, color = OUTCOME_MARKERS.get(outcome, OTHER_OUTCOME)
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


def _histories(stats: TraceStats, step: StepView) -> dict[Any, Sequence[TrainingRecord]]:
    """Each selected chain's trainings: from the trace, else (older traces) the step's."""
    if stats.histories:
        return {label: stats.histories[label].records for label in stats.labels}
    if step.history and stats.last is not None:
        return {stats.last: step.history}
    return {}


def _why_no_training(stats: TraceStats) -> str:
    """What the trace says of chains that trained nothing (``""``: they all trained)."""
    reasons = []
    for label, history in stats.histories.items():
        if not history.records:
            reasons.append(f"chain {label}: {GATE_WORDS[history.decision]}")
    return "; ".join(reasons)


def _no_loss_curves(stats: TraceStats, step: StepView) -> str:
    """Why the step has no loss curves to show, in the trace's words where it has them."""
    last = stats.histories.get(stats.last)
    if last is not None and not last.records:
        return f"Nothing was trained on chain {stats.last}: {GATE_WORDS[last.decision]}."
    if step.history:
        return "The surrogate was given, not trained here: no loss curves."
    return (
        "No training recorded in this process. With cores>1 the chains run in other processes "
        "and step.training_history stays empty: sample with cores=1 to see the loss curves "
        "(shmc.decisions(trace) has each training's outcome)."
    )


# -- loss -----------------------------------------------------------------------------------------


def plot_loss(axes: "Axes", stats: TraceStats, step: StepView) -> None:
    """Training and validation loss of each training, or of ACE's cost network."""
    title(axes, "Training and validation loss")
    untrained = _why_no_training(stats)
    if not step.given:
        note(
            axes,
            "Pass step= (the shmc.SurrogateHMC that sampled this trace with cores=1) to see "
            "the loss of each training." + (f" No training: {untrained}." if untrained else ""),
        )
        return
    if step.is_ace:
        _plot_estimator_loss(axes, step.estimator)
        return
    trained = [record for record in step.history if np.size(record.train_losses)]
    if not trained:
        note(axes, _no_loss_curves(stats, step))
        return
    import matplotlib as mpl

    colors = mpl.colormaps["viridis"](np.linspace(0.0, 0.85, len(trained)))
    for color, record in zip(colors, trained, strict=True):
        error = "none" if record.validation_error is None else f"{record.validation_error:.2g}"
        label = (
            f"iteration {record.iteration}, {record.n_points} points, error {error}: "
            f"{record.outcome}"
        )
        _loss_curves(
            axes, record.train_losses, record.validation_losses, color, label,
            record.steps_per_loss,
        )  # fmt: skip
    thresholds = dict.fromkeys(r.max_validation_error for r in trained)
    for threshold in (t for t in thresholds if np.isfinite(t)):
        # The loss is a squared error, the threshold an error.
        axes.axhline(
            threshold**2, color="black", lw=0.8, ls=":",
            label=f"switch test: error {threshold:.2g}",
        )  # fmt: skip
    axes.set_xlabel("optimizer step")
    chain = "the last chain" if stats.last is None else f"chain {stats.last}"
    legend(axes, f"{chain}; solid: training, dashed: validation")


def _plot_estimator_loss(axes: "Axes", estimator: Any) -> None:
    if not np.size(estimator.train_losses):
        note(axes, "This cost estimator kept no loss curves.")
        return
    _loss_curves(axes, estimator.train_losses, estimator.validation_losses, "C0", "training")
    axes.set_xlabel("validation check")
    title(axes, "Cost network (fitted before sampling): training and validation loss")
    legend(axes, f"held-out error {estimator.validation_error:.3g}")


def _loss_curves(
    axes: "Axes", train: Any, validation: Any, color: Any, label: str, steps_per_loss: int = 1
) -> None:
    train, validation = finite_or_nan(train), finite_or_nan(validation)
    axes.plot(steps_per_loss * np.arange(1, train.size + 1), train, color=color, label=label,
              gid="train-loss")  # fmt: skip
    axes.plot(steps_per_loss * np.arange(1, validation.size + 1), validation, color=color,
              ls="--", gid="validation-loss")  # fmt: skip
    axes.set_yscale("log")
    axes.set_ylabel("loss (error squared)")


# -- surrogate error ------------------------------------------------------------------------------


def plot_error(axes: "Axes", stats: TraceStats, step: StepView) -> None:
    """The ``surrogate_error`` stat of each chain, where a proposal was checked."""
    title(axes, "Surrogate vs exact at the proposals")
    arrays = stats.arrays
    no_exact = not np.any(arrays["n_exact_grad"]) and not np.any(arrays["n_exact_logp"])
    if step.is_ace or (no_exact and np.all(arrays["phase"] == 1)):
        note(
            axes,
            "ACE has no exact model: the cost network defines the generalized-Bayes posterior, "
            "so there is nothing to compare it with. Its accuracy is the estimator's "
            "held-out error.",
        )
        return
    if "surrogate_error" not in arrays:
        note(axes, "This trace has no surrogate_error stat (sampled by an older surrogate-hmc).")
        return
    errors = arrays["surrogate_error"]
    if not np.any(np.isfinite(errors)):
        note(
            axes,
            "No proposal was checked against the exact model: the chains never sampled in the "
            "surrogate phase.",
        )
        return
    for row, label in enumerate(stats.labels):
        axes.plot(
            stats.iterations,
            finite_or_nan(errors[row]),
            ls="none",
            marker=".",
            markersize=3,
            color=f"C{row % 10}",
            label=f"chain {label}",
            gid=f"surrogate-error-chain-{label}",
        )
    axes.axhline(0.0, color="black", lw=0.8)
    mark_tuning(axes, stats)
    axes.set_yscale("symlog", linthresh=1e-2)
    bottom, top = axes.get_ylim()
    axes.set_ylim(bottom, max(top, 1.0) * 30)  # room for the legend
    axes.set_ylabel("log ratio exact / surrogate")
    axes.set_xlabel(iteration_label(stats))
    legend(axes, _error_summary(errors[:, stats.n_tune :]), ncols=min(len(stats.labels), 4),
           markerscale=3)  # fmt: skip


def _error_summary(errors: np.ndarray) -> str:
    """How many proposals of the draws were checked, how far off, how often accepted.

    Examples
    --------
    >>> _error_summary(np.array([[np.nan, 0.0, -0.1]]))
    'draws: 2 proposals checked, median |error| 0.05, correction accepts 95%'
    """
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


# -- costs ----------------------------------------------------------------------------------------


def _per_phase(values: np.ndarray, phase: np.ndarray) -> str:
    means = [
        f"{values[phase == code].mean():.3g} {name}"
        for code, name in PHASE_NAMES.items()
        if np.any(phase == code)
    ]
    return f"{int(values.sum()):,} in all; per iteration " + ", ".join(means)


def plot_evaluations(axes: "Axes", stats: TraceStats) -> None:
    """Exact evaluations with and without gradient per iteration, with totals per phase."""
    arrays, phase = stats.arrays, stats.arrays["phase"]
    for name, color, what in (
        ("n_exact_grad", GRAD_COLOR, "logp and gradient"),
        ("n_exact_logp", LOGP_COLOR, "logp only"),
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
    mark_tuning(axes, stats)
    axes.set_yscale("symlog", linthresh=1.0)
    top = max(int(arrays["n_exact_grad"].max(initial=1)), 2)
    axes.set_ylim(-0.3, 100.0 * top)  # room for the legend
    axes.set_ylabel("exact evaluations")
    axes.set_xlabel(iteration_label(stats))
    title(axes, "Exact evaluations per iteration")
    legend(axes, markerscale=3)


def plot_time(axes: "Axes", stats: TraceStats, step: StepView) -> None:
    """Wall time per iteration by phase; the trainings' total in the legend."""
    seconds, phase = stats.arrays["perf_counter_diff"], stats.arrays["phase"]
    milliseconds = 1e3 * np.where(seconds > 0, seconds, np.nan)
    for code, name in PHASE_NAMES.items():
        in_phase = (phase == code) & np.isfinite(milliseconds)
        median = f" (median {np.median(milliseconds[in_phase]):.3g} ms)" if in_phase.any() else ""
        for row, label in enumerate(stats.labels):
            axes.plot(
                stats.iterations,
                np.where(phase[row] == code, milliseconds[row], np.nan),
                ls="none",
                marker=".",
                markersize=3,
                color=PHASE_COLORS[code],
                label=f"{name} phase{median}" if row == 0 else None,
                gid=f"time-{name}-chain-{label}",
            )
    mark_tuning(axes, stats)
    axes.set_yscale("log")
    bottom, top = axes.get_ylim()
    axes.set_ylim(bottom, top * 30)  # room for the legend
    axes.set_ylabel("ms per iteration")
    axes.set_xlabel(iteration_label(stats))
    title(axes, "Wall time per iteration")
    training = sum(r.seconds for history in _histories(stats, step).values() for r in history)
    legend(axes, f"trainings took {training:.3g} s more" if training else None, markerscale=3)
