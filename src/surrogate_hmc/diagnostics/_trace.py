"""Reading the sample stats of ``SurrogateHMC`` and ``ACE`` from what ``pm.sample`` returned."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from surrogate_hmc.core.history import HISTORY_STATS, ChainHistory, decode_history
from surrogate_hmc.core.lifecycle import TrainingRecord

__all__ = ["TraceStats", "check_history", "checked_group", "read_histories", "read_stats"]

REQUIRED = ("phase", "n_exact_grad", "n_exact_logp", "perf_counter_diff")
OPTIONAL = ("surrogate_error",)


@dataclass(frozen=True)
class TraceStats:
    """The stats of the selected chains, tuning (when kept) and draws joined on one axis."""

    labels: list[Any]
    """Chain coordinate values of the selected chains, in the order asked for."""
    last: Any
    """Label of the trace's last chain (sampled last with ``cores=1``); ``None``: not selected."""
    n_tune: int
    """Tuning iterations at the start of each row (0 when they were discarded)."""
    tuning_kept: bool
    arrays: dict[str, np.ndarray]
    """Stat name -> values as (selected chain, iteration)."""
    histories: dict[Any, ChainHistory]
    """Each selected chain's trainings and cost-gate decision, read from the trace (empty for
    ``ACE`` and for traces of versions that did not record them)."""

    @property
    def iterations(self) -> np.ndarray:
        """The x-axis of the per-iteration panels."""
        return np.arange(self.arrays["phase"].shape[1])


def is_trace(trace: Any) -> bool:
    """An ``xarray.DataTree`` (PyMC 6) or an ArviZ 0.x ``InferenceData`` (PyMC 5).

    Examples
    --------
    >>> is_trace({"sample_stats": {}})
    False
    """
    try:
        from xarray import DataTree

        if isinstance(trace, DataTree):
            return True
    except ImportError:  # pragma: no cover - xarray < 2024.10, only with PyMC 5
        pass
    # Not imported: ArviZ 1.x warns on any mention of InferenceData, which it no longer has.
    cls = type(trace)
    return cls.__name__ == "InferenceData" and cls.__module__.startswith("arviz.")


def _group(trace: Any, name: str) -> Any:
    try:
        return trace[name]
    except KeyError:
        return None


def checked_group(trace: Any) -> Any:
    """The ``sample_stats`` group of what ``pm.sample`` returned (refusing anything else)."""
    if not is_trace(trace):
        raise TypeError(
            "trace must be what pm.sample returned (an arviz.InferenceData on PyMC 5, an "
            f"xarray.DataTree on PyMC 6), got {type(trace).__name__}."
        )
    draws = _group(trace, "sample_stats")
    if draws is None:
        raise ValueError("The trace has no sample_stats group: pass what pm.sample returned.")
    return draws


def read_histories(trace: Any, labels: list[Any] | None = None) -> dict[Any, ChainHistory]:
    """Each chain's :class:`~surrogate_hmc.core.history.ChainHistory` from its last iteration.

    Read from the draws, or from the tuning iterations when the trace has no draws. Empty when
    the trace lacks the history stats (``ACE``).
    """
    groups = [_group(trace, "sample_stats"), _group(trace, "warmup_sample_stats")]
    group = next(
        (g for g in groups if g is not None and all(n in g for n in HISTORY_STATS)
         and np.asarray(g["n_trainings"]).shape[1] > 0),
        None,
    )  # fmt: skip
    if group is None:
        return {}
    all_labels = np.asarray(group["chain"]).tolist()
    last = {name: np.asarray(group[name])[:, -1] for name in HISTORY_STATS}
    return {
        label: decode_history({name: v[all_labels.index(label)] for name, v in last.items()})
        for label in (all_labels if labels is None else labels)
    }


def read_stats(trace: Any, chains: Any) -> TraceStats:
    """The stats the panels plot, of the chains asked for.

    Raises
    ------
    TypeError
        If ``trace`` is not what ``pm.sample`` returned.
    ValueError
        If it lacks the stats of ``SurrogateHMC`` and ``ACE``, or ``chains`` is not among its
        chains.
    """
    draws = checked_group(trace)
    missing = [name for name in REQUIRED if name not in draws]
    if missing:
        raise ValueError(
            f"The trace has no sample stats {', '.join(missing)}: it was not sampled by "
            "shmc.SurrogateHMC or shmc.ACE (a plain NUTS or nutpie trace has none of them)."
        )
    labels = np.asarray(draws["chain"]).tolist()
    positions = _chain_positions(labels, chains)
    tuning = _group(trace, "warmup_sample_stats")
    tuning_kept = tuning is not None and all(name in tuning for name in REQUIRED)
    arrays = {}
    for name in [*REQUIRED, *(n for n in OPTIONAL if n in draws)]:
        values = np.asarray(draws[name])
        if tuning_kept and name in tuning:
            values = np.concatenate([np.asarray(tuning[name]), values], axis=1)
        arrays[name] = values[positions]
    selected = [labels[i] for i in positions]
    return TraceStats(
        labels=selected,
        last=labels[-1] if len(labels) - 1 in positions else None,
        n_tune=int(np.asarray(tuning["phase"]).shape[1]) if tuning_kept else 0,
        tuning_kept=tuning_kept,
        arrays=arrays,
        histories=read_histories(trace, selected),
    )


def _chain_positions(labels: list, chains: Any) -> list[int]:
    if chains is None:
        return list(range(len(labels)))
    wanted = [chains] if np.ndim(chains) == 0 else list(chains)
    unknown = [c for c in wanted if c not in labels]
    if not wanted or unknown:
        raise ValueError(f"chains must be among the trace's chains {labels}, got {chains!r}.")
    return [labels.index(c) for c in dict.fromkeys(wanted)]


def check_history(history: Sequence[TrainingRecord], stats: TraceStats) -> None:
    """Refuse a training history whose pilots did not happen on the trace's last chain.

    Raises
    ------
    ValueError
        If a pilot of ``history`` started where the last chain was in the exact phase.
    """
    if not stats.tuning_kept or stats.last is None:
        return
    phase = stats.arrays["phase"][stats.labels.index(stats.last)]
    for record in history:
        after = record.iteration + 1
        if record.pilot is not None and (after >= phase.size or phase[after] != 1):
            raise ValueError(
                f"The step's training history does not match this trace: a pilot started after "
                f"iteration {record.iteration}, where the last chain was in the exact phase. "
                "Pass the step that sampled this trace (with cores=1), or step=None."
            )
