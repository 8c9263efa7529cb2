"""Measuring code shared by the benchmarks: timed runs, ESS, exact-evaluation counts, tables.

Three kinds of run are summarized the same way (:func:`summarize`):

- ``"nuts"``: ``pm.sample(nuts_sampler="pymc")``. Exact logp+gradient evaluations are the sum
  of ``n_steps`` (leapfrog steps) plus one per iteration, for the logp and gradient PyMC's
  ``BaseHMC`` evaluates at the start of each trajectory.
- ``"nutpie"``: ``nutpie.sample`` on ``nutpie.compile_pymc_model`` (diagonal or low-rank mass
  matrix adaptation). Its ``n_steps`` counts the leapfrog steps, one logp+gradient each; nutpie
  keeps the gradient of the current point, so only the initial point of each chain adds one.
- ``"surrogate"``: ``pm.sample(step=shmc.SurrogateHMC(...))``, whose ``n_exact_grad`` and
  ``n_exact_logp`` stats count its exact evaluations (the start-of-trajectory gradient is
  already included in ``n_exact_grad``).
- ``"engine"``: ``shmc.sample()``, whose posterior's attributes count its exact evaluations
  (``exact_gradients``, ``exact_logps``) and say where its time went (``seconds_*``).

All counts cover tuning and draws. Each run is timed as a whole (compilation, tuning and, for
``SurrogateHMC``, training included). R-hat is the largest rank-normalized R-hat over all
parameters (ArviZ's default).
"""

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pymc as pm

STATS_GROUPS = ("warmup_sample_stats", "sample_stats")
KINDS = ("nuts", "nutpie", "surrogate", "engine")
TIMING_SECONDS = 1.0  # per exact function in exact_costs


def sample_kwargs(*, tune: int, draws: int, chains: int, cores: int, seed: int) -> dict:
    """Keyword arguments of ``pm.sample`` that every benchmark run shares."""
    return {
        "tune": tune,
        "draws": draws,
        "chains": chains,
        "cores": cores,
        "random_seed": seed,
        "discard_tuned_samples": False,
        "compute_convergence_checks": False,
        "progressbar": False,
    }


def timed_pymc_sample(model: pm.Model, step_factory: Callable[[], Any] | None, **kwargs):
    """``pm.sample`` with PyMC's NUTS (``step_factory=None``) or the step it builds, timed.

    The step is built inside the timed region and the model's context, so its set-up counts.
    Returns the trace and the wall time in seconds.
    """
    with model:
        start = time.perf_counter()
        if step_factory is None:
            idata = pm.sample(nuts_sampler="pymc", **kwargs)
        else:
            idata = pm.sample(step=step_factory(), **kwargs)
        return idata, time.perf_counter() - start


def timed_nutpie_sample(
    model: pm.Model,
    *,
    tune: int,
    draws: int,
    chains: int,
    cores: int,
    seed: int,
    adaptation: str = "diag",
):
    """nutpie's NUTS with numba-compiled logp and gradient, timed with its compilation.

    ``adaptation="diag"`` is nutpie's default (what ``pm.sample()`` runs on PyMC 6 when nutpie is
    installed); ``"low_rank"`` adapts a low-rank modified diagonal mass matrix.
    """
    import nutpie

    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model, backend="numba")
    idata = nutpie.sample(
        compiled,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        seed=seed,
        save_warmup=True,
        progress_bar=False,
        adaptation=adaptation,
    )
    return idata, time.perf_counter() - start


def group(idata, name: str):
    """A group of the trace as an ``xarray.Dataset`` (InferenceData or DataTree)."""
    data = idata[name]
    return data.to_dataset() if hasattr(data, "to_dataset") else data


def has_group(idata, name: str) -> bool:
    """Whether the trace has the group ``name``."""
    try:
        idata[name]
    except KeyError:
        return False
    return True


def stat_total(idata, name: str, groups=STATS_GROUPS) -> float:
    """Sum of a sample stat over tuning and draws (or the given groups)."""
    return float(sum(group(idata, g)[name].values.sum() for g in groups if has_group(idata, g)))


def iterations(idata) -> int:
    """Iterations over tuning and draws, all chains."""
    return int(sum(group(idata, g)["n_steps"].size for g in STATS_GROUPS if has_group(idata, g)))


def flatten(dataset) -> dict[str, float]:
    """Every scalar of a dataset, named ``var[i,j]``."""
    values = {}
    for name, array in dataset.data_vars.items():
        data = np.asarray(array.values)
        if data.ndim == 0:
            values[name] = float(data)
            continue
        for index in np.ndindex(data.shape):
            values[f"{name}[{','.join(map(str, index))}]"] = float(data[index])
    return values


def arviz_stats():
    """ArviZ's ``ess``, ``rhat`` and ``mcse``: from ``arviz_stats`` on ArviZ 1.x, which spares
    a fresh process the import of ArviZ's plotting half, else from ``arviz``."""
    try:
        import arviz_stats
    except ImportError:
        import arviz as arviz_stats
    return arviz_stats


