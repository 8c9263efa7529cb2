"""Simulator models in PyMC: find the ``pm.Simulator``, draw from the prior, run simulations."""

import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np
import pymc as pm
from pymc.distributions.simulator import SimulatorRV

__all__ = ["SimulationWarning", "SimulatorModel", "Simulations", "run_simulations"]


class SimulationWarning(UserWarning):
    """Some simulations failed or were not finite; they were left out."""


@dataclass(frozen=True)
class SimulatorModel:
    """What ACE needs from a PyMC model with one ``pm.Simulator``.

    Parameters
    ----------
    variables
        ``(name, shape)`` of the free random variables: the parameters ``theta``, in order.
    simulator
        The simulator function, called as PyMC calls it: ``simulator(rng, *params, size)``.
    size
        The ``size`` PyMC passes to it (``None`` when the simulator sets its own shape).
    observed
        The observation ``x_o``.
    name
        The simulator variable's name.

    Examples
    --------
    >>> import pymc as pm
    >>> def simulate(rng, mu, size=None):
    ...     return rng.normal(mu, 1.0, size=size)
    >>> with pm.Model() as model:
    ...     mu = pm.Normal("mu", 0, 1)
    ...     _ = pm.Simulator("x", simulate, mu, observed=np.zeros(3))
    >>> SimulatorModel.from_model(model).variables
    (('mu', ()),)
    """

    variables: tuple[tuple[str, tuple[int, ...]], ...]
    simulator: Callable[..., Any]
    size: tuple[int, ...] | None
    observed: np.ndarray
    name: str

    @classmethod
    def from_model(cls, model: pm.Model) -> "SimulatorModel":
        """Read a model; raise a clear error unless it has exactly one ``pm.Simulator``."""
        simulators = [rv for rv in model.observed_RVs if isinstance(rv.owner.op, SimulatorRV)]
        if len(simulators) != 1:
            raise ValueError(
                "ACE needs a model with exactly one pm.Simulator observed variable (the "
                f"simulator of the data); this model has {len(simulators)}."
            )
        (rv,) = simulators
        discrete = [v.name for v in model.free_RVs if v.dtype.startswith(("int", "uint", "bool"))]
        if discrete:
            raise ValueError(
                f"ACE samples continuous parameters only; {discrete} are discrete. Make them "
                "continuous, or fix them as data."
            )
        shapes = [tuple(int(n) for n in v.shape.eval()) for v in model.free_RVs]
        size_input = rv.owner.op.size_param(rv.owner)
        size = None if _is_none(size_input) else tuple(int(n) for n in size_input.eval())
        observed = np.asarray(model.rvs_to_values[rv].eval(), dtype=np.float64)
        return cls(
            variables=tuple(
                (v.name, tuple(shape)) for v, shape in zip(model.free_RVs, shapes, strict=True)
            ),
            simulator=type(rv.owner.op).fn,
            size=size,
            observed=observed,
            name=rv.name,
        )


def _is_none(variable) -> bool:
    from pytensor.tensor.type_other import NoneTypeT

    return isinstance(variable.type, NoneTypeT)


class Simulations:
    """Prior draws ``theta`` (raveled, one row each) and their simulations, failures left out."""

    def __init__(self, theta: np.ndarray, data: np.ndarray, n_failed: int) -> None:
        self.theta, self.data, self.n_failed = theta, data, n_failed

    def __len__(self) -> int:
        return len(self.theta)


def draw_prior(model: pm.Model, n: int, seed: int) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """``n`` prior draws: raveled ``theta`` rows and the simulator's inputs for each."""
    (rv,) = [rv for rv in model.observed_RVs if isinstance(rv.owner.op, SimulatorRV)]
    params = list(rv.owner.op.dist_params(rv.owner))
    draws = pm.draw([*model.free_RVs, *params], draws=n, random_seed=seed)
    free, inputs = draws[: len(model.free_RVs)], draws[len(model.free_RVs) :]
    theta = np.concatenate([np.reshape(d, (n, -1)) for d in free], axis=1)
    per_draw = [
        [
            np.asarray(inp[i]) if np.ndim(inp) and len(inp) == n else np.asarray(inp)
            for inp in inputs
        ]
        for i in range(n)
    ]
    return theta.astype(np.float64), per_draw


