"""The exact run for cheap models: nutpie's NUTS with a low-rank metric, on every chain.

When one exact log-density and gradient is so cheap that no surrogate could pay for its setup,
the engine hands the whole run to nutpie, which adapts a low-rank plus diagonal mass matrix from
draws and gradients (the strongest exact peer we measured): the run then costs what nutpie
costs. nutpie runs the target's JAX log-density from its worker threads.
"""

import contextlib
import inspect
import itertools
import os
import threading
import warnings
from typing import Any, NamedTuple

import jax
import numpy as np

from surrogate_hmc.engine.target import Target

__all__ = ["NutpieRun", "compile_for_nutpie", "nutpie_run", "nutpie_stats"]


class _Counter:
    """Exact log-density-and-gradient evaluations, counted from nutpie's worker threads."""

    def __init__(self) -> None:
        self.gradients = 0
        self.lock = threading.Lock()

    def evaluated(self) -> None:
        with self.lock:
            self.gradients += 1


def _dataset(trace: Any, group: str):
    """A group of nutpie's output, from an ArviZ ``InferenceData`` or an xarray ``DataTree``."""
    node = trace[group]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def compile_for_nutpie(target: Target, starts: np.ndarray, counter: _Counter):
    """The target as a nutpie model: its JAX log-density and gradient, compiled once.

    nutpie asks for an initial point per chain (from its worker threads); it gets the rows of
    ``starts`` in turn. Every evaluation is counted in ``counter``.
    """
    import nutpie.compiled_pyfunc

    value_and_grad = jax.jit(jax.value_and_grad(target.logdensity))
    dim = target.dim

    def make_logp_fn():
        def logp(position):
            counter.evaluated()
            value, gradient = value_and_grad(position)
            return float(value), np.asarray(gradient, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda position: {"position": np.array(position, dtype=np.float64)}

    handed_out = itertools.count()
    lock = threading.Lock()

    def initial_point(seed):
        with lock:
            return np.array(starts[next(handed_out) % len(starts)], dtype=np.float64)

    return nutpie.compiled_pyfunc.from_pyfunc(
        dim,
        make_logp_fn,
        make_expand_fn,
        [np.dtype("float64")],
        [(dim,)],
        ["position"],
        make_initial_point_fn=initial_point,
    )


class NutpieRun(NamedTuple):
    """A run nutpie made whole: its trace, the engine's stats, and its exact gradients.

    ``positions`` (``(chains, draws, dim)``) are the flat draws when nutpie sampled the target
    itself; ``None`` when it sampled a model compiled its own way (then ``trace`` holds them).
    """

    trace: Any
    positions: np.ndarray | None
    stats: dict[str, np.ndarray]
    gradients: int


def nutpie_run(
    target: Target,
    starts: np.ndarray,
    *,
    tune: int,
    draws: int,
    seed: int,
    target_accept: float,
    max_tree_depth: int,
    progressbar: bool,
    compiled_model: Any = None,
) -> NutpieRun:
    """Nutpie with its low-rank metric on every chain, to the end.

    ``compiled_model`` is a nutpie model compiled its own way (for a PyMC model, with numba,
    as ``pm.sample()`` does); ``None`` samples the target's JAX log-density from the chains'
    ``starts``. Chains run on as many threads as there are CPUs (nutpie starts a chain when a
    thread is free); more threads than CPUs would make JAX log-densities compete for them.
    """
    import nutpie

    chains = len(starts)
    counter = _Counter()
    if compiled_model is None:
        compiled_model = compile_for_nutpie(target, np.asarray(starts, dtype=np.float64), counter)
    with _quiet_arviz():
        trace = nutpie.sample(
            compiled_model,
            chains=chains,
            cores=min(chains, os.cpu_count() or 1),
            tune=tune,
            draws=draws,
            seed=seed,
            target_accept=target_accept,
            maxdepth=max_tree_depth,
            **_low_rank(nutpie.sample),
            progress_bar=progressbar,
        )
    stats = nutpie_stats(trace, draws)
    if counter.gradients:
        return NutpieRun(trace, _draws_of(trace, draws), stats, counter.gradients)
    tuning = _dataset(trace, "warmup_sample_stats")["n_steps"].values.sum()
    return NutpieRun(trace, None, stats, int(tuning + stats["n_steps"].sum()) + chains)


def _draws_of(trace: Any, draws: int) -> np.ndarray:
    return _dataset(trace, "posterior")["position"].values[:, :draws]


def nutpie_stats(trace: Any, draws: int) -> dict[str, np.ndarray]:
    """The stats of nutpie's draws, named as the engine's, ``(chains, draws)`` each."""
    stats = _dataset(trace, "sample_stats")

    def stat(name: str, dtype=np.float64) -> np.ndarray:
        return stats[name].values[:, :draws].astype(dtype)

    n_steps = stat("n_steps", np.int64)
    return {
        "phase": np.zeros(n_steps.shape, dtype=np.int64),
        "acceptance_rate": stat("mean_tree_accept"),
        "second_stage_acceptance": np.full(n_steps.shape, np.nan),
        "diverging": stat("diverging", bool),
        "energy": stat("energy"),
        "step_size": stat("step_size"),
        "n_steps": n_steps,
        "tree_depth": stat("depth", np.int64),
        "reached_max_treedepth": stat("maxdepth_reached", bool),
        "model_logp": stat("logp"),
        "n_exact_grad": n_steps,
        "n_exact_logp": np.zeros(n_steps.shape, dtype=np.int64),
        "perf_counter_diff": np.full(n_steps.shape, np.nan),  # nutpie does not time draws
    }


@contextlib.contextmanager
def _quiet_arviz():
    """ArviZ (1.x, 0.x) warns about traces with fewer draws than chains: expected here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Found chain dimension to be longer")
        warnings.filterwarnings("ignore", message=r"More chains \(\d+\) than draws")
        yield


def _low_rank(sample) -> dict[str, Any]:
    """Nutpie's low-rank metric: ``adaptation="low_rank"`` from 0.16.9, a flag before."""
    if "adaptation" in inspect.signature(sample).parameters:
        return {"adaptation": "low_rank"}
    return {"low_rank_modified_mass_matrix": True}
