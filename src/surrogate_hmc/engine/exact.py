"""The exact side: nutpie's NUTS with a low-rank metric, on every chain.

nutpie adapts a low-rank plus diagonal mass matrix from draws and gradients (the strongest
exact peer we measured) and runs every chain on a thread of its own. When one exact
log-density and gradient is so cheap that no surrogate could pay for its setup, the engine
hands it the whole run (:func:`nutpie_run`): the run then costs what nutpie costs. Otherwise
nutpie makes the exact phase (:class:`NutpieChains`), paused where the engine trains and
pilots a surrogate, and resumed to the end of the run when none takes over.
"""

import contextlib
import inspect
import os
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from surrogate_hmc.engine.target import Target

__all__ = ["ExactRows", "NutpieChains", "NutpieRun", "compile_for_nutpie", "nutpie_run",
           "nutpie_stats", "one_by_one"]  # fmt: skip

POLL_SECONDS = 0.02
"""How often the engine looks at nutpie's progress while it samples."""


class _Counter:
    """Exact gradients and draws, counted from nutpie's worker threads as they make them.

    nutpie runs each chain on a thread of its own and stores each draw from it, so the draws
    of a thread are a chain's (the engine checks the trace before it relies on them).
    """

    def __init__(self) -> None:
        self.gradients = 0
        self.draws: dict[int, int] = {}
        self.history: list[tuple[float, int]] = []
        """``(time, draws of all chains)`` at every draw."""
        self.lock = threading.Lock()

    def evaluated(self) -> None:
        with self.lock:
            self.gradients += 1

    def drew(self) -> None:
        with self.lock:
            thread = threading.get_ident()
            self.draws[thread] = self.draws.get(thread, 0) + 1
            self.history.append((time.perf_counter(), len(self.history) + 1))

    def settled(self, chains: int) -> int:
        """Draws every chain has made (0 until every chain has started)."""
        with self.lock:
            return min(self.draws.values()) if len(self.draws) >= chains else 0


def _dataset(trace: Any, group: str):
    """A group of nutpie's output, from an ArviZ ``InferenceData`` or an xarray ``DataTree``."""
    node = trace[group]
    return node.to_dataset() if hasattr(node, "to_dataset") else node


def one_by_one(value_and_grad: Callable) -> Callable:
    """A compiled log-density and gradient of one position, mapped over rows ``(n, dim)``.

    It is what nutpie's threads call, one position each: mapping it, rather than compiling a
    batched one, compiles the model once.
    """

    def mapped(positions) -> tuple[np.ndarray, np.ndarray]:
        pairs = [value_and_grad(position) for position in np.asarray(positions)]
        return np.array([value for value, _ in pairs]), np.array([grad for _, grad in pairs])

    mapped.single = value_and_grad  # type: ignore[attr-defined]
    return mapped