def _simulate_chunk(simulator, inputs: Sequence[list], size, seed) -> list:
    """Run one chunk: each result is an array, or the error's text."""
    results: list[np.ndarray | str] = []
    for rng, params in zip(np.random.default_rng(seed).spawn(len(inputs)), inputs, strict=True):
        try:
            results.append(np.asarray(simulator(rng, *params, size), dtype=np.float64))
        except Exception as error:
            results.append(f"{type(error).__name__}: {error}")
    return results


def _simulate_pickled_chunk(simulator_bytes: bytes, inputs: Sequence[list], size, seed) -> list:
    """Run one chunk in a worker, the simulator sent with cloudpickle (closures, ``__main__``)."""
    return _simulate_chunk(cloudpickle.loads(simulator_bytes), inputs, size, seed)


def default_executor() -> Executor:
    """Local worker processes, one per core, safe whatever JAX has done in this process.

    They are started with ``forkserver`` (a forked copy of a process that has run JAX hangs),
    so, as for any such pool, a script must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    return ProcessPoolExecutor(
        max_workers=os.cpu_count(), mp_context=multiprocessing.get_context("forkserver")
    )


def run_simulations(
    simulator_model: SimulatorModel,
    theta: np.ndarray,
    inputs: list[list[np.ndarray]],
    *,
    executor: Executor | None,
    seed: int,
    chunk_size: int | None = None,
    progressbar: bool = True,
) -> Simulations:
    """Simulate for every draw through ``executor`` (``None``: in this process).

    The work is cut into chunks with seeds of their own, so the results are the same with any
    executor. A simulation that raises, is not finite or has another shape than the observation
    is left out and counted; a :class:`SimulationWarning` says how many and why.
    """
    n = len(inputs)
    workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
    chunk_size = chunk_size or max(1, math.ceil(n / (4 * workers)))
    starts = range(0, n, chunk_size)
    seeds = np.random.SeedSequence(seed).spawn(len(starts))
    size = simulator_model.size
    results: list = [None] * len(starts)
    with _progress(progressbar, n) as advance:
        if executor is None:
            for index, start in enumerate(starts):
                chunk = inputs[start : start + chunk_size]
                results[index] = _simulate_chunk(
                    simulator_model.simulator, chunk, size, seeds[index]
                )
                advance(len(chunk))
        else:
            payload = cloudpickle.dumps(simulator_model.simulator)
            futures = {
                executor.submit(
                    _simulate_pickled_chunk,
                    payload,
                    inputs[start : start + chunk_size],
                    size,
                    seeds[i],
                ): i
                for i, start in enumerate(starts)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                advance(len(results[futures[future]]))
    flat = [result for chunk in results for result in chunk]
    return _collect(theta, flat, simulator_model.observed.shape)


def _collect(theta: np.ndarray, results: list, shape: tuple[int, ...]) -> Simulations:
    errors: dict[str, int] = {}
    keep = []
    for result in results:
        if isinstance(result, str):
            reason = result
        elif result.shape != shape:
            reason = f"shape {result.shape} instead of the observation's {shape}"
        elif not np.all(np.isfinite(result)):
            reason = "non-finite values"
        else:
            keep.append(True)
            continue
        keep.append(False)
        errors[reason] = errors.get(reason, 0) + 1
    mask = np.array(keep)
    n_failed = int((~mask).sum())
    if n_failed == len(results):
        raise RuntimeError(f"Every simulation failed: {_summary(errors)}")
    if n_failed:
        warnings.warn(
            f"{n_failed} of {len(results)} simulations were left out: {_summary(errors)}",
            SimulationWarning,
            stacklevel=3,
        )
    data = np.stack([r for r, k in zip(results, keep, strict=True) if k])
    return Simulations(theta[mask], data, n_failed)


def _summary(errors: dict[str, int]) -> str:
    return "; ".join(f"{count} x {reason}" for reason, count in sorted(errors.items()))


class _progress:
    """A ``rich`` progress bar over simulations, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._progress = Progress(transient=False)
        self._progress.start()
        task = self._progress.add_task("Simulating", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.stop()
