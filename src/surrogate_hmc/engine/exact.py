"""The exact side: nutpie's NUTS with a low-rank metric, all chains, run in the background.

nutpie adapts a low-rank plus diagonal mass matrix from draws and gradients, the strongest exact
sampler we compared (``benchmarks/exact_side.py``). The engine starts it on the target's JAX
log-density, lets it run until the chains have made enough draws to learn from, pauses it, reads
every draw with its exact log-density and gradient, and then either lets it finish (the run
stays exact, and costs what nutpie costs) or stops it and hands the chains to the surrogate.
"""

import contextlib
import inspect
import itertools
import threading
import time
import warnings
from typing import Any, NamedTuple

import jax
import numpy as np

from surrogate_hmc.engine.target import Target

__all__ = ["ExactRows", "ExactSampler", "nutpie_draws"]

class ExactRows(NamedTuple):
    """The exact evaluations at the draws made so far, one row each, ordered by iteration.

    ``chain`` and ``iteration`` say where each row comes from; ``last`` holds each chain's
    latest position (``(chains, dim)``) and ``step_size`` its latest step size.
    """

    positions: np.ndarray
    logps: np.ndarray
    gradients: np.ndarray
    chain: np.ndarray
    iteration: np.ndarray
    last: np.ndarray
    step_size: np.ndarray


class _Progress:
    """What nutpie's chains have done, counted by the model's own functions.

    nutpie calls the expand function once per draw of a chain, and the log-density once per
    leapfrog step, from its worker threads (one per chain: all chains run at once). Its expand
    function does not learn which chain drew, so :attr:`iterations` is the draws of all chains
    over their number.
    """

    def __init__(self, chains: int) -> None:
        self.chains = chains
        self.draws = 0
        self.gradients = 0
        self.started_at: float | None = None
        self.wanted = 0
        self.reached = threading.Event()
        self.lock = threading.Lock()

    @property
    def iterations(self) -> int:
        """Iterations per chain, on average (call with :attr:`lock` held)."""
        return self.draws // self.chains

    def drew(self) -> None:
        with self.lock:
            if self.started_at is None:
                self.started_at = time.perf_counter()
            self.draws += 1
            if self.iterations >= self.wanted:
                self.reached.set()

    def evaluated(self) -> None:
        with self.lock:
            self.gradients += 1