def summarize(idata, wall_time: float, kind: str) -> dict:
    """ESS, ESS/s, exact evaluations, acceptance and posterior means of one timed run."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    az = arviz_stats()
    posterior = group(idata, "posterior")
    stats = group(idata, "sample_stats")
    bulk = flatten(az.ess(posterior, method="bulk"))
    summary = {
        "kind": kind,
        "wall_time": wall_time,
        "min_bulk_ess": min(bulk.values()),
        "min_tail_ess": min(flatten(az.ess(posterior, method="tail")).values()),
        "means": flatten(posterior.mean(("chain", "draw"))),
        "mcse": flatten(az.mcse(posterior)),
        "bulk_ess": bulk,
        "rhat_max": float(np.max(list(flatten(az.rhat(posterior)).values()))),
        "divergences": int(stats["diverging"].values.sum()),
    }
    summary["ess_per_s"] = summary["min_bulk_ess"] / wall_time
    if kind == "engine":
        attrs = posterior.attrs
        phase = stats["phase"].values
        second_stage = stats["second_stage_acceptance"].values
        second_stage = second_stage[np.isfinite(second_stage)]
        return summary | {
            "acceptance": float(stats["acceptance_rate"].mean()),
            "grad_evals": int(attrs["exact_gradients"]),
            "logp_evals": int(attrs["exact_logps"]),
            "surrogate_fraction": float(np.mean(phase == 1)),
            "second_stage": float(second_stage.mean()) if second_stage.size else np.nan,
            "decision": str(attrs["surrogate_decision"]),
            "seconds": {k[8:]: float(v) for k, v in attrs.items() if k.startswith("seconds_")},
        }
    if kind == "nutpie":
        summary["acceptance"] = float(stats["mean_tree_accept"].mean())
        summary["grad_evals"] = int(stat_total(idata, "n_steps")) + stats.sizes["chain"]
        summary["logp_evals"] = 0
        return summary
    summary |= {
        "acceptance": float(stats["acceptance_rate"].mean()),
        "draw_time": float(stats["perf_counter_diff"].mean()),
        "tune_step_time": stat_total(idata, "perf_counter_diff", ("warmup_sample_stats",)),
        "draw_step_time": stat_total(idata, "perf_counter_diff", ("sample_stats",)),
    }
    if kind == "surrogate":
        phase = stats["phase"].values
        summary["grad_evals"] = int(stat_total(idata, "n_exact_grad"))
        summary["logp_evals"] = int(stat_total(idata, "n_exact_logp"))
        summary["surrogate_fraction"] = float(np.mean(phase == 1))
        surrogate_times = stats["perf_counter_diff"].values[phase == 1]
        summary["draw_time"] = float(surrogate_times.mean()) if surrogate_times.size else np.nan
        summary["switch_iterations"] = switch_iterations(idata)
        second_stage = stats["second_stage_acceptance"].values[phase == 1]
        second_stage = second_stage[np.isfinite(second_stage)]
        summary["second_stage"] = float(second_stage.mean()) if second_stage.size else np.nan
    else:
        summary["grad_evals"] = int(stat_total(idata, "n_steps")) + iterations(idata)
        summary["logp_evals"] = 0
    return summary


def switch_iterations(idata) -> list[int | None]:
    """First tuning iteration in the surrogate phase, per chain (``None``: never switched)."""
    phase = group(idata, "warmup_sample_stats")["phase"].values
    first = []
    for chain in phase:
        switched = np.flatnonzero(chain == 1)
        first.append(int(switched[0]) if switched.size else None)
    return first


def mean_call_time(function, x: np.ndarray, seconds: float = TIMING_SECONDS) -> float:
    """Mean wall time of ``function(x)`` over about ``seconds`` (at least 5 calls)."""
    function(x)
    calls, start = 0, time.perf_counter()
    while calls < 5 or time.perf_counter() - start < seconds:
        function(x)
        calls += 1
    return (time.perf_counter() - start) / calls


def exact_costs(model: pm.Model, seconds: float = TIMING_SECONDS) -> dict[str, float]:
    """Seconds per exact logp and per exact logp + gradient at the model's initial point."""
    point = model.initial_point()
    costs = {}
    for label, compute_grads in (("logp", False), ("logp_dlogp", True)):
        function = model.logp_dlogp_function(ravel_inputs=True, compute_grads=compute_grads)
        x = np.concatenate([np.ravel(point[v.name]) for v in function._grad_vars])
        costs[label] = mean_call_time(function._pytensor_function, x, seconds)
    return costs


def mean_differences(reference: dict, other: dict) -> dict[str, float]:
    """``|mean - reference mean|`` per parameter in units of the combined MCSE."""
    return {
        name: abs(other["means"][name] - mean)
        / np.hypot(reference["mcse"][name], other["mcse"][name])
        for name, mean in reference["means"].items()
    }


def row(label: str, values) -> str:
    """A markdown table row."""
    return f"| {label} | " + " | ".join(values) + " |"


def parameter_table(nuts: dict, other: dict, label: str) -> tuple[list[str], float]:
    """Per-parameter means, MCSEs, ESS and differences in MCSE units, and the largest one."""
    lines = [
        f"| parameter | mean NUTS | mean {label} | MCSE NUTS | MCSE {label} "
        f"| bulk ESS NUTS | bulk ESS {label} | \\|diff\\| / MCSE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    differences = mean_differences(nuts, other)
    for name, nuts_mean in nuts["means"].items():
        values = [nuts_mean, other["means"][name], nuts["mcse"][name], other["mcse"][name]]
        ess = [nuts["bulk_ess"][name], other["bulk_ess"][name]]
        lines.append(
            row(
                name,
                [f"{v:.4f}" for v in values]
                + [f"{e:.0f}" for e in ess]
                + [f"{differences[name]:.2f}"],
            )
        )
    return lines, max(differences.values())