def compile_for_nutpie(target: Target, counter: _Counter, value_and_grad: Callable):
    """The target as a nutpie model: its JAX log-density and gradient, compiled once.

    nutpie asks for each chain's initial point with a seed of that chain's (from its worker
    threads, in no fixed order); the chain starts at the target's initial position jittered
    by that seed (:meth:`~surrogate_hmc.engine.Target.initial_positions`), so that its draws
    depend on nutpie's seed alone. Every evaluation is counted in ``counter``.
    ``value_and_grad`` is :func:`one_by_one`'s mapping of the compiled log-density and
    gradient.
    """
    import nutpie.compiled_pyfunc

    single = value_and_grad.single  # type: ignore[attr-defined]
    dim = target.dim

    def make_logp_fn():
        def logp(position):
            counter.evaluated()
            value, gradient = single(position)
            return float(value), np.asarray(gradient, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        def expand(position):
            counter.drew()
            return {"position": np.array(position, dtype=np.float64)}

        return expand

    def initial_point(seed):
        rng = np.random.default_rng(seed)
        return np.array(target.initial_positions(1, rng, value_and_grad)[0], dtype=np.float64)

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
    interrupted: bool = False


def nutpie_run(
    target: Target,
    chains: int,
    value_and_grad: Callable,
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
    as ``pm.sample()`` does); ``None`` samples the target's JAX log-density from its jittered
    initial position. Chains run on as many threads as there are CPUs (nutpie starts a chain
    when a thread is free); more threads than CPUs would make JAX log-densities compete.
    """
    import nutpie

    counter = _Counter()
    if compiled_model is None:
        compiled_model = compile_for_nutpie(target, counter, value_and_grad)
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


class ExactRows(NamedTuple):
    """The exact draws so far, pooled over chains, ordered by iteration, then chain.

    ``last`` holds each chain's latest position (``(chains, dim)``) and ``step_size`` its
    latest step size.
    """

    positions: np.ndarray
    logps: np.ndarray
    gradients: np.ndarray
    chain: np.ndarray
    iteration: np.ndarray
    last: np.ndarray
    step_size: np.ndarray


class NutpieChains:
    """nutpie's exact NUTS on every chain, paused where the engine needs the draws so far.

    Every chain runs on a thread of its own (more threads than CPUs, if need be: the engine's
    pauses need every chain to advance together). Each chain's draws depend on the seed alone,
    not on where or how long the run was paused: :meth:`rows` hands out the first
    :attr:`iteration` draws of every chain, whatever nutpie made beyond them.

    Parameters
    ----------
    target
        What nutpie samples, through its JAX log-density and gradient.
    chains
        Chains, each started at the target's initial position, jittered by its seed.
    value_and_grad
        The target's compiled log-density and gradient, mapped (:func:`one_by_one`).
    tune, draws, seed, target_accept, max_tree_depth
        nutpie's run, as ``nutpie.sample`` takes them.
    progress
        Advanced as nutpie's chains advance (:class:`~surrogate_hmc.engine.progress.RunProgress`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from surrogate_hmc.engine.progress import RunProgress
    >>> target = Target.from_logdensity(lambda x: -0.5 * jnp.sum(x**2), jnp.zeros(2))
    >>> with RunProgress(200, 2, enabled=False) as progress:
    ...     chains = NutpieChains(target, 2, one_by_one(jax.jit(jax.value_and_grad(
    ...         target.logdensity))), tune=100, draws=100, seed=1,
    ...                           target_accept=0.8, max_tree_depth=10, progress=progress)
    ...     chains.advance_to(50)
    ...     rows = chains.rows()
    ...     whole = chains.finish()
    >>> rows.positions.shape, whole.positions.shape
    ((100, 2), (2, 100, 2))
    """

    def __init__(self, target: Target, chains: int, value_and_grad: Callable, *, tune: int,
                 draws: int, seed: int, target_accept: float, max_tree_depth: int,
                 progress) -> None:  # fmt: skip
        import nutpie

        self.exact = target.logdensity
        self.progress = progress
        self.iteration = 0
        self._tune, self._draws = tune, draws
        self._chains = chains
        self._counter = _Counter()
        self._divergences = 0
        self._trace: Any = None
        self._shown = 0
        self._stopped = False
        model = compile_for_nutpie(target, self._counter, value_and_grad)
        with _quiet_arviz():
            self._sampler = nutpie.sample(
                model, chains=self._chains, cores=self._chains, tune=tune, draws=draws, seed=seed,
                target_accept=target_accept, maxdepth=max_tree_depth, **_low_rank(nutpie.sample),
                store_gradient=True, blocking=False, progress_bar=False,
            )  # fmt: skip

    @property
    def divergences(self) -> int:
        """Divergences of all chains, as of the latest pause."""
        return self._divergences

    @property
    def gradient_evaluations(self) -> int:
        """Exact log-density-and-gradient evaluations of all chains so far."""
        return self._counter.gradients

    def advance_to(self, iteration: int) -> None:
        """Sample until every chain has made ``iteration`` draws, then pause."""
        self.iteration = iteration
        while True:
            self._sampler.resume()
            try:
                while not self._finished() and self._settled() < iteration:
                    time.sleep(POLL_SECONDS)
                    self._show("exact", iteration)
            finally:
                self._sampler.pause()
            self._trace = self._inspect()
            stats = _dataset(self._trace, "warmup_sample_stats")
            self._divergences = int(stats["diverging"].values.sum())
            if (
                stats["logp"].shape[1] >= iteration
                and not np.isnan(stats["logp"].values[:, :iteration]).any()
            ):
                return

    def _inspect(self):
        with _quiet_arviz():
            return self._sampler.inspect()

    def _finished(self) -> bool:
        """Whether nutpie stopped, done or failed (it cannot tell while its threads are busy)."""
        try:
            return bool(self._sampler.is_finished)
        except TimeoutError:
            return False

    def _settled(self) -> int:
        return self._counter.settled(self._chains)

    def _show(self, phase: str, most: int | None = None) -> None:
        settled = self._settled() if most is None else min(self._settled(), most)
        if settled > self._shown:
            self.progress.advance(settled - self._shown, phase, divergences=self.divergences)
            self._shown = settled

    def seconds_per_iteration(self) -> float:
        """Wall time of an iteration of all chains, over the latter half of the draws so far."""
        with self._counter.lock:
            history = np.array(self._counter.history, dtype=np.float64)
        if len(history) < 2:
            return float("nan")
        history[:, 1] /= self._chains
        recent = history[history[:, 1] >= history[-1, 1] / 2]
        if len(recent) < 2 or recent[-1, 1] <= recent[0, 1]:
            recent = history
        return float((recent[-1, 0] - recent[0, 0]) / max(recent[-1, 1] - recent[0, 1], 1e-9))

    def rows(self) -> ExactRows:
        """The first :attr:`iteration` draws of every chain, with their logps and gradients."""
        trace = self._trace
        n = self.iteration
        stats = _dataset(trace, "warmup_sample_stats")
        positions = _dataset(trace, "warmup_posterior")["position"].values[:, :n]
        chains, _, dim = positions.shape
        by_iteration = np.swapaxes(positions, 0, 1)
        return ExactRows(
            by_iteration.reshape(-1, dim),
            stats["logp"].values[:, :n].T.reshape(-1),
            np.swapaxes(stats["gradient"].values[:, :n], 0, 1).reshape(-1, dim),
            np.tile(np.arange(chains), n),
            np.repeat(np.arange(n), chains),
            positions[:, -1],
            stats["step_size"].values[:, n - 1],
        )

    def finish(self) -> NutpieRun:
        """The run to its end, by nutpie: its draws, stats and exact gradients.

        Ctrl-C returns the draws made so far, with a warning (an empty draw set raises).
        """
        self._sampler.resume()
        interrupted = False
        try:
            while not self._finished():
                time.sleep(POLL_SECONDS)
                self._show("exact" if self._settled() < self._tune else "draws")
            with _quiet_arviz():
                trace = self._sampler.wait()
        except KeyboardInterrupt:
            interrupted = True
            with _quiet_arviz():
                trace = self._sampler.abort()
            warnings.warn("Sampling was interrupted: the draws made so far are returned.",
                          stacklevel=3)  # fmt: skip
        self._stopped = True
        self._show("draws")
        made = _dataset(trace, "sample_stats")["n_steps"].shape[1]
        if made == 0:
            raise KeyboardInterrupt
        stats = nutpie_stats(trace, self._draws)
        positions = _draws_of(trace, self._draws)
        return NutpieRun(trace, positions, stats, self._counter.gradients, interrupted)

    def stop(self) -> None:
        """Stop sampling and drop nutpie's draws (the surrogate takes over); idempotent."""
        if not self._stopped:
            self._stopped = True
            self._sampler.cancel()