def _dataset(trace: Any, group: str):
    """A group of nutpie's output, from an ArviZ ``InferenceData`` or an xarray ``DataTree``."""
    node = trace[group]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def compile_for_nutpie(target: Target, starts: np.ndarray, progress: _Progress):
    """The target as a nutpie model: its JAX log-density and gradient, compiled once.

    nutpie asks for an initial point per chain (from its worker threads); it gets the rows of
    ``starts`` in turn. Every evaluation and draw is counted in ``progress``.
    """
    import nutpie.compiled_pyfunc

    value_and_grad = jax.jit(jax.value_and_grad(target.logdensity))
    dim = target.dim

    def make_logp_fn():
        def logp(position):
            progress.evaluated()
            value, gradient = value_and_grad(position)
            return float(value), np.asarray(gradient, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(position):
            progress.drew()
            return {"position": np.array(position, dtype=np.float64)}

        return expand

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


class ExactSampler:
    """nutpie on the target in the background, which the engine can pause, read and stop.

    Parameters
    ----------
    target
        What to sample.
    starts
        Each chain's initial position, ``(chains, dim)``.
    tune, draws, seed, target_accept, max_tree_depth
        As for :func:`nutpie.sample`.
    progressbar
        Whether nutpie shows its progress bar.
    """

    def __init__(
        self,
        target: Target,
        starts: np.ndarray,
        *,
        tune: int,
        draws: int,
        seed: int,
        target_accept: float,
        max_tree_depth: int,
        progressbar: bool,
    ) -> None:
        import nutpie

        chains = len(starts)
        self.chains = chains
        self.tune = tune
        self.draws = draws
        self._progress = _Progress(chains)
        compiled = compile_for_nutpie(target, np.asarray(starts, dtype=np.float64), self._progress)
        self._sampler = nutpie.sample(
            compiled,
            chains=chains,
            cores=chains,
            tune=tune,
            draws=draws,
            seed=seed,
            target_accept=target_accept,
            maxdepth=max_tree_depth,
            **_low_rank(nutpie.sample),
            store_gradient=True,
            save_warmup=True,
            blocking=False,
            progress_bar=progressbar,
        )

    def iterations(self) -> int:
        """Iterations per chain so far (all chains' draws over their number)."""
        with self._progress.lock:
            return self._progress.iterations

    def gradient_evaluations(self) -> int:
        """Exact log-density-and-gradient evaluations of all chains so far."""
        with self._progress.lock:
            return self._progress.gradients

    def seconds_per_iteration(self) -> float | None:
        """Wall time of an iteration of all chains, since the first draw (``None``: too early)."""
        with self._progress.lock:
            done = self._progress.iterations
            started = self._progress.started_at
        if started is None or done < 2:
            return None
        return (time.perf_counter() - started) / done

    def wait_for(self, iterations: int) -> bool:
        """Block until every chain has made ``iterations`` iterations (or nutpie finished).

        Returns whether the chains got there.
        """
        progress = self._progress
        with progress.lock:
            progress.wanted = iterations
            progress.reached.clear()
            if progress.iterations >= iterations:
                return True
        while not progress.reached.wait(0.05):
            if self._finished():
                return self.iterations() >= iterations
        return True

    def _finished(self) -> bool:
        try:
            return bool(self._sampler.is_finished)
        except TimeoutError:  # nutpie's way of saying "still running"
            return False

    def pause(self) -> None:
        """Stop the chains where they are (a chain may finish the iteration it is in)."""
        self._sampler.pause()

    def resume(self) -> None:
        """Let the chains go on."""
        self._sampler.resume()

    def rows(self) -> ExactRows:
        """Every draw so far with its exact log-density and gradient (pause first)."""
        with _quiet_arviz():
            trace = self._sampler.inspect()
        groups = ["warmup_posterior", "posterior"]
        stats_groups = ["warmup_sample_stats", "sample_stats"]
        positions = np.concatenate(
            [_dataset(trace, g)["position"].values for g in groups if _has(trace, g)], axis=1
        )
        stats = [_dataset(trace, g) for g in stats_groups if _has(trace, g)]
        logps = np.concatenate([s["logp"].values for s in stats], axis=1)
        gradients = np.concatenate([s["gradient"].values for s in stats], axis=1)
        step_sizes = np.concatenate([s["step_size"].values for s in stats], axis=1)
        finite = np.isfinite(logps)
        counts = finite.sum(axis=1)
        last = np.stack([positions[c, counts[c] - 1] for c in range(self.chains)])
        step_size = np.array([step_sizes[c, counts[c] - 1] for c in range(self.chains)])
        iteration, chain = np.nonzero(finite.T)
        return ExactRows(
            positions[chain, iteration],
            logps[chain, iteration],
            gradients[chain, iteration],
            chain,
            iteration,
            last,
            step_size,
        )

    def finish(self):
        """Wait for nutpie to finish and return its trace."""
        with _quiet_arviz():
            return self._sampler.wait()

    def abort(self):
        """Stop nutpie and return its trace so far."""
        with _quiet_arviz():
            return self._sampler.abort()

    def stop(self) -> None:
        """Stop nutpie and discard what it has not handed over."""
        self._sampler.cancel()


def nutpie_draws(trace: Any, draws: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """nutpie's draws ``(chains, draws, dim)`` and their stats, named as the engine's."""
    positions = _dataset(trace, "posterior")["position"].values[:, :draws]
    stats = _dataset(trace, "sample_stats")

    def stat(name: str, dtype=np.float64) -> np.ndarray:
        return stats[name].values[:, :draws].astype(dtype)

    n_steps = stat("n_steps", np.int64)
    return positions, {
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
    }


@contextlib.contextmanager
def _quiet_arviz():
    """ArviZ (1.x, 0.x) warns about nutpie's traces with fewer draws than chains so far."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Found chain dimension to be longer")
        warnings.filterwarnings("ignore", message=r"More chains \(\d+\) than draws")
        yield


def _low_rank(sample) -> dict[str, Any]:
    """nutpie's low-rank metric: ``adaptation="low_rank"`` from 0.16.9, a flag before."""
    if "adaptation" in inspect.signature(sample).parameters:
        return {"adaptation": "low_rank"}
    return {"low_rank_modified_mass_matrix": True}


def _has(trace: Any, group: str) -> bool:
    try:
        trace[group]
    except KeyError:
        return False
    return True

